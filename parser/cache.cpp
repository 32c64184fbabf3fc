// ClassificationCache: 16 shards, each an LRU list plus a hash index keyed by the exact text.
// Lookups hash once, lock one shard, and move the hit to the front of that shard's list.
// A miss is admitted only if the shard's doorkeeper saw the same text hash before: one-off
// texts cost no insert, no eviction, and push nothing useful out.
//
// A text with numeric literals is looked up by its template (parser/literal_template.h)
// before its own text. The template's own classification, cached under the template's
// key, stands for the statement when it is one statement that reads or changes rows (SELECT,
// INSERT, UPDATE, DELETE, MERGE), calls no function and hides nothing, and no number could
// make one of its WHERE clauses constant-true (`WHERE id = $1` cannot be, `WHERE $1 = $2`
// could: classify_template() says). Then numbers cannot change what the statement is,
// whatever their values, and only numbers differ between the two texts; its shape digest is
// computed as the numbers would have it. Anything else (a DELETE whose WHERE may be 1=1, a
// call whose argument names a setting) is parsed from its own text.
//
// In front of the shards, each thread keeps the classifications it found there last, as
// copies of its own. A classification is a function of its key alone, so a copy never goes
// stale. A hit there takes no lock and writes no memory another thread uses: the shards'
// locks, LRU lists and reference counts would otherwise move between cores on nearly every
// statement when two I/O threads serve the same few statement shapes.
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
constexpr std::size_t kScratchBytes = 4096;     // texts up to this size scan into a reused key
                                                // and may be kept in the front
constexpr std::size_t kFrontSlots = 64;         // per thread, direct-mapped by hash
constexpr std::size_t kStripes = 8;             // hit/miss counters, one per thread (mostly)

std::atomic<std::uint64_t> next_cache_id{1};
std::atomic<std::size_t> next_stripe{0};

// What an entry holds: a classification, and when that is a template's shared one kept under
// a text of the template, where in the text its own statement lies.
struct Held {
  std::shared_ptr<const Classification> value;
  std::size_t begin = 0;
  std::size_t length = 0;
  Cached at(std::string_view text) const {
    if (!value || !value->shared_template) return {value, {}};
    return {value, text.substr(begin, length)};
  }
};

struct FrontSlot {
  std::uint64_t cache_id = 0;  // whose entry: cache ids are never reused
  std::size_t hash = 0;
  std::string key;
  Held held;  // its classification this thread's own copy
  // The hash of the last shard hit that mapped here and was not kept: a key is copied in
  // on its second hit in a row, so keys that share a slot do not copy in turn.
  std::size_t candidate = 0;
};
thread_local std::array<FrontSlot, kFrontSlots> front;

// Counters a thread can bump without moving a cache line another thread writes.
struct alignas(64) Stripe {
  std::atomic<std::uint64_t> hits{0};
  std::atomic<std::uint64_t> misses{0};
};
Stripe& my_stripe(std::array<Stripe, kStripes>& stripes) {
  thread_local const std::size_t index = next_stripe.fetch_add(1) % kStripes;
  return stripes[index];
}

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
  Held held;
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
  std::array<Stripe, kStripes> stripes;
  const std::uint64_t id = next_cache_id.fetch_add(1);

  void hit() { my_stripe(stripes).hits.fetch_add(1, std::memory_order_relaxed); }
  void miss() { my_stripe(stripes).misses.fetch_add(1, std::memory_order_relaxed); }

  // This thread's copy of the entry for `key`, or an empty Held.
  Held front_find(std::string_view key, std::size_t h) const {
    const FrontSlot& slot = front[h % kFrontSlots];
    if (slot.cache_id != id || slot.hash != h || slot.key != key) return {};
    return slot.held;
  }
  // Keeps a copy of `held`, found in a shard, for this thread's next lookups of `key`.
  void front_keep(std::string_view key, std::size_t h, const Held& held) const {
    if (key.size() > kScratchBytes) return;
    FrontSlot& slot = front[h % kFrontSlots];
    if (slot.candidate != h) {
      slot.candidate = h;
      return;
    }
    slot.cache_id = id;
    slot.hash = h;
    slot.key.assign(key);
    slot.held = held;
    slot.held.value = std::make_shared<const Classification>(*held.value);
  }

  // The shard entry for exactly `key` (whose std::hash is `h`), or an empty Held.
  Held lookup(std::string_view key, std::size_t h);
  // Keeps `held` for `key` (from its second sighting, or at once); returns what is kept.
  Held insert(std::string_view key, std::size_t h, Held held, bool admit_at_once);
};

ClassificationCache::ClassificationCache(std::size_t max_bytes)
    : impl_(std::make_unique<Impl>(max_bytes)) {}
ClassificationCache::~ClassificationCache() = default;

