#include "proxy/session.h"

#include <algorithm>
#include <cctype>
#include <random>

#include <spdlog/spdlog.h>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include "proxy/tls.h"
#include "proxy/wire/protocol.h"
#include "proxy/wire/splitter.h"

namespace pgmoat::proxy {

using namespace boost::asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;

namespace {

// Each direction starts small (two of these are most of an idle session's memory) and doubles
// whenever a read fills it, up to kMaxStreamBuffer, so a large result still moves in big reads.
constexpr std::size_t kInitialBuffer = 4 * 1024;
constexpr std::size_t kMaxStreamBuffer = 256 * 1024;
constexpr std::size_t kFlushThreshold = 256 * 1024;
constexpr std::size_t kMaxLoginMessage = 1 << 20;
constexpr std::size_t kMaxServerWhole = 64u << 20;  // a huge NOTICE/ERROR is still bounded

bool wants_replication(const std::string& v) {
  std::string s(v);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return !(s == "false" || s == "0" || s == "off" || s == "no" || s.empty());
}

std::string auth_method_name(std::uint32_t code) {
  switch (static_cast<wire::AuthCode>(code)) {
    case wire::AuthCode::cleartext:
      return "cleartext";
    case wire::AuthCode::md5:
      return "md5";
    case wire::AuthCode::sasl:
      return "scram-sha-256";
    case wire::AuthCode::gss:
      return "gss";
    case wire::AuthCode::sspi:
      return "sspi";
    default:
      return {};
  }
}

bool auth_needs_response(std::uint32_t code) {
  switch (static_cast<wire::AuthCode>(code)) {
    case wire::AuthCode::cleartext:
    case wire::AuthCode::md5:
    case wire::AuthCode::gss:
    case wire::AuthCode::gss_continue:
    case wire::AuthCode::sspi:
    case wire::AuthCode::sasl:
    case wire::AuthCode::sasl_continue:
      return true;
    default:
      return false;
  }
}

// A name no client will choose for its own prepared statement.
std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::to_string(rng());
}

asio::mutable_buffer to_buffer(std::span<std::uint8_t> s) {
  return asio::buffer(s.data(), s.size());
}

}  // namespace

Session::Session(tcp::socket client, std::shared_ptr<Services> services, std::string listen_addr)
    : services_(std::move(services)),
      client_(std::move(client)),
      client_in_(kInitialBuffer),
      server_in_(kInitialBuffer),
      gate_(services_->gate.get(), info_),
      timer_(client_.socket().get_executor()),
      guard_(std::string(RowGuard::kNamePrefix) + "_" + random_suffix()),
      guard_signal_(client_.socket().get_executor()) {
  info_.id = services_->next_session_id.fetch_add(1);
  ErrorCode ec;
  auto remote = client_.socket().remote_endpoint(ec);
  if (!ec) {
    info_.client_addr = remote.address().to_string();
    info_.client_port = remote.port();
  }
  info_.listen_addr = std::move(listen_addr);
  client_.socket().set_option(tcp::no_delay(true), ec);
  last_activity_ = Clock::now();
  services_->active_sessions.fetch_add(1);
  services_->sessions_in_login.fetch_add(1);
}

Session::~Session() {
  if (!logged_in_) services_->sessions_in_login.fetch_sub(1);
  if (key_registered_) services_->cancels.remove(info_.backend_pid, info_.backend_secret);
  services_->active_sessions.fetch_sub(1);
}

void Session::close() {
  closed_ = true;
  timer_.cancel();
  guard_signal_.cancel();
  client_.close();
  if (server_) server_->close();
}

asio::awaitable<void> Session::run() {
  try {
    co_await run_inner();
  } catch (const std::exception& e) {
    spdlog::error("session {}: unexpected error: {}", info_.id, e.what());
  }
  close();
  gate_.on_session_end();
  if (!info_.user.empty()) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - info_.started);
    spdlog::info(
        "session {} closed: client={}:{} user={} database={} application_name={} "
        "duration_ms={}",
        info_.id, info_.client_addr, info_.client_port, info_.user, info_.database,
        info_.application_name, ms.count());
  }
}

asio::awaitable<void> Session::login_timer() {
  auto self = shared_from_this();
  timer_.expires_after(std::chrono::milliseconds(services_->settings.login_timeout_ms));
  auto [ec] = co_await timer_.async_wait(kTuple);
  if (!ec && !closed_ && !logged_in_) {
    spdlog::warn("session {}: login from {}:{} did not complete within {} ms; closing", info_.id,
                 info_.client_addr, info_.client_port, services_->settings.login_timeout_ms);
    close();
  }
}

