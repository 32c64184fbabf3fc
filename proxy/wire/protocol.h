// Constants and byte helpers for the PostgreSQL v3 wire protocol.
// https://www.postgresql.org/docs/15/protocol-message-formats.html
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace pgmoat::wire {

// Startup-phase request codes (the int32 after the length of an untagged packet).
constexpr std::uint32_t kProtocolV3 = 196608;        // 3.0
constexpr std::uint32_t kSslRequestCode = 80877103;  // 1234.5679
constexpr std::uint32_t kGssEncRequestCode = 80877104;
constexpr std::uint32_t kCancelRequestCode = 80877102;
constexpr std::size_t kMaxStartupPacket =
    10000;  // same limit as postmaster (MAX_STARTUP_PACKET_LENGTH)

// Frontend message tags.
namespace fe {
constexpr char kBind = 'B';
constexpr char kClose = 'C';
constexpr char kCopyData = 'd';
constexpr char kCopyDone = 'c';
constexpr char kCopyFail = 'f';
constexpr char kDescribe = 'D';
constexpr char kExecute = 'E';
constexpr char kFlush = 'H';
constexpr char kFunctionCall = 'F';
constexpr char kParse = 'P';
constexpr char kPassword = 'p';  // also SASLInitialResponse, SASLResponse, GSSResponse
constexpr char kQuery = 'Q';
constexpr char kSync = 'S';
constexpr char kTerminate = 'X';
}  // namespace fe

// Backend message tags.
namespace be {
constexpr char kAuthentication = 'R';
constexpr char kBackendKeyData = 'K';
constexpr char kBindComplete = '2';
constexpr char kCloseComplete = '3';
constexpr char kCommandComplete = 'C';
constexpr char kCopyData = 'd';
constexpr char kCopyDone = 'c';
constexpr char kCopyInResponse = 'G';
constexpr char kCopyOutResponse = 'H';
constexpr char kCopyBothResponse = 'W';
constexpr char kDataRow = 'D';
constexpr char kEmptyQueryResponse = 'I';
constexpr char kErrorResponse = 'E';
constexpr char kFunctionCallResponse = 'V';
constexpr char kNegotiateProtocolVersion = 'v';
constexpr char kNoData = 'n';
constexpr char kNoticeResponse = 'N';
constexpr char kNotificationResponse = 'A';
constexpr char kParameterDescription = 't';
constexpr char kParameterStatus = 'S';
constexpr char kParseComplete = '1';
constexpr char kPortalSuspended = 's';
constexpr char kReadyForQuery = 'Z';
constexpr char kRowDescription = 'T';
}  // namespace be

// Authentication request subtypes (the int32 after 'R').
enum class AuthCode : std::uint32_t {
  ok = 0,
  kerberos_v5 = 2,
  cleartext = 3,
  md5 = 5,
  gss = 7,
  gss_continue = 8,
  sspi = 9,
  sasl = 10,
  sasl_continue = 11,
  sasl_final = 12,
};

// True for every tag a frontend may send after startup. Anything else is a protocol violation.
bool is_frontend_tag(char tag);

inline std::uint32_t read_u32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}
inline std::uint16_t read_u16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
inline void put_u32(std::string& out, std::uint32_t v) {
  out.push_back(static_cast<char>((v >> 24) & 0xff));
  out.push_back(static_cast<char>((v >> 16) & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
  out.push_back(static_cast<char>(v & 0xff));
}
inline void put_u16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>((v >> 8) & 0xff));
  out.push_back(static_cast<char>(v & 0xff));
}
inline void put_cstr(std::string& out, std::string_view s) {
  out.append(s);
  out.push_back('\0');
}

// Starts a tagged message in `out`; returns the offset of its length field for finish_message.
std::size_t begin_message(std::string& out, char tag);
// Writes the length of the message begun at `length_at`.
void finish_message(std::string& out, std::size_t length_at);

}  // namespace pgmoat::wire
