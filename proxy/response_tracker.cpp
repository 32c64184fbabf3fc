#include "proxy/response_tracker.h"

#include <algorithm>

#include "proxy/wire/protocol.h"

namespace pgmoat::proxy {

void ResponseTracker::sent(char tag, Sender sender, std::uint32_t step) {
  Kind kind;
  switch (tag) {
    case wire::fe::kQuery:
      kind = Kind::query;
      break;
    case wire::fe::kFunctionCall:
      kind = Kind::function_call;
      break;
    case wire::fe::kSync:
      kind = Kind::sync;
      break;
    case wire::fe::kParse:
      kind = Kind::parse;
      break;
    case wire::fe::kBind:
      kind = Kind::bind;
      break;
    case wire::fe::kClose:
      kind = Kind::close;
      break;
    case wire::fe::kDescribe:
      kind = Kind::describe;
      break;
    case wire::fe::kExecute:
      kind = Kind::execute;
      break;
    case wire::fe::kCopyDone:
    case wire::fe::kCopyFail:
      copy_ended();
      return;
    default:
      return;  // Flush, CopyData, Terminate: no answer of their own
  }
  const bool boundary = kind == Kind::query || kind == Kind::function_call || kind == Kind::sync;
  if (copy_in_ && kind == Kind::sync) {  // ignored by the server during copy-in
    if (sender == Sender::client) ++unanswered_boundaries_;
    return;
  }
  if (skipping_) {
    if (kind != Kind::sync) {  // the server will skip it without a word
      if (kind == Kind::parse && sender == Sender::client) parse_outcomes_.push_back(false);
      if (boundary && sender == Sender::client) ++unanswered_boundaries_;
      return;
    }
    skipping_ = false;
  }
  pending_.push_back({kind, sender, step});
  if (sender != Sender::client) ++guard_pending_;
}

void ResponseTracker::copy_ended() {
  if (copy_in_) {
    copy_in_ = false;
  } else if (std::any_of(pending_.begin(), pending_.end(),
                         [](const Entry& e) { return e.kind == Kind::execute; })) {
    // Sent before the server said whether an Execute is a COPY: mark where the data ends, so
    // that CopyInResponse knows which Syncs the server will ignore.
    pending_.push_back({Kind::copy_end, Sender::client, 0});
    ++copy_ends_;
  }
}

void ResponseTracker::sent_all(std::string_view bytes, Sender sender, std::uint32_t step) {
  std::size_t at = 0;
  while (bytes.size() - at >= 5) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data() + at);
    sent(bytes[at], sender, step);
    at += std::size_t{wire::read_u32(p + 1)} + 1;
  }
}

void ResponseTracker::pop_front(bool parse_ok) {
  const Entry& e = pending_.front();
  if (e.sender != Sender::client) {
    --guard_pending_;
  } else if (e.kind == Kind::parse) {
    parse_outcomes_.push_back(parse_ok);
  }
  pending_.pop_front();
  while (copy_ends_ != 0 && !pending_.empty() && pending_.front().kind == Kind::copy_end) {
    pending_.pop_front();
    --copy_ends_;
  }
}

void ResponseTracker::skip_to_sync() {
  while (!pending_.empty() && pending_.front().kind != Kind::sync) {
    const Entry& e = pending_.front();
    if (e.sender == Sender::client && (e.kind == Kind::query || e.kind == Kind::function_call)) {
      ++unanswered_boundaries_;
    }
    pop_front();
  }
  if (pending_.empty()) skipping_ = true;
}

ResponseTracker::Answer ResponseTracker::on_server(char tag) {
  if (pending_.empty()) return {};  // unsolicited: a notice, a parameter change, a FATAL
  const Entry front = pending_.front();
  Answer a{front.sender, front.step, false};
  // Asynchronous messages can arrive inside any answer; they end nothing.
  if (tag == wire::be::kNoticeResponse || tag == wire::be::kParameterStatus ||
      tag == wire::be::kNotificationResponse) {
    return a;
  }
  switch (front.kind) {
    case Kind::query:
    case Kind::function_call:
    case Kind::sync:
      if (tag == wire::be::kReadyForQuery) {
        a.ends = true;
        pop_front();
      }
      return a;
    case Kind::parse:
      a.ends = tag == wire::be::kParseComplete;
      break;
    case Kind::bind:
      a.ends = tag == wire::be::kBindComplete;
      break;
    case Kind::close:
      a.ends = tag == wire::be::kCloseComplete;
      break;
    case Kind::describe:
      a.ends = tag == wire::be::kRowDescription || tag == wire::be::kNoData;
      break;
    case Kind::copy_end:  // never at the front: pop_front() drops it
      break;
    case Kind::execute:
      a.ends = tag == wire::be::kCommandComplete || tag == wire::be::kEmptyQueryResponse ||
               tag == wire::be::kPortalSuspended;
      if (tag == wire::be::kCopyInResponse) {
        // The server ignores every Sync until CopyDone / CopyFail: the ones already sent
        // before the copy's end (or all of them, and the ones still to come, when the client
        // has not ended the copy yet). A Sync sent after the end is answered.
        copy_in_ = true;
        for (std::size_t i = 1; i < pending_.size();) {
          if (pending_[i].kind == Kind::copy_end) {
            pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
            --copy_ends_;
            copy_in_ = false;
            break;
          }
          if (pending_[i].kind != Kind::sync) {
            ++i;
            continue;
          }
          if (pending_[i].sender != Sender::client) {
            --guard_pending_;
          } else {
            ++unanswered_boundaries_;
          }
          pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
        }
      }
      break;
  }
  if (tag == wire::be::kErrorResponse) {
    a.ends = true;
    pop_front();
    skip_to_sync();
    return a;
  }
  if (tag == wire::be::kReadyForQuery) {
    // Out of step (should not happen): resynchronise on the next message answered by it.
    while (!pending_.empty() && pending_.front().kind != Kind::query &&
           pending_.front().kind != Kind::sync && pending_.front().kind != Kind::function_call) {
      pop_front();
    }
    if (!pending_.empty()) {
      a.sender = pending_.front().sender;
      a.step = pending_.front().step;
      pop_front();
    }
    a.ends = true;
    return a;
  }
  if (a.ends) pop_front(/*parse_ok=*/true);  // a parse entry ends only with ParseComplete
  return a;
}

bool ResponseTracker::ready_pending() const {
  return std::any_of(pending_.begin(), pending_.end(), [](const Entry& e) {
    return e.kind == Kind::query || e.kind == Kind::function_call || e.kind == Kind::sync;
  });
}

}  // namespace pgmoat::proxy