asio::awaitable<void> Session::idle_watchdog() {
  auto self = shared_from_this();
  const auto limit = std::chrono::milliseconds(services_->settings.idle_timeout_ms);
  while (!closed_) {
    auto deadline = last_activity_ + limit;
    if (Clock::now() >= deadline) {
      spdlog::info("session {}: idle for {} ms; closing", info_.id, limit.count());
      co_await fail_client("FATAL", "57P05", "pgmoat: terminating connection due to idle timeout");
      close();
      co_return;
    }
    timer_.expires_at(deadline);
    co_await timer_.async_wait(kTuple);
  }
}

asio::awaitable<void> Session::run_inner() {
  auto exec = co_await asio::this_coro::executor;
  if (services_->settings.login_timeout_ms > 0) {
    asio::co_spawn(exec, login_timer(), asio::detached);
  }
  gate_.on_accepted();
  Login result = co_await login();
  if (result == Login::done && !info_.user.empty()) {
    gate_.on_login_failed(login_error_.empty() ? "client closed the connection during login"
                                               : login_error_);
  }
  logged_in_ = true;
  services_->sessions_in_login.fetch_sub(1);
  timer_.cancel();  // ends login_timer()
  if (result == Login::done || closed_) co_return;
  gate_.on_login_complete();
  spdlog::info(
      "session {} connected: client={}:{} user={} database={} application_name={} "
      "tls={} auth={} backend_pid={}",
      info_.id, info_.client_addr, info_.client_port, info_.user, info_.database,
      info_.application_name, info_.tls_version.empty() ? "off" : info_.tls_version,
      info_.auth_method, info_.backend_pid);
  if (services_->settings.idle_timeout_ms > 0) {
    watch_idle_ = true;
    last_activity_ = Clock::now();
    asio::co_spawn(exec, idle_watchdog(), asio::detached);
  }
  co_await (client_to_server() && server_to_client());
}

asio::awaitable<void> Session::fail_client(std::string_view severity, std::string_view sqlstate,
                                           const std::string& message) {
  spdlog::warn("session {} client={}:{}: {} {}: {}", info_.id, info_.client_addr, info_.client_port,
               severity, sqlstate, message);
  if (!logged_in_) login_error_ = std::string(sqlstate) + " " + message;
  std::string msg = wire::error_response(severity, sqlstate, message);
  co_await client_.write(asio::buffer(msg));
}

asio::awaitable<std::optional<wire::StartupPacket>> Session::read_startup() {
  for (;;) {
    std::uint8_t head[4];
    if (auto ec = co_await client_.read_exact(asio::buffer(head)); ec) co_return std::nullopt;
    std::uint32_t len = wire::read_u32(head);
    if (len < 8 || len > wire::kMaxStartupPacket) {
      co_await fail_client(
          "FATAL", "08P01",
          "pgmoat: invalid length of startup packet (" + std::to_string(len) + " bytes)");
      co_return std::nullopt;
    }
    std::vector<std::uint8_t> packet(len);
    std::copy(std::begin(head), std::end(head), packet.begin());
    if (auto ec = co_await client_.read_exact(asio::buffer(packet.data() + 4, len - 4)); ec) {
      co_return std::nullopt;
    }
    std::string error;
    auto p = wire::parse_startup(packet, &error);
    if (!p) {
      co_await fail_client("FATAL", "08P01", "pgmoat: " + error);
      co_return std::nullopt;
    }
    if (p->code == wire::kSslRequestCode) {
      if (client_.tls()) {
        co_await fail_client("FATAL", "08P01", "pgmoat: SSLRequest received twice");
        co_return std::nullopt;
      }
      if (!services_->server_tls) {
        co_await client_.write(asio::buffer("N", 1));
        continue;
      }
      // Bytes that arrived with the SSLRequest were sent in plaintext before the handshake:
      // a protocol violation (and the shape of CVE-2021-23214), so close.
      if (client_.socket().available() > 0) {
        spdlog::warn("session {} client={}:{}: plaintext data after SSLRequest; closing", info_.id,
                     info_.client_addr, info_.client_port);
        co_return std::nullopt;
      }
      co_await client_.write(asio::buffer("S", 1));
      if (auto ec =
              co_await client_.start_tls(*services_->server_tls, asio::ssl::stream_base::server);
          ec) {
        spdlog::warn("session {} client={}:{}: TLS handshake failed: {}", info_.id,
                     info_.client_addr, info_.client_port, ec.message());
        co_return std::nullopt;
      }
      info_.tls_version = tls_version(client_.native_ssl());
      info_.tls_subject = peer_subject(client_.native_ssl());
      info_.tls_fingerprint = peer_fingerprint(client_.native_ssl());
      continue;
    }
    if (p->code == wire::kGssEncRequestCode) {
      co_await client_.write(asio::buffer("N", 1));
      continue;
    }
    if (p->code == wire::kCancelRequestCode) {
      co_await forward_cancel(p->cancel_pid, p->cancel_key);
      co_return std::nullopt;
    }
    if ((p->code >> 16) != 3) {
      co_await fail_client("FATAL", "0A000",
                           "unsupported frontend protocol " + std::to_string(p->code >> 16) + "." +
                               std::to_string(p->code & 0xffff) + ": pgmoat supports 3.0");
      co_return std::nullopt;
    }
    co_return p;
  }
}

