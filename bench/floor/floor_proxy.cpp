// The floor: a TCP proxy that does nothing but move bytes. bench/run.sh runs it beside pgmoat
// and PgBouncer, so every run shows what any proxy in the TCP path costs on that machine (two
// more loopback hops per round trip, and the wakeups of one more process) before it does any
// work of its own. It reads no message, checks nothing and records nothing: never put it in
// front of a database anyone uses.
//
//   floor-proxy LISTEN_PORT UPSTREAM_PORT      (both on 127.0.0.1)
//
// One thread, level-triggered epoll, TCP_NODELAY on both sides (as PgBouncer and pgmoat set
// it). Each readable socket gets one recv() into a 64 KiB buffer and one send() to its peer
// per wakeup; what the peer does not take is kept and the reading side paused until it drains.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Side {
  int fd = -1;
  Side* peer = nullptr;
  std::string pending;  // bytes read from the peer that this socket has not taken yet
};

int g_epoll = -1;
std::vector<Side*> g_closed;  // freed after the current batch of events, which may name them

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "floor-proxy: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

void watch(Side* s, int op, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = s;
  if (epoll_ctl(g_epoll, op, s->fd, &ev) != 0) die("epoll_ctl");
}

void close_pair(Side* s) {
  for (Side* x : {s, s->peer}) {
    close(x->fd);  // also leaves the epoll set
    x->fd = -1;
    g_closed.push_back(x);
  }
}

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// A new client: connect to the upstream (blocking: loopback connects at once) and watch both.
void accept_one(int listener, int upstream_port) {
  const int c = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK);
  if (c < 0) return;
  const int u = socket(AF_INET, SOCK_STREAM, 0);
  const sockaddr_in a = loopback(upstream_port);
  if (u < 0 || connect(u, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    std::fprintf(stderr, "floor-proxy: upstream 127.0.0.1:%d: %s\n", upstream_port,
                 std::strerror(errno));
    if (u >= 0) close(u);
    close(c);
    return;
  }
  if (fcntl(u, F_SETFL, O_NONBLOCK) != 0) die("fcntl");
  set_nodelay(c);
  set_nodelay(u);
  auto* client = new Side{c, nullptr, {}};
  auto* server = new Side{u, client, {}};
  client->peer = server;
  watch(client, EPOLL_CTL_ADD, EPOLLIN);
  watch(server, EPOLL_CTL_ADD, EPOLLIN);
}

// Sends what `to` holds; false when the connection is broken.
bool flush(Side* to) {
  while (!to->pending.empty()) {
    const ssize_t n = send(to->fd, to->pending.data(), to->pending.size(), MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    to->pending.erase(0, static_cast<std::size_t>(n));
  }
  return true;
}

// What each side of a pair waits for: to write while it holds bytes, to read while its peer
// holds none (a full peer pauses the reading side until it drains).
void rewatch(Side* s) {
  for (Side* x : {s, s->peer}) {
    const std::uint32_t want = (x->pending.empty() ? 0u : std::uint32_t{EPOLLOUT}) |
                               (x->peer->pending.empty() ? std::uint32_t{EPOLLIN} : 0u);
    watch(x, EPOLL_CTL_MOD, want);
  }
}

void readable(Side* from) {
  static char buf[64 * 1024];
  const ssize_t n = recv(from->fd, buf, sizeof buf, 0);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    close_pair(from);
    return;
  }
  if (n < 0) return;
  Side* to = from->peer;
  to->pending.append(buf, static_cast<std::size_t>(n));
  if (!flush(to)) {
    close_pair(from);
    return;
  }
  if (!to->pending.empty()) rewatch(from);  // the common case (all sent) changes nothing
}

void writable(Side* to) {
  if (!flush(to)) {
    close_pair(to);
    return;
  }
  if (to->pending.empty()) rewatch(to);
}

int port_arg(const char* s) {
  char* end = nullptr;
  const long p = std::strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || p < 1 || p > 65535) {
    std::fprintf(stderr, "floor-proxy: not a port: %s\n", s);
    std::exit(2);
  }
  return static_cast<int>(p);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: floor-proxy LISTEN_PORT UPSTREAM_PORT (both on 127.0.0.1)\n");
    return 2;
  }
  const int listen_port = port_arg(argv[1]);
  const int upstream_port = port_arg(argv[2]);
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (listener < 0) die("socket");
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const sockaddr_in a = loopback(listen_port);
  if (bind(listener, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) die("bind");
  if (listen(listener, 128) != 0) die("listen");
  g_epoll = epoll_create1(0);
  if (g_epoll < 0) die("epoll_create1");
  Side listening{listener, nullptr, {}};
  watch(&listening, EPOLL_CTL_ADD, EPOLLIN);

  epoll_event events[64];
  for (;;) {
    const int n = epoll_wait(g_epoll, events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      auto* s = static_cast<Side*>(events[i].data.ptr);
      if (s == &listening) {
        accept_one(listener, upstream_port);
        continue;
      }
      if (s->fd >= 0 && (events[i].events & EPOLLOUT)) writable(s);
      // EPOLLIN, EPOLLHUP, EPOLLERR: recv() tells which.
      if (s->fd >= 0 && (events[i].events & ~EPOLLOUT)) readable(s);
    }
    for (Side* s : g_closed) delete s;
    g_closed.clear();
  }
}
