#include "proxy/wire/splitter.h"

#include <algorithm>

#include "proxy/wire/protocol.h"

namespace pgmoat::wire {

namespace {
constexpr std::size_t kHeader = 5;  // tag + int32 length
constexpr std::size_t kMinHead = 256;

std::string describe_tag(char tag) {
  auto u = static_cast<unsigned char>(tag);
  if (u >= 0x20 && u < 0x7f) return std::string("'") + tag + "'";
  static const char* hex = "0123456789abcdef";
  return std::string("0x") + hex[u >> 4] + hex[u & 0xf];
}
}  // namespace

Splitter::Splitter(std::string_view whole_tags, std::size_t max_whole, bool (*valid_tag)(char))
    : max_whole_(max_whole), valid_tag_(valid_tag) {
  for (char t : whole_tags) whole_[static_cast<unsigned char>(t)] = true;
}

Splitter::Result Splitter::next(std::span<const std::uint8_t> data, bool allow_run) {
  Result r;
  if (remaining_ > 0) {
    // Continue a streamed message: hand out whatever body bytes are here.
    if (data.empty()) {
      r.need = 1;
      return r;
    }
    std::size_t n = std::min(remaining_, data.size());
    remaining_ -= n;
    r.status = Status::piece;
    r.consumed = n;
    r.piece = Piece{Kind::rest, stream_tag_, stream_length_, data.first(n), remaining_ == 0};
    return r;
  }
  if (data.size() < kHeader) {
    r.need = kHeader;
    return r;
  }
  const char tag = static_cast<char>(data[0]);
  const std::uint32_t length = read_u32(data.data() + 1);
  if (valid_tag_ != nullptr && !valid_tag_(tag)) {
    r.status = Status::error;
    error_ = "invalid message type " + describe_tag(tag);
    return r;
  }
  if (length < 4) {
    r.status = Status::error;
    error_ = "invalid message length " + std::to_string(length) + " for message type " +
             describe_tag(tag);
    return r;
  }
  const std::size_t total = std::size_t{length} + 1;
  if (whole_[static_cast<unsigned char>(tag)]) {
    if (total > max_whole_) {
      r.status = Status::error;
      error_ = "message type " + describe_tag(tag) + " of " + std::to_string(total) +
               " bytes exceeds the limit of " + std::to_string(max_whole_) + " bytes";
      return r;
    }
    if (data.size() < total) {
      r.need = total;
      return r;
    }
    r.status = Status::piece;
    r.consumed = total;
    r.piece = Piece{Kind::whole, tag, length, data.first(total), true};
    return r;
  }
  if (data.size() >= total) {
    std::size_t end = total;
    std::uint32_t messages = 1;
    if (allow_run && run_[static_cast<unsigned char>(tag)]) {
      // Only complete, well-formed messages join the run; anything else is left for the
      // next call, which reports it.
      while (data.size() - end >= kHeader && static_cast<char>(data[end]) == tag) {
        const std::uint32_t len = read_u32(data.data() + end + 1);
        if (len < 4 || data.size() - end < std::size_t{len} + 1) break;
        end += std::size_t{len} + 1;
        ++messages;
      }
    }
    r.status = Status::piece;
    r.consumed = end;
    r.piece = Piece{Kind::whole, tag, length, data.first(end), true, messages};
    return r;
  }
  // Stream it, once the first bytes are here: header plus the body bytes at hand. Waiting for
  // kMinHead bytes means a streamed Bind always carries its portal and statement names.
  const std::size_t head_need = std::min(total, kMinHead);
  if (data.size() < head_need) {
    r.need = head_need;
    return r;
  }
  stream_tag_ = tag;
  stream_length_ = length;
  remaining_ = total - data.size();
  r.status = Status::piece;
  r.consumed = data.size();
  r.piece = Piece{Kind::head, tag, length, data, false};
  return r;
}

}  // namespace pgmoat::wire