asio::awaitable<void> Session::forward_cancel(std::uint32_t pid, std::uint32_t key) {
  if (!services_->cancels.contains(pid, key)) {
    spdlog::warn("cancel request from {}:{} for backend pid {} with an unknown key: ignored",
                 info_.client_addr, info_.client_port, pid);
    co_return;
  }
  const auto& s = services_->settings;
  auto exec = co_await asio::this_coro::executor;
  tcp::resolver resolver(exec);
  auto [ec, results] =
      co_await resolver.async_resolve(s.upstream_host, std::to_string(s.upstream_port), kTuple);
  if (ec) co_return;
  tcp::socket sock(exec);
  auto [cec, ep] = co_await asio::async_connect(sock, results, kTuple);
  if (cec) {
    spdlog::warn("cancel for backend pid {}: cannot reach upstream: {}", pid, cec.message());
    co_return;
  }
  std::string packet = wire::build_cancel_request(pid, key);
  co_await asio::async_write(sock, asio::buffer(packet), kTuple);
  // Postgres closes the connection without answering; wait for that so the cancel is sent.
  std::uint8_t ignored[1];
  co_await sock.async_read_some(asio::buffer(ignored), kTuple);
  spdlog::info("cancel request forwarded for backend pid {} (from {}:{})", pid, info_.client_addr,
               info_.client_port);
}

asio::awaitable<Session::Login> Session::login() {
  auto p = co_await read_startup();
  if (!p) co_return Login::done;
  startup_ = std::move(*p);
  const std::string* user = startup_.get("user");
  if (user == nullptr || user->empty()) {
    co_await fail_client("FATAL", "28000", "no PostgreSQL user name specified in startup packet");
    co_return Login::done;
  }
  info_.user = *user;
  const std::string* db = startup_.get("database");
  info_.database = (db != nullptr && !db->empty()) ? *db : *user;
  if (const std::string* app = startup_.get("application_name")) info_.application_name = *app;
  if (const std::string* repl = startup_.get("replication");
      repl != nullptr && wants_replication(*repl) && !services_->settings.allow_replication) {
    co_await fail_client("FATAL", "0A000",
                         "pgmoat: replication connections are not allowed through pgmoat "
                         "(set limits.allow_replication = true to allow them)");
    co_return Login::done;
  }
  if (auto refusal = gate_.on_startup(startup_)) {
    co_await fail_client("FATAL", "42501", *refusal);
    co_return Login::done;
  }
  info_.startup_params = startup_.params;
  if (!co_await connect_upstream()) co_return Login::done;
  if (!co_await relay_authentication()) co_return Login::done;
  co_return Login::proceed;
}

