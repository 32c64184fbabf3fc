// ClassificationCache: 16 shards, each an LRU list plus a hash index keyed by the exact text.
// Lookups hash once, lock one shard, and move the hit to the front of that shard's list.
// A miss is admitted only if the shard's doorkeeper saw the same text hash before: one-off
// texts cost no insert, no eviction, and push nothing useful out.
//
// A miss whose text has numeric literals is looked up by its template (parser/
// literal_template.h) first. The template's own classification, cached under the template's
// key, stands for the statement when it is one statement that reads or changes rows (SELECT,
// INSERT, UPDATE, DELETE, MERGE), calls no function and hides nothing, and no number could
// make one of its WHERE clauses constant-true (`WHERE id = $1` cannot be, `WHERE $1 = $2`
// could: classify_template() says). Then numbers cannot change what the statement is,
// whatever their values, and only numbers differ between the two texts; its shape digest is
// computed as the numbers would have it. Anything else (a DELETE whose WHERE may be 1=1, a
// call whose argument names a setting) is parsed from its own text.
#include <array>
#include <atomic>
#include <list>
#include <mutex>
#include <unordered_map>

#include "parser/classify.h"
#include "parser/literal_template.h"

namespace pgmoat::parser {
namespace {

constexpr std::size_t kShards = 16;
constexpr std::size_t kDoorkeeperSlots = 4096;  // per shard: 16 KiB

std::size_t approx_bytes(const std::string& key, const Classification& c) {
  std::size_t n = sizeof(Classification) + 2 * key.size() + 160 + c.error.size();
  for (const auto& s : c.statements) {
    n += sizeof(Statement) + s.text.size() + s.target.size() + s.command.size() +
         s.object_type.size() + s.set_name.size() + s.set_value.size() + s.opaque_reason.size() +
         s.shape.size();
    for (const auto& t : s.tables) n += sizeof(TableRef) + t.name.size();
    for (const auto& f : s.functions) n += sizeof(std::string) + f.size();
  }
  return n;
}

struct Entry {
  std::string key;
  std::shared_ptr<const Classification> value;
  std::size_t bytes = 0;
};

struct Shard {
  std::mutex mu;
  std::list<Entry> lru;  // front = most recently used
  // Keys view into the list nodes' strings, which never move.
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index;
  std::size_t bytes = 0;
  // Tags of texts seen once and not admitted yet, by hash slot; 0 = empty. A colliding text
  // overwrites the slot (that text then needs one more sighting); a false match only admits a
  // text one sighting early.
  std::array<std::uint32_t, kDoorkeeperSlots> seen{};
};

constexpr ClassSet kRowClasses =
    bit(StatementClass::select) | bit(StatementClass::insert) | bit(StatementClass::update) |
    bit(StatementClass::update_without_where) | bit(StatementClass::delete_) |
    bit(StatementClass::delete_without_where) | bit(StatementClass::merge);

// What a template's classification may stand for: exactly one statement that reads or
// changes rows, with no function call and nothing opaque. (A template whose WHERE depends on
// its numbers is cached as not ok.)
bool usable_template(const Classification& c) {
  if (!c.ok || c.statements.size() != 1) return false;
  const Statement& st = c.statements.front();
  return st.classes != 0 && (st.classes & ~kRowClasses) == 0 && st.functions.empty() &&
         !st.opaque && st.set_name.empty() && st.prepared_name.empty() && st.object_type.empty();
}

}  // namespace

struct ClassificationCache::Impl {
  explicit Impl(std::size_t max_bytes)
      : shard_budget(std::max<std::size_t>(max_bytes / kShards, 1)) {}
  std::size_t shard_budget;
  std::array<Shard, kShards> shards;
  std::atomic<std::uint64_t> hits{0};
  std::atomic<std::uint64_t> misses{0};
};

ClassificationCache::ClassificationCache(std::size_t max_bytes)
    : impl_(std::make_unique<Impl>(max_bytes)) {}
ClassificationCache::~ClassificationCache() = default;

std::shared_ptr<const Classification> ClassificationCache::get(std::string_view sql) {
  const std::size_t h = std::hash<std::string_view>{}(sql);
  if (auto hit = lookup(sql, h)) {
    impl_->hits.fetch_add(1, std::memory_order_relaxed);
    return hit;
  }
  if (auto t = may_have_template(sql) ? numeric_template(sql) : std::nullopt) {
    const std::size_t th = std::hash<std::string_view>{}(t->key);
    auto shared = lookup(t->key, th);
    if (!shared) {
      bool depends = false;
      auto c = std::make_shared<Classification>(classify_template(t->text(), depends));
      if (depends) {
        c->ok = false;  // never stands for a text: its numbers decide what it is
        c->error = "template depends on its numbers";
        c->statements.clear();
      }
      shared = insert(t->key, th, std::move(c), /*admit_at_once=*/true);
    }
    if (usable_template(*shared)) {
      impl_->hits.fetch_add(1, std::memory_order_relaxed);
      auto own = std::make_shared<Classification>(*shared);
      own->statements.front().text = std::string(t->statement);
      // The same text again (a health check, a repeated lookup) becomes an exact hit.
      return insert(sql, h, std::move(own), false);
    }
  }
  impl_->misses.fetch_add(1, std::memory_order_relaxed);
  return insert(sql, h, std::make_shared<const Classification>(classify(sql)), false);
}

std::shared_ptr<const Classification> ClassificationCache::lookup(std::string_view sql,
                                                                  std::size_t h) {
  Shard& shard = impl_->shards[(h >> 7) % kShards];
  std::lock_guard lock(shard.mu);
  auto it = shard.index.find(sql);
  if (it == shard.index.end()) return nullptr;
  shard.lru.splice(shard.lru.begin(), shard.lru, it->second);
  return it->second->value;
}

// Called with a classification made outside any lock: a slow parse must not stall other
// lookups on its shard. Only an admitted text pays for its entry.
std::shared_ptr<const Classification> ClassificationCache::insert(
    std::string_view sql, std::size_t h, std::shared_ptr<const Classification> value,
    bool admit_at_once) {
  Shard& shard = impl_->shards[(h >> 7) % kShards];
  std::lock_guard lock(shard.mu);
  // Hash bits 7-10 chose the shard; the slot and tag use others.
  std::uint32_t& seen = shard.seen[(h >> 11) % kDoorkeeperSlots];
  const auto tag = static_cast<std::uint32_t>(static_cast<std::uint64_t>(h) >> 32) | 1u;
  if (seen != tag && !admit_at_once) {
    seen = tag;  // first sighting: remember it, keep nothing
    return value;
  }
  if (seen == tag) seen = 0;
  if (auto it = shard.index.find(sql); it != shard.index.end()) {
    return it->second->value;  // another thread got there first
  }
  Entry e{std::string(sql), value, 0};
  e.bytes = approx_bytes(e.key, *value);
  if (e.bytes > impl_->shard_budget) return value;  // too big to keep
  shard.bytes += e.bytes;
  shard.lru.push_front(std::move(e));
  shard.index.emplace(std::string_view{shard.lru.front().key}, shard.lru.begin());
  while (shard.bytes > impl_->shard_budget && !shard.lru.empty()) {
    Entry& victim = shard.lru.back();
    shard.bytes -= victim.bytes;
    shard.index.erase(std::string_view{victim.key});
    shard.lru.pop_back();
  }
  return value;
}

std::uint64_t ClassificationCache::hits() const {
  return impl_->hits.load(std::memory_order_relaxed);
}
std::uint64_t ClassificationCache::misses() const {
  return impl_->misses.load(std::memory_order_relaxed);
}
std::size_t ClassificationCache::entries() const {
  std::size_t n = 0;
  for (auto& s : impl_->shards) {
    std::lock_guard lock(s.mu);
    n += s.index.size();
  }
  return n;
}

}  // namespace pgmoat::parser
