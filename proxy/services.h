// What every session shares: settings, TLS contexts, the cancel registry and the gate's
// services. Owned by the Server; sessions hold a shared_ptr so a reload never pulls the
// ground from under a running session.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include <boost/asio/ssl/context.hpp>

#include "proxy/cancel_registry.h"
#include "proxy/settings.h"

namespace pgmoat::proxy {

struct GateServices;

struct Services {
  Settings settings;
  std::unique_ptr<boost::asio::ssl::context> server_tls;    // null: answer SSLRequest with 'N'
  std::unique_ptr<boost::asio::ssl::context> upstream_tls;  // null: plaintext upstream
  CancelRegistry cancels;
  std::shared_ptr<GateServices> gate;
  std::atomic<std::size_t> active_sessions{0};
  // Sessions still in startup/authentication: nothing of theirs is in flight, so a drain on
  // SIGTERM does not wait for them.
  std::atomic<std::size_t> sessions_in_login{0};
  std::atomic<std::uint64_t> next_session_id{1};
};

}  // namespace pgmoat::proxy