asio::awaitable<bool> Session::connect_upstream() {
  const auto& s = services_->settings;
  auto exec = co_await asio::this_coro::executor;
  const std::string where = s.upstream_host + ":" + std::to_string(s.upstream_port);
  tcp::resolver resolver(exec);
  auto [rec, results] =
      co_await resolver.async_resolve(s.upstream_host, std::to_string(s.upstream_port), kTuple);
  if (rec) {
    co_await fail_client(
        "FATAL", "08006",
        "pgmoat: could not resolve upstream host \"" + s.upstream_host + "\": " + rec.message());
    co_return false;
  }
  server_ = std::make_unique<Stream>(tcp::socket(exec));
  asio::steady_timer timer(exec, std::chrono::milliseconds(s.connect_timeout_ms));
  auto outcome = co_await (asio::async_connect(server_->socket(), results, kTuple) ||
                           timer.async_wait(kTuple));
  ErrorCode cec;
  if (outcome.index() == 1) {
    cec = asio::error::timed_out;
  } else {
    cec = std::get<0>(std::get<0>(outcome));
  }
  if (cec) {
    co_await fail_client(
        "FATAL", "08006",
        "pgmoat: could not connect to upstream server at " + where + ": " + cec.message());
    co_return false;
  }
  ErrorCode ignored;
  server_->socket().set_option(tcp::no_delay(true), ignored);
  if (services_->upstream_tls) {
    std::string req;
    wire::put_u32(req, 8);
    wire::put_u32(req, wire::kSslRequestCode);
    std::uint8_t answer = 0;
    ErrorCode ec = co_await server_->write(asio::buffer(req));
    if (!ec) ec = co_await server_->read_exact(asio::buffer(&answer, 1));
    if (ec || answer != 'S') {
      co_await fail_client("FATAL", "08006",
                           "pgmoat: upstream server at " + where +
                               (ec ? " closed the connection during TLS negotiation"
                                   : " does not accept TLS, but upstream.tls_mode requires it"));
      co_return false;
    }
    if (auto hec = co_await server_->start_tls(*services_->upstream_tls,
                                               asio::ssl::stream_base::client, s.upstream_host);
        hec) {
      co_await fail_client(
          "FATAL", "08006",
          "pgmoat: TLS handshake with upstream server at " + where + " failed: " + hec.message());
      co_return false;
    }
  }
  std::string packet = wire::build_startup(startup_);
  if (auto ec = co_await server_->write(asio::buffer(packet)); ec) {
    co_await fail_client("FATAL", "08006",
                         "pgmoat: upstream server at " + where + " closed the connection");
    co_return false;
  }
  co_return true;
}

asio::awaitable<std::optional<std::vector<std::uint8_t>>> Session::read_message(Stream& s,
                                                                                Buffer& buf,
                                                                                bool from_client) {
  for (;;) {
    auto data = buf.readable();
    std::size_t need = 5;
    if (data.size() >= 5) {
      std::uint32_t len = wire::read_u32(data.data() + 1);
      if (len < 4 || len + std::size_t{1} > kMaxLoginMessage ||
          (from_client && !wire::is_frontend_tag(static_cast<char>(data[0])))) {
        if (from_client) {
          co_await fail_client("FATAL", "08P01",
                               "pgmoat: protocol violation: invalid message during login");
        } else {
          co_await fail_client("FATAL", "08P01",
                               "pgmoat: invalid message from upstream server during login");
        }
        co_return std::nullopt;
      }
      need = len + std::size_t{1};
      if (data.size() >= need) {
        std::vector<std::uint8_t> msg(data.begin(), data.begin() + static_cast<long>(need));
        buf.consume(need);
        co_return msg;
      }
    }
    buf.prepare(need);
    auto [ec, n] = co_await s.read_some(to_buffer(buf.writable()));
    if (ec) co_return std::nullopt;
    buf.commit(n);
  }
}

asio::awaitable<bool> Session::relay_authentication() {
  for (;;) {
    auto msg = co_await read_message(*server_, server_in_, false);
    if (!msg) {
      co_await fail_client("FATAL", "08006",
                           "pgmoat: upstream server closed the connection during login");
      co_return false;
    }
    const char tag = static_cast<char>((*msg)[0]);
    if (tag == wire::be::kAuthentication) {
      auto auth = wire::parse_authentication(*msg);
      if (!auth) {
        co_await fail_client("FATAL", "08P01",
                             "pgmoat: malformed authentication request from upstream");
        co_return false;
      }
      if (std::string m = auth_method_name(auth->code); !m.empty()) info_.auth_method = m;
      if (auth->code == static_cast<std::uint32_t>(wire::AuthCode::sasl)) {
        // Channel binding binds the client's SCRAM exchange to the TLS connection it sees,
        // which ends at pgmoat: never offer the -PLUS variants through the proxy.
        std::vector<std::string> mechs;
        for (auto& m : auth->sasl_mechanisms) {
          if (!m.ends_with("-PLUS")) mechs.push_back(m);
        }
        if (mechs.empty()) {
          co_await fail_client("FATAL", "28000",
                               "pgmoat: the upstream server offers only channel-binding "
                               "authentication, which cannot pass through a proxy");
          co_return false;
        }
        std::string rebuilt = wire::build_sasl_mechanisms(mechs);
        msg->assign(rebuilt.begin(), rebuilt.end());
      }
      if (auto ec = co_await client_.write(asio::buffer(*msg)); ec) co_return false;
      if (auth_needs_response(auth->code)) {
        auto reply = co_await read_message(client_, client_in_, true);
        if (!reply) co_return false;
        const char rtag = static_cast<char>((*reply)[0]);
        if (rtag == wire::fe::kTerminate) co_return false;
        if (rtag != wire::fe::kPassword) {
          co_await fail_client("FATAL", "08P01",
                               std::string("pgmoat: expected an authentication response, got "
                                           "message type '") +
                                   rtag + "'");
          co_return false;
        }
        if (auto ec = co_await server_->write(asio::buffer(*reply)); ec) {
          co_await fail_client("FATAL", "08006",
                               "pgmoat: upstream server closed the connection during login");
          co_return false;
        }
      }
      continue;
    }
    if (tag == wire::be::kBackendKeyData) {
      if (auto key = wire::parse_backend_key(*msg)) {
        info_.backend_pid = key->pid;
        info_.backend_secret = key->secret;
      }
    }
    if (tag == wire::be::kErrorResponse) {  // FATAL: the server closes
      if (auto fields = wire::parse_error(*msg)) {
        login_error_ = fields->sqlstate() + " " + fields->message();
      }
      co_await client_.write(asio::buffer(*msg));
      co_return false;
    }
    if (tag == wire::be::kParameterStatus) gate_.on_parameter_status(*msg);
    if (auto ec = co_await client_.write(asio::buffer(*msg)); ec) co_return false;
    if (tag == wire::be::kReadyForQuery) {
      if (auto st = wire::parse_ready_for_query(*msg)) gate_.on_ready(*st);
      if (info_.backend_pid != 0) {
        services_->cancels.add(info_.backend_pid, info_.backend_secret);
        key_registered_ = true;
      }
      co_return true;
    }
  }
}

