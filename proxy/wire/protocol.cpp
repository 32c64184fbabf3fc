#include "proxy/wire/protocol.h"

namespace pgmoat::wire {

bool is_frontend_tag(char tag) {
  switch (tag) {
    case fe::kBind:
    case fe::kClose:
    case fe::kCopyData:
    case fe::kCopyDone:
    case fe::kCopyFail:
    case fe::kDescribe:
    case fe::kExecute:
    case fe::kFlush:
    case fe::kFunctionCall:
    case fe::kParse:
    case fe::kPassword:
    case fe::kQuery:
    case fe::kSync:
    case fe::kTerminate:
      return true;
    default:
      return false;
  }
}

std::size_t begin_message(std::string& out, char tag) {
  out.push_back(tag);
  std::size_t at = out.size();
  out.append(4, '\0');
  return at;
}

void finish_message(std::string& out, std::size_t length_at) {
  auto len = static_cast<std::uint32_t>(out.size() - length_at);
  out[length_at] = static_cast<char>((len >> 24) & 0xff);
  out[length_at + 1] = static_cast<char>((len >> 16) & 0xff);
  out[length_at + 2] = static_cast<char>((len >> 8) & 0xff);
  out[length_at + 3] = static_cast<char>(len & 0xff);
}

}  // namespace pgmoat::wire
