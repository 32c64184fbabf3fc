// A growable byte buffer with a readable window [begin, end). Spans handed out stay valid
// until the next compact()/reserve(), which the pumps only call after flushing.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace pgmoat::proxy {

class Buffer {
 public:
  explicit Buffer(std::size_t initial) : data_(initial) {}

  std::span<const std::uint8_t> readable() const { return {data_.data() + begin_, end_ - begin_}; }
  std::span<std::uint8_t> writable() { return {data_.data() + end_, data_.size() - end_}; }
  void commit(std::size_t n) { end_ += n; }
  void consume(std::size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  std::size_t size() const { return end_ - begin_; }
  std::size_t capacity() const { return data_.size(); }

  // Makes room for at least `total` readable bytes and some free space after them.
  void prepare(std::size_t total) {
    if (begin_ > 0) {
      std::memmove(data_.data(), data_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (data_.size() < total) data_.resize(total);
    if (end_ == data_.size()) data_.resize(data_.size() * 2);
  }
  // Called after a read filled the buffer: a busy stream earns a larger buffer.
  void grow_if_full(std::size_t read, std::size_t limit) {
    if (read > 0 && end_ == data_.size() && data_.size() < limit) {
      data_.resize(std::min(limit, data_.size() * 2));
    }
  }

 private:
  std::vector<std::uint8_t> data_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

// Bytes queued for one write: slices of an input Buffer plus messages pgmoat built itself.
class Outbox {
 public:
  void add(std::span<const std::uint8_t> bytes) {
    if (bytes.empty()) return;
    if (!segments_.empty()) {
      auto& last = segments_.back();
      if (static_cast<const std::uint8_t*>(last.data()) + last.size() == bytes.data()) {
        last = {last.data(), last.size() + bytes.size()};
        bytes_ += bytes.size();
        return;
      }
    }
    segments_.emplace_back(bytes.data(), bytes.size());
    bytes_ += bytes.size();
  }
  void add_owned(std::vector<std::uint8_t> bytes) {
    owned_.push_back(std::move(bytes));
    add(std::span<const std::uint8_t>(owned_.back()));
  }
  template <typename String>
  void add_copy(const String& s) {
    add_owned(std::vector<std::uint8_t>(s.begin(), s.end()));
  }
  bool empty() const { return segments_.empty(); }
  // The common case: one contiguous slice (all pass-through bytes of one read).
  bool single() const { return segments_.size() == 1; }
  std::span<const std::uint8_t> front() const { return segments_.front(); }
  std::size_t bytes() const { return bytes_; }

  template <typename ConstBuffer>
  std::vector<ConstBuffer> buffers() const {
    std::vector<ConstBuffer> out;
    out.reserve(segments_.size());
    for (const auto& s : segments_) out.emplace_back(s.data(), s.size());
    return out;
  }
  // Drops the first `n` bytes (already written).
  void consume(std::size_t n) {
    std::size_t whole = 0;
    while (whole < segments_.size() && n >= segments_[whole].size()) {
      n -= segments_[whole].size();
      bytes_ -= segments_[whole].size();
      ++whole;
    }
    segments_.erase(segments_.begin(), segments_.begin() + static_cast<std::ptrdiff_t>(whole));
    if (n > 0 && !segments_.empty()) {
      segments_.front() = segments_.front().subspan(n);
      bytes_ -= n;
    }
  }
  void clear() {
    segments_.clear();
    owned_.clear();
    bytes_ = 0;
  }

 private:
  std::vector<std::span<const std::uint8_t>> segments_;
  std::vector<std::vector<std::uint8_t>> owned_;  // vector data pointers survive moves
  std::size_t bytes_ = 0;
};

}  // namespace pgmoat::proxy