bool Session::write_now(Stream& to, Outbox& out) {
  if (out.empty()) return true;
  ErrorCode ec;
  const std::size_t n = out.single()
                            ? to.write_now(asio::buffer(out.front().data(), out.front().size()), ec)
                            : to.write_now(out.buffers<asio::const_buffer>(), ec);
  if (ec) {
    out.clear();
    close();
    return false;
  }
  if (n == out.bytes()) {
    out.clear();
    return true;
  }
  out.consume(n);
  return false;
}

asio::awaitable<bool> Session::flush(Stream& to, Outbox& out) {
  if (write_now(to, out)) co_return true;
  co_return co_await flush_rest(to, out);
}

asio::awaitable<bool> Session::flush_rest(Stream& to, Outbox& out) {
  if (closed_) co_return false;
  if (out.empty()) co_return true;
  ErrorCode ec;
  if (out.single()) {
    ec = co_await to.write(asio::buffer(out.front().data(), out.front().size()));
  } else {
    ec = co_await to.write(out.buffers<asio::const_buffer>());
  }
  out.clear();
  if (ec) {
    close();
    co_return false;
  }
  co_return true;
}

asio::awaitable<void> Session::client_to_server() {
  wire::Splitter splitter("QPEC", services_->settings.max_message_bytes + 1,
                          &wire::is_frontend_tag);
  Outbox out;
  for (;;) {
    auto r = splitter.next(client_in_.readable());
    if (r.status == wire::Splitter::Status::need_more) {
      if (!write_now(*server_, out) && !co_await flush_rest(*server_, out)) break;
      client_in_.prepare(r.need);
      auto [ec, n] = co_await client_.read_some(to_buffer(client_in_.writable()));
      if (ec) break;
      client_in_.commit(n);
      client_in_.grow_if_full(n, kMaxStreamBuffer);
      if (watch_idle_) last_activity_ = Clock::now();
      continue;
    }
    if (r.status == wire::Splitter::Status::error) {
      co_await flush(*server_, out);
      co_await fail_client("FATAL", "08P01", "pgmoat: protocol violation: " + splitter.error());
      break;
    }
    const auto& piece = r.piece;
    // Query, Parse, Execute and Close are judged before they are forwarded; the rest passes.
    std::optional<StatementGate::Verdict> verdict;
    const char* malformed = nullptr;
    if (piece.kind == wire::Splitter::Kind::whole && piece.tag == wire::fe::kQuery) {
      if (auto sql = wire::parse_query(piece.bytes)) {
        verdict = gate_.query_now(*sql);
        if (!verdict) {
          StatementGate::Verdict later = co_await gate_.query_later(*sql);
          verdict = std::move(later);
        }
      } else {
        malformed = "Query";
      }
    } else if (piece.kind == wire::Splitter::Kind::whole && piece.tag == wire::fe::kParse) {
      if (auto parse = wire::parse_parse(piece.bytes)) {
        verdict = co_await gate_.on_parse(*parse);
      } else {
        malformed = "Parse";
      }
    } else if (piece.kind == wire::Splitter::Kind::whole && piece.tag == wire::fe::kExecute) {
      auto plan = gate_.plan_execute(piece.bytes);
      if (plan.unanswered) {
        // Bound to a statement parsed again under a taken name, not answered yet: the server
        // may keep the old one. Wait for every answer, then judge it as what it runs.
        const bool flushed = co_await flush(*server_, out);
        if (!flushed) break;
        const bool answered = co_await wait_until_answered();
        if (!answered) break;
        plan = gate_.plan_execute(piece.bytes);
      }
      // Not a conditional expression around co_await: GCC 12 miscompiles those.
      if (plan.waits()) {
        StatementGate::Verdict waited = co_await gate_.finish_execute(std::move(plan));
        verdict = std::move(waited);
      } else {
        verdict = gate_.finish_execute_now(std::move(plan));
      }
    } else if (piece.kind == wire::Splitter::Kind::whole && piece.tag == wire::fe::kClose) {
      verdict = gate_.on_close(piece.bytes);
    } else if (piece.kind != wire::Splitter::Kind::rest) {
      gate_.on_client_message(piece.bytes);
    }
    if (malformed != nullptr) {
      co_await flush(*server_, out);
      co_await fail_client("FATAL", "08P01",
                           std::string("pgmoat: protocol violation: malformed ") + malformed);
      break;
    }
    if (verdict && verdict->guard) {
      if (!co_await flush(*server_, out)) break;
      if (!co_await run_guard(verdict->guard, piece.bytes, piece.tag == wire::fe::kQuery)) break;
      client_in_.consume(r.consumed);
      continue;
    }
    if (verdict && verdict->replace) {
      out.add_copy(verdict->bytes);
      tracker_.sent(verdict->bytes[0]);
      if (verdict->bytes[0] == wire::fe::kParse) extended_open_ = true;
      report_parse_outcomes();
    } else {
      out.add(piece.bytes);
      if (piece.kind != wire::Splitter::Kind::rest) {
        tracker_.sent(piece.tag);
        report_parse_outcomes();  // a Parse sent while the server skips
        switch (piece.tag) {
          case wire::fe::kParse:
          case wire::fe::kBind:
          case wire::fe::kDescribe:
          case wire::fe::kExecute:
          case wire::fe::kClose:
            extended_open_ = true;
            break;
          case wire::fe::kSync:
            extended_open_ = false;
            break;
          default:
            break;
        }
      }
    }
    const bool terminate = piece.tag == wire::fe::kTerminate && piece.last;
    client_in_.consume(r.consumed);
    if (terminate) {
      co_await flush(*server_, out);
      break;
    }
    if (out.bytes() >= kFlushThreshold && !co_await flush(*server_, out)) break;
  }
  close();
}

