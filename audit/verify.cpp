#include "audit/verify.h"

#include <filesystem>

#include "audit/chain.h"
#include "audit/files.h"

namespace pgmoat::audit {
namespace {

struct Rec {
  std::size_t file = 0;
  std::uint64_t line = 0;
  std::uint64_t seq = 0;
  std::string prev;
  std::string hash;
  std::string rotated_from;
};

std::string base(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

std::string where(const std::vector<std::string>& files, const Rec& r) {
  return files[r.file] + ":" + std::to_string(r.line);
}

}  // namespace

std::string to_string(const VerifyIssue& i) {
  std::string out = i.file;
  if (i.line != 0) out += ":" + std::to_string(i.line);
  if (i.seq != 0) out += ": seq " + std::to_string(i.seq);
  out += ": " + i.message;
  return out;
}

VerifyReport verify_files(const std::vector<std::string>& files, bool require_genesis) {
  VerifyReport rep;
  auto fail = [&rep](VerifyIssue issue) {
    rep.ok = false;
    rep.error = std::move(issue);
    return rep;
  };

  std::vector<Rec> recs;
  for (std::size_t fi = 0; fi < files.size(); ++fi) {
    std::string data;
    try {
      data = read_file(files[fi]);
    } catch (const std::exception& e) {
      return fail({files[fi], 0, 0, std::string("cannot read: ") + e.what()});
    }
    std::size_t pos = 0;
    std::uint64_t line = 0;
    while (pos < data.size()) {
      ++line;
      const std::size_t nl = data.find('\n', pos);
      if (nl == std::string::npos) {
        rep.warnings.push_back({files[fi], line, 0,
                                "torn last record (crash?): " + std::to_string(data.size() - pos) +
                                    " bytes without a newline; not counted as a record"});
        break;
      }
      const std::string_view text = std::string_view(data).substr(pos, nl - pos);
      pos = nl + 1;
      auto fields = parse_chain_fields(text);
      if (!fields) {
        return fail({files[fi], line, 0, "not an audit record (edited or corrupted line)"});
      }
      recs.push_back(Rec{fi, line, fields->seq, std::move(fields->prev), sha256_hex(text),
                         std::move(fields->rotated_from)});
    }
  }
  if (recs.empty()) {
    rep.warnings.push_back({files.empty() ? "" : files.front(), 0, 0, "no records"});
    return rep;
  }

  const Rec& first = recs.front();
  if (first.prev == kGenesisPrev) {
    if (first.seq != 1) {
      return fail({files[first.file], first.line, first.seq,
                   "genesis record must have seq 1 (records before it deleted?)"});
    }
  } else if (!first.rotated_from.empty()) {
    VerifyIssue issue{files[first.file], first.line, first.seq,
                      "chain start unknown: this record continues " + first.rotated_from +
                          ", which was not given; records before seq " + std::to_string(first.seq) +
                          " are not verified"};
    if (require_genesis) return fail(std::move(issue));
    rep.warnings.push_back(std::move(issue));
  } else {
    return fail({files[first.file], first.line, first.seq,
                 "the chain does not start here: this record links to an earlier record but "
                 "names no earlier file (records at the start deleted?)"});
  }

  for (std::size_t i = 1; i < recs.size(); ++i) {
    const Rec& p = recs[i - 1];
    const Rec& r = recs[i];
    const std::uint64_t expected = p.seq + 1;
    if (r.seq == expected) {
      if (r.prev != p.hash) {
        if (r.file != p.file && !r.rotated_from.empty() && r.rotated_from != base(files[p.file])) {
          return fail({files[r.file], r.line, r.seq,
                       "continues " + r.rotated_from + ", but the file before it is " +
                           files[p.file] + " and its last record does not link (file missing?)"});
        }
        return fail({files[p.file], p.line, p.seq,
                     "record modified: its hash does not match prev in the next record (seq " +
                         std::to_string(r.seq) + " at " + where(files, r) + ")"});
      }
    } else if (r.seq > expected) {
      for (std::size_t j = i + 1; j < recs.size(); ++j) {
        if (recs[j].seq == expected) {
          return fail({files[r.file], r.line, r.seq,
                       "record out of order: expected seq " + std::to_string(expected) +
                           ", which appears later at " + where(files, recs[j]) +
                           " (records reordered)"});
        }
      }
      std::string missing = r.seq - 1 == expected ? "seq " + std::to_string(expected)
                                                  : "seq " + std::to_string(expected) + ".." +
                                                        std::to_string(r.seq - 1);
      std::string msg = "records missing: " + missing + " should come before this record (after " +
                        where(files, p) + ")";
      if (r.file != p.file) {
        msg += "; " + files[p.file] + " ends early or a file between them is missing";
      }
      return fail({files[r.file], r.line, r.seq, msg + " (deleted or truncated)"});
    } else {
      return fail({files[r.file], r.line, r.seq,
                   "record out of order: seq " + std::to_string(r.seq) + " after seq " +
                       std::to_string(p.seq) + " at " + where(files, p) +
                       " (records reordered or duplicated)"});
    }
    if (r.file != p.file && !r.rotated_from.empty() && r.rotated_from != base(files[p.file])) {
      rep.warnings.push_back({files[r.file], r.line, r.seq,
                              "says it continues " + r.rotated_from + " but follows " +
                                  files[p.file] + " (renamed file?); the chain links"});
    }
  }
  rep.records = recs.size();
  rep.first_seq = recs.front().seq;
  rep.last_seq = recs.back().seq;
  rep.head_hash = recs.back().hash;
  return rep;
}

}  // namespace pgmoat::audit
