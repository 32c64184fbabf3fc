// Outbox: the slices a pump sends, and what is left of them after a partial write.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proxy/buffer.h"

namespace pgmoat::proxy {
namespace {

std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::string contents(const Outbox& out) {
  std::string all;
  for (const auto& b : out.buffers<std::span<const std::uint8_t>>()) {
    all.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  return all;
}

TEST(Outbox, AdjacentSlicesOfOneBufferMerge) {
  const std::string read = "abcdef";
  Outbox out;
  out.add(bytes(read).subspan(0, 2));
  out.add(bytes(read).subspan(2, 4));
  EXPECT_TRUE(out.single());
  EXPECT_EQ(out.bytes(), 6u);
  EXPECT_EQ(contents(out), "abcdef");
}

TEST(Outbox, ConsumeDropsWrittenBytesAcrossSlices) {
  const std::string a = "0123", b = "4567", c = "89";
  for (std::size_t written = 0; written <= 10; ++written) {
    Outbox out;
    out.add(bytes(a));
    out.add_copy(b);  // not adjacent to `a`: a slice of its own
    out.add(bytes(c));
    ASSERT_EQ(out.bytes(), 10u);
    out.consume(written);
    EXPECT_EQ(out.bytes(), 10u - written) << written;
    EXPECT_EQ(contents(out), std::string("0123456789").substr(written)) << written;
    EXPECT_EQ(out.empty(), written == 10) << written;
  }
}

TEST(Outbox, ConsumeThenAddKeepsOrder) {
  const std::string a = "hello ", b = "world";
  Outbox out;
  out.add(bytes(a));
  out.consume(3);
  out.add_copy(b);
  EXPECT_EQ(contents(out), "lo world");
}

}  // namespace
}  // namespace pgmoat::proxy