asio::awaitable<void> Session::server_to_client() {
  wire::Splitter splitter("ZCEsS", kMaxServerWhole, nullptr);
  // Consecutive DataRows (or COPY TO STDOUT's CopyData: pg_dump) of a client's answer pass
  // as one piece: the tracker, the gate and the outbox see them once per read, not once per
  // row. Answers to the guard are read message by message.
  static constexpr char kRunTags[] = {wire::be::kDataRow, wire::be::kCopyData};
  splitter.set_run_tags(std::string_view(kRunTags, sizeof kRunTags));
  Outbox out;
  for (;;) {
    auto r = splitter.next(server_in_.readable(), tracker_.next_sender() == Sender::client);
    if (r.status == wire::Splitter::Status::need_more) {
      if (!write_now(client_, out) && !co_await flush_rest(client_, out)) break;
      server_in_.prepare(r.need);
      auto [ec, n] = co_await server_->read_some(to_buffer(server_in_.writable()));
      if (ec) {
        if (!closed_ && !fatal_seen_ && !splitter.streaming()) {
          co_await fail_client("FATAL", "08006",
                               "pgmoat: connection to the upstream server was lost");
        } else if (!closed_) {
          spdlog::warn("session {}: upstream connection lost ({})", info_.id, ec.message());
        }
        break;
      }
      server_in_.commit(n);
      server_in_.grow_if_full(n, kMaxStreamBuffer);
      if (watch_idle_) last_activity_ = Clock::now();
      continue;
    }
    if (r.status == wire::Splitter::Status::error) {
      co_await flush(client_, out);
      co_await fail_client("FATAL", "08P01",
                           "pgmoat: invalid message from upstream: " + splitter.error());
      break;
    }
    const auto& piece = r.piece;
    if (piece.kind != wire::Splitter::Kind::rest) answer_ = tracker_.on_server(piece.tag);
    report_parse_outcomes();
    if (piece.kind == wire::Splitter::Kind::whole && piece.tag == wire::be::kReadyForQuery) {
      if (auto st = wire::parse_ready_for_query(piece.bytes)) guard_.on_ready(*st);
    } else if (piece.kind == wire::Splitter::Kind::whole &&
               piece.tag == wire::be::kParameterStatus) {
      gate_.on_parameter_status(piece.bytes);  // whoever's answer it is: the server's state
    }
    if (answer_.sender == Sender::client) {
      if (piece.kind == wire::Splitter::Kind::whole) {
        deliver(piece.tag, piece.bytes, out, false);
      } else {
        out.add(piece.bytes);
      }
    } else {
      // An answer to the guard: assembled whole (the guard holds or reads it).
      if (guard_message_.size() + piece.bytes.size() > RowGuard::kMaxHeldBytes) {
        guard_message_oversized_ = true;
      } else {
        guard_message_.append(reinterpret_cast<const char*>(piece.bytes.data()),
                              piece.bytes.size());
      }
      if (piece.last) {
        if (guard_message_oversized_) {
          guard_.note_oversized();
        } else {
          on_guard_message(guard_message_, out);
        }
        guard_message_.clear();
        guard_message_oversized_ = false;
      }
    }
    server_in_.consume(r.consumed);
    if (piece.last) {
      if (guard_.counting() && tracker_.guard_pending() == 0) guard_decide(out);
      if (guard_waiting_ && tracker_.idle()) guard_signal();
    }
    if (out.bytes() >= kFlushThreshold) {
      if (!co_await flush(client_, out)) break;
    }
  }
  close();
}

