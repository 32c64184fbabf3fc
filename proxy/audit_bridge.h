// Awaiting the audit writer from a session coroutine: the writer thread reports durability,
// and the result is posted back to the session's own executor.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <boost/asio.hpp>

#include "audit/audit_log.h"
#include "audit/record.h"
#include "proxy/session_info.h"

namespace pgmoat::proxy {

// Appends `records` in order and completes with true only when every one of them is on disk.
// With a null log it completes with true at once (auditing off).
boost::asio::awaitable<bool> append_durably(audit::AuditLog* log, std::vector<std::string> records);

// Fire and forget (connection records, outcomes): a failure is logged by the writer. The
// record costs no fdatasync of its own (AuditLog::append_deferred).
void append_async(audit::AuditLog* log, std::string record);

// Completes with true once every record with a ticket in [since, through] is on disk, false
// when one of them (or a later one) could not be written. `since == 0`: nothing to wait for.
boost::asio::awaitable<bool> sync_records(audit::AuditLog* log, std::uint64_t since,
                                          std::uint64_t through);

audit::Identity make_identity(const SessionInfo& info);

}  // namespace pgmoat::proxy
