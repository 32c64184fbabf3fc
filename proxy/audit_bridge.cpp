#include "proxy/audit_bridge.h"

namespace pgmoat::proxy {

namespace asio = boost::asio;

namespace {

template <typename Token>
auto async_append(audit::AuditLog& log, std::vector<std::string> records, Token&& token) {
  return asio::async_initiate<Token, void(bool)>(
      [&log](auto handler, std::vector<std::string> recs) {
        auto ex = asio::get_associated_executor(handler);
        // The writer calls done() in order on its own thread, so when the last record's
        // done() runs, every earlier one has run: a shared flag carries their failures.
        auto failed = std::make_shared<bool>(false);
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        for (std::size_t i = 0; i + 1 < recs.size(); ++i) {
          log.append(std::move(recs[i]), [failed](bool ok) {
            if (!ok) *failed = true;
          });
        }
        log.append(std::move(recs.back()), [failed, h, ex](bool ok) {
          bool all = ok && !*failed;
          asio::post(ex, [h, all]() { (*h)(all); });
        });
      },
      token, std::move(records));
}

}  // namespace

asio::awaitable<bool> append_durably(audit::AuditLog* log, std::vector<std::string> records) {
  if (log == nullptr || records.empty()) co_return true;
  co_return co_await async_append(*log, std::move(records), asio::use_awaitable);
}

void append_async(audit::AuditLog* log, std::string record) {
  if (log == nullptr) return;
  log->append_deferred(std::move(record));
}

asio::awaitable<bool> sync_records(audit::AuditLog* log, std::uint64_t since,
                                   std::uint64_t through) {
  if (log == nullptr || since == 0) co_return true;
  if (auto ok = log->synced(since, through)) co_return *ok;  // another session's sync covered it
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(bool)>(
      [log, since, through](auto handler) {
        auto ex = asio::get_associated_executor(handler);
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        log->sync(since, through, [h, ex](bool ok) { asio::post(ex, [h, ok] { (*h)(ok); }); });
      },
      asio::use_awaitable);
}

audit::Identity make_identity(const SessionInfo& info) {
  audit::Identity id;
  id.session_id = std::to_string(info.id);
  id.client_addr = info.client_addr;
  id.client_port = info.client_port;
  id.listen_addr = info.listen_addr;
  id.tls_version = info.tls_version;
  id.client_cert_subject = info.tls_subject;
  id.client_cert_fingerprint = info.tls_fingerprint;
  id.user = info.user;
  id.database = info.database;
  id.application_name = info.application_name;
  for (const auto& [k, v] : info.startup_params) {
    if (k == "user" || k == "database" || k == "application_name" || k == "password") continue;
    id.startup_parameters[k] = v;
  }
  id.auth_method = info.auth_method;
  id.backend_pid = static_cast<std::int32_t>(info.backend_pid);
  return id;
}

}  // namespace pgmoat::proxy