void Session::deliver(char tag, wire::Bytes bytes, Outbox& out, bool copy) {
  auto add = [&](wire::Bytes b) {
    if (copy) {
      out.add_copy(b);
    } else {
      out.add(b);
    }
  };
  switch (tag) {
    case wire::be::kReadyForQuery:
      if (auto st = wire::parse_ready_for_query(bytes)) gate_.on_ready(*st);
      add(bytes);
      break;
    case wire::be::kPortalSuspended:
      gate_.on_portal_suspended();
      add(bytes);
      break;
    case wire::be::kCommandComplete:
      gate_.on_command_complete(bytes);
      add(bytes);
      break;
    case wire::be::kErrorResponse: {
      auto fields = wire::parse_error(bytes);
      if (fields && fields->fatal()) fatal_seen_ = true;
      if (auto rewritten = gate_.on_error(fields ? &*fields : nullptr)) {
        out.add_copy(*rewritten);
      } else {
        add(bytes);
      }
      break;
    }
    default:
      add(bytes);
  }
}

void Session::deliver_owned(const std::string& message, Outbox& out) {
  if (message.empty()) return;
  deliver(message[0],
          wire::Bytes(reinterpret_cast<const std::uint8_t*>(message.data()), message.size()), out,
          true);
}

// ---- Row guard ----------------------------------------------------------------------------

void Session::guard_signal() {
  guard_waiting_ = false;
  guard_signal_.cancel();
}

