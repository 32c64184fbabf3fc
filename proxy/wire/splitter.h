// Splits a byte stream of tagged protocol messages into pieces without copying.
//
// Messages whose tags the caller must inspect ("whole" tags: Query and Parse from clients;
// ReadyForQuery, CommandComplete, ErrorResponse, ... from servers) are only returned once the
// whole message is buffered, and are capped in size. Every other message is streamed: its
// first piece carries the header and whatever body bytes are at hand, later pieces carry the
// rest, so a 1 GB DataRow or CopyData never has to fit in memory.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace pgmoat::wire {

class Splitter {
 public:
  enum class Status : std::uint8_t {
    piece,      // `piece` is valid; `consumed` bytes of the input belong to it
    need_more,  // not enough bytes: read more (at least `need` bytes in the buffer in total)
    error,      // protocol violation: error() says what
  };
  enum class Kind : std::uint8_t {
    whole,  // the complete message, header included
    head,   // the first bytes of a streamed message, header included
    rest,   // more body bytes of the streamed message begun by the last `head`
  };
  struct Piece {
    Kind kind = Kind::whole;
    char tag = 0;
    std::uint32_t length = 0;  // the message's length field (body + 4)
    std::span<const std::uint8_t> bytes;
    bool last = true;  // this piece ends the message
    // Whole pieces only: how many complete messages of `tag` are back to back in `bytes` (more
    // than 1 only for a run tag, when next() was asked for runs).
    std::uint32_t messages = 1;
  };
  struct Result {
    Status status = Status::need_more;
    std::size_t consumed = 0;
    std::size_t need = 0;
    Piece piece;
  };

  // `whole_tags`: tags delivered only whole. `max_whole`: the cap on such a message
  // (header included). `valid_tag`: optional filter; a tag it rejects is a protocol error.
  Splitter(std::string_view whole_tags, std::size_t max_whole, bool (*valid_tag)(char) = nullptr);

  // `allow_run`: complete messages of one run tag that follow each other come back as one
  // whole piece (a result set's DataRows: one piece per read instead of one per row).
  Result next(std::span<const std::uint8_t> data, bool allow_run = false);
  void set_run_tags(std::string_view tags) {
    for (char t : tags) run_[static_cast<unsigned char>(t)] = true;
  }

  // After Status::error: what was wrong (kept out of Result, which is built per message).
  const std::string& error() const { return error_; }

  // True while in the middle of a streamed message.
  bool streaming() const { return remaining_ > 0; }
  void set_max_whole(std::size_t max_whole) { max_whole_ = max_whole; }

 private:
  std::array<bool, 256> whole_{};
  std::size_t max_whole_;
  bool (*valid_tag_)(char);
  std::string error_;
  std::array<bool, 256> run_{};  // run tags
  std::size_t remaining_ = 0;    // body bytes of the streamed message not yet returned
  char stream_tag_ = 0;
  std::uint32_t stream_length_ = 0;
};

}  // namespace pgmoat::wire