std::shared_ptr<const Classification> with_own_text(const Cached& found) {
  if (!found.classification->shared_template) return found.classification;
  auto own = std::make_shared<Classification>(*found.classification);
  own->shared_template = false;
  own->statements.front().text = std::string(found.own_statement);
  return own;
}

std::shared_ptr<const Classification> ClassificationCache::get(std::string_view sql) {
  return with_own_text(find(sql));
}

Cached ClassificationCache::find(std::string_view sql) {
  Impl& m = *impl_;
  const std::size_t h = std::hash<std::string_view>{}(sql);
  if (Held mine = m.front_find(sql, h); mine.value) {
    m.hit();
    return mine.at(sql);
  }
  // The template before the shards: a text its template stands for is never kept there under
  // its own text, so looking would only cost a lock.
  //
  // The scan's key buffer: one per thread for texts of ordinary size, reused from text to
  // text (a rare huge text gets its own, so no thread keeps its size).
  thread_local LiteralTemplate scratch;
  LiteralTemplate own;
  LiteralTemplate* t = sql.size() <= kScratchBytes ? &scratch : &own;
  if (may_have_template(sql) && numeric_template(sql, *t)) {
    const std::size_t th = std::hash<std::string_view>{}(t->key);
    Held shared = m.front_find(t->key, th);
    if (!shared.value) {
      shared = m.lookup(t->key, th);
      if (shared.value) m.front_keep(t->key, th, shared);
    }
    if (!shared.value) {
      bool depends = false;
      auto c = std::make_shared<Classification>(classify_template(t->text(), depends));
      if (depends) {
        c->ok = false;  // never stands for a text: its numbers decide what it is
        c->error = "template depends on its numbers";
        c->statements.clear();
      }
      c->shared_template = true;
      shared = m.insert(t->key, th, Held{std::move(c)}, /*admit_at_once=*/true);
    }
    if (usable_template(*shared.value)) {
      m.hit();
      // Not copied. A text seen again and again (a health check) is kept by this thread as
      // the template's classification and where its own statement lies.
      const auto begin = static_cast<std::size_t>(t->statement.data() - sql.data());
      Held held{std::move(shared.value), begin, t->statement.size()};
      m.front_keep(sql, h, held);
      return held.at(sql);
    }
  }
  if (Held kept = m.lookup(sql, h); kept.value) {
    m.hit();
    m.front_keep(sql, h, kept);
    return kept.at(sql);
  }
  m.miss();
  return m.insert(sql, h, Held{std::make_shared<const Classification>(classify(sql))}, false)
      .at(sql);
}

Held ClassificationCache::Impl::lookup(std::string_view key, std::size_t h) {
  Shard& shard = shards[(h >> 7) % kShards];
  std::lock_guard lock(shard.mu);
  auto it = shard.index.find(key);
  if (it == shard.index.end()) return {};
  shard.lru.splice(shard.lru.begin(), shard.lru, it->second);
  return it->second->held;
}

// Called with a classification made outside any lock: a slow parse must not stall other
// lookups on its shard. Only an admitted text pays for its entry.
Held ClassificationCache::Impl::insert(std::string_view key, std::size_t h, Held held,
                                       bool admit_at_once) {
  Shard& shard = shards[(h >> 7) % kShards];
  std::lock_guard lock(shard.mu);
  // Hash bits 7-10 chose the shard; the slot and tag use others.
  std::uint32_t& seen = shard.seen[(h >> 11) % kDoorkeeperSlots];
  const auto tag = static_cast<std::uint32_t>(static_cast<std::uint64_t>(h) >> 32) | 1u;
  if (seen != tag && !admit_at_once) {
    seen = tag;  // first sighting: remember it, keep nothing
    return held;
  }
  if (seen == tag) seen = 0;
  if (auto it = shard.index.find(key); it != shard.index.end()) {
    return it->second->held;  // another thread got there first
  }
  Entry e{std::string(key), held, 0};
  e.bytes = approx_bytes(e.key, *held.value);
  if (e.bytes > shard_budget) return held;  // too big to keep
  shard.bytes += e.bytes;
  shard.lru.push_front(std::move(e));
  shard.index.emplace(std::string_view{shard.lru.front().key}, shard.lru.begin());
  while (shard.bytes > shard_budget && !shard.lru.empty()) {
    Entry& victim = shard.lru.back();
    shard.bytes -= victim.bytes;
    shard.index.erase(std::string_view{victim.key});
    shard.lru.pop_back();
  }
  return held;
}

std::uint64_t ClassificationCache::hits() const {
  std::uint64_t n = 0;
  for (const auto& s : impl_->stripes) n += s.hits.load(std::memory_order_relaxed);
  return n;
}
std::uint64_t ClassificationCache::misses() const {
  std::uint64_t n = 0;
  for (const auto& s : impl_->stripes) n += s.misses.load(std::memory_order_relaxed);
  return n;
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