asio::awaitable<void> Session::wait_guard_signal() {
  guard_waiting_ = true;
  guard_signal_.expires_at(asio::steady_timer::time_point::max());
  co_await guard_signal_.async_wait(asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<bool> Session::send_tracked(std::vector<RowGuard::Send> sends) {
  Outbox out;
  for (auto& s : sends) {
    tracker_.sent_all(s.bytes, s.sender, s.step);
    out.add_copy(s.bytes);
  }
  report_parse_outcomes();
  co_return co_await flush(*server_, out);
}

void Session::report_parse_outcomes() {
  while (tracker_.has_parse_outcome()) gate_.on_parse_outcome(tracker_.take_parse_outcome());
  if (const auto n = tracker_.take_unanswered_boundaries(); n != 0) gate_.on_unanswered(n);
}

asio::awaitable<bool> Session::wait_until_answered() {
  // Extended messages without a Sync are answered only once the server flushes: ask it to.
  if (extended_open_ && !tracker_.idle()) {
    std::vector<RowGuard::Send> flush_first;
    flush_first.push_back(RowGuard::Send{wire::build_flush(), Sender::client, 0});
    const bool sent = co_await send_tracked(std::move(flush_first));
    if (!sent) co_return false;
  }
  while (!tracker_.idle() && !closed_) co_await wait_guard_signal();
  co_return !closed_;
}

asio::awaitable<bool> Session::run_guard(std::shared_ptr<const GuardSpec> spec, wire::Bytes message,
                                         bool simple) {
  const std::string_view text(reinterpret_cast<const char*>(message.data()), message.size());
  RowGuard::Mode mode = RowGuard::Mode::extended;
  if (simple) {
    // The transaction state decides how to wrap the query: wait until everything sent
    // before it is answered (a simple-protocol client is waiting anyway).
    const bool answered = co_await wait_until_answered();
    if (!answered) co_return false;
    mode = info_.transaction_status == 'T' ? RowGuard::Mode::simple_block
                                           : RowGuard::Mode::simple_idle;
  }
  // In a failed transaction (or while the server skips to Sync) the statement cannot run:
  // forward it as it is and let the server say so.
  if (tracker_.skipping() || (simple && info_.transaction_status == 'E')) {
    std::vector<RowGuard::Send> as_is;
    as_is.push_back(RowGuard::Send{std::string(text), Sender::client, 0});
    co_return co_await send_tracked(std::move(as_is));
  }
  if (gate_.statements_discarded() != discards_seen_) {
    discards_seen_ = gate_.statements_discarded();
    guard_.forget_statement();
  }
  if (gate_.may_end_transaction() != enders_seen_) {
    enders_seen_ = gate_.may_end_transaction();
    guard_.forget_baseline();
  }
  if (gate_.may_change_counts() != changers_seen_) {
    changers_seen_ = gate_.may_change_counts();
    guard_.forget_chain();
  }
  auto sends = guard_.start(mode, std::move(spec), text, tracker_.ready_pending());
  if (!co_await send_tracked(std::move(sends))) co_return false;
  while (guard_.counting() && !closed_) co_await wait_guard_signal();
  if (closed_) co_return false;
  if (!guard_final_.empty()) {
    auto final_sends = std::move(guard_final_);
    guard_final_.clear();
    if (!co_await send_tracked(std::move(final_sends))) co_return false;
  }
  while (guard_.active() && !closed_) co_await wait_guard_signal();
  co_return !closed_;
}

void Session::on_guard_message(std::string_view message, Outbox& out) {
  // The server now skips to the next Sync, whether or not the client sees this error.
  if (!message.empty() && message[0] == wire::be::kErrorResponse) gate_.note_error();
  if (auto now = guard_.on_message(answer_.sender, answer_.step, message)) {
    deliver_owned(*now, out);
  }
  if (answer_.step == RowGuard::kFinal && answer_.ends && message[0] == wire::be::kReadyForQuery) {
    for (const auto& m : guard_.on_final_ready(message)) deliver_owned(m, out);
    guard_signal();
  }
}

void Session::guard_decide(Outbox& out) {
  using Result = RowGuard::Result;
  Result result = guard_.decide();
  // Not enforced (log rule, monitor mode) and nothing went wrong on the server (track_counts
  // is off): the statement goes on, and the trail says it was not counted.
  if (result == Result::count_failed && !guard_.spec().enforce && !guard_.count_errored()) {
    gate_.record_unenforced_over(guard_);
    result = Result::pass;
  }
  const RowGuard::Mode mode = guard_.mode();
  const bool idle_mode = mode == RowGuard::Mode::simple_idle;
  switch (result) {
    case Result::pass:
    case Result::client_failed:
      if (result == Result::pass && guard_.rows() > guard_.spec().max_rows &&
          guard_.count_error().empty()) {
        gate_.record_unenforced_over(guard_);
      }
      if (idle_mode) {
        guard_final_.push_back(guard_.finish_idle(result == Result::pass));
      } else {
        for (const auto& m : guard_.take_held()) deliver_owned(m, out);
      }
      break;
    case Result::before_failed:
      deliver_owned(guard_.error_message(), out);
      break;
    case Result::skipped:
      break;
    case Result::over:
    case Result::count_failed:
    case Result::too_large: {
      const bool in_place = mode == RowGuard::Mode::extended && tracker_.skipping();
      std::string refusal = gate_.refuse_guarded(guard_, result, in_place);
      if (in_place) {
        out.add_copy(refusal);
        break;
      }
      if (idle_mode) guard_final_.push_back(RowGuard::discarded_rollback());
      guard_final_.push_back(RowGuard::Send{std::move(refusal), Sender::client, 0});
      guard_.reset();
      break;
    }
  }
  guard_signal();
}

}  // namespace pgmoat::proxy
