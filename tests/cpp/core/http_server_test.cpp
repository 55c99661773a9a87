// The HTTP/1.1 server of `anchors serve` (anchors/core/http_server.h), over
// real sockets on loopback: the protocol (keep-alive, HTTP/1.0, pipelining,
// 100-continue), every limit (slow headers and bodies, sizes, connections,
// queue, clients that do not read), and the lifecycle (stop in flight, from a
// handler, twice; a port in use). Timeouts are a fraction of a second so the
// suite stays fast; every wait is bounded.
#include "anchors/core/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "expect_error.h"

namespace anchors::http {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Waits up to `seconds` for `condition`.
bool eventually(const std::function<bool()>& condition, double seconds = 3.0) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return condition();
}

struct Reply {
  int status = -1;  // -1: the connection closed (or the wait ran out) before a whole response
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  std::string error_message() const {
    try {
      return json::parse(body).at("error").at("message").get<std::string>();
    } catch (const std::exception&) {
      return "(not an error body: " + body + ")";
    }
  }
};

// A blocking client socket on 127.0.0.1 that writes raw bytes and reads
// responses (Content-Length framing), keeping what follows a response.
class Client {
 public:
  explicit Client(int port, int receive_buffer = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (receive_buffer > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~Client() { close(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // false when the server has closed or reset the connection.
  bool send(const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }

  // Whether bytes (or the end of the stream) are waiting to be read.
  bool readable(int timeout_ms = 0) {
    if (!buffer_.empty()) return true;
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) > 0;
  }

  // The next response; interim 1xx responses are returned too when keep_interim.
  // head: the answer to a HEAD request (no body, whatever Content-Length says).
  Reply read(double timeout_seconds = 5.0, bool keep_interim = false, bool head = false) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_seconds);
    for (;;) {
      Reply reply;
      if (parse(reply, keep_interim, head)) return reply;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return {};
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char chunk[65536];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) return {};
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  // Whether the server closes the connection (end of stream or reset) within
  // `seconds`, with no bytes before that.
  bool closed_within(double seconds) {
    if (!buffer_.empty()) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(seconds * 1000)) <= 0) return false;
    char c;
    return ::recv(fd_, &c, 1, 0) <= 0;
  }

 private:
  bool parse(Reply& reply, bool keep_interim, bool head_request) {
    for (;;) {
      const std::size_t end = buffer_.find("\r\n\r\n");
      if (end == std::string::npos) return false;
      const std::string head = buffer_.substr(0, end);
      Reply r;
      r.status = std::stoi(head.substr(9, 3));
      std::size_t pos = head.find("\r\n");
      while (pos != std::string::npos) {
        const std::size_t next = head.find("\r\n", pos + 2);
        const std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
        const std::size_t colon = line.find(':');
        std::string name = line.substr(0, colon);
        std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
        r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
        pos = next;
      }
      if (r.status >= 100 && r.status < 200) {
        buffer_.erase(0, end + 4);
        if (keep_interim) {
          reply = r;
          return true;
        }
        continue;
      }
      const std::size_t length =
          !head_request && r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
      if (buffer_.size() < end + 4 + length) return false;
      r.body = buffer_.substr(end + 4, length);
      buffer_.erase(0, end + 4 + length);
      reply = std::move(r);
      return true;
    }
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

std::string get_request(const std::string& path, const std::string& extra = "Connection: close\r\n") {
  return "GET " + path + " HTTP/1.1\r\nHost: test\r\n" + extra + "\r\n";
}

std::string post_request(const std::string& path, const std::string& body, const std::string& extra = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + extra + "\r\n" + body;
}

// One request on a fresh connection.
Reply fetch(int port, const std::string& request, double timeout = 5.0) {
  Client c(port);
  if (!c.connected() || !c.send(request)) return {};
  return c.read(timeout);
}

// Answers {"method", "path", "query", "body", "x_test"}; /sleep?ms=N sleeps first.
Response echo(const Request& r) {
  if (r.path == "/sleep") std::this_thread::sleep_for(std::chrono::milliseconds(std::stoi(r.query.substr(3))));
  const std::string* x = r.header("x-test");
  json j = {{"method", r.method}, {"path", r.path},         {"query", r.query},
            {"body", r.body},     {"x_test", x ? *x : ""}, {"version", r.version_minor}};
  return {200, j.dump(), "application/json", {}};
}

// Small timeouts: the tests that wait for one take a fraction of a second.
ServerOptions fast_options() {
  ServerOptions o;
  o.header_timeout_seconds = 2;
  o.body_timeout_seconds = 2;
  o.idle_timeout_seconds = 2;
  o.write_timeout_seconds = 2;
  return o;
}

// A started server whose log lines are kept.
class Served {
 public:
  explicit Served(Handler handler, ServerOptions options = fast_options()) {
    options.log = [this](const std::string& line) {
      std::lock_guard lock(mutex_);
      log_.push_back(line);
    };
    server_ = std::make_unique<Server>(std::move(handler), std::move(options));
    server_->start();
  }
  Server& operator*() { return *server_; }
  Server* operator->() { return server_.get(); }
  int port() const { return server_->port(); }
  // Whether a log line contains `needle`.
  bool logged(const std::string& needle) {
    std::lock_guard lock(mutex_);
    return std::any_of(log_.begin(), log_.end(), [&](const std::string& l) { return l.find(needle) != l.npos; });
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> log_;
  std::unique_ptr<Server> server_;
};

// A gate handlers wait at until the test opens it.
class Gate {
 public:
  void wait() {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return open_; });
  }
  void open() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

// ------------------------------------------------------------------ protocol

TEST(HttpServer, AnswersGetAndPost) {
  Served server(echo);
  EXPECT_TRUE(server->running());
  EXPECT_GT(server.port(), 0);

  const Reply got = fetch(server.port(), get_request("/v1/models?limit=2", "X-Test: yes\r\nConnection: close\r\n"));
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.header("content-type"), "application/json");
  EXPECT_EQ(got.header("connection"), "close");
  EXPECT_FALSE(got.header("date").empty());
  const json g = json::parse(got.body);
  EXPECT_EQ(g["method"], "GET");
  EXPECT_EQ(g["path"], "/v1/models");
  EXPECT_EQ(g["query"], "limit=2");
  EXPECT_EQ(g["x_test"], "yes");  // header names are matched without regard to case

  const std::string body = R"({"prompt": [1, 2, 3]})";
  const Reply posted = fetch(server.port(), post_request("/v1/completions", body, "Connection: close\r\n"));
  ASSERT_EQ(posted.status, 200);
  EXPECT_EQ(json::parse(posted.body)["body"], body);

  // Absolute-form targets are read as their path; HEAD gets the headers only.
  EXPECT_EQ(json::parse(fetch(server.port(), get_request("http://localhost:1/a/b?c")).body)["path"], "/a/b");
  Client head(server.port());
  ASSERT_TRUE(head.send("HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n" + get_request("/after")));
  const Reply h = head.read(5.0, false, /*head=*/true);
  EXPECT_EQ(h.status, 200);
  EXPECT_TRUE(h.body.empty());
  EXPECT_NE(h.header("content-length"), "0");  // the length of the body a GET would get
  EXPECT_EQ(json::parse(head.read().body)["path"], "/after");  // framing intact after the HEAD answer
  // An error after a HEAD request on the same connection still has its body.
  Client again(server.port());
  ASSERT_TRUE(again.send("HEAD /y HTTP/1.1\r\n\r\nBROKEN\r\n\r\n"));
  EXPECT_EQ(again.read(5.0, false, /*head=*/true).status, 200);
  const Reply broken = again.read();
  EXPECT_EQ(broken.status, 400);
  EXPECT_NE(broken.error_message().find("malformed request line"), std::string::npos) << broken.body;
}

TEST(HttpServer, KeepAliveReusesOneConnection) {
  Served server(echo);
  Client c(server.port());
  for (int k = 0; k < 5; ++k) {
    ASSERT_TRUE(c.send(post_request("/n", std::to_string(k))));
    const Reply r = c.read();
    ASSERT_EQ(r.status, 200) << k;
    EXPECT_EQ(r.header("connection"), "keep-alive");
    EXPECT_EQ(json::parse(r.body)["body"], std::to_string(k));
  }
  EXPECT_EQ(server->stats().accepted, 1u);
  EXPECT_EQ(server->stats().requests, 5u);
  // "Connection: close" ends it after the answer.
  ASSERT_TRUE(c.send(get_request("/last")));
  EXPECT_EQ(c.read().header("connection"), "close");
  EXPECT_TRUE(c.closed_within(2.0));
}

TEST(HttpServer, Http10ClosesUnlessAskedToKeepAlive) {
  Served server(echo);
  Client plain(server.port());
  ASSERT_TRUE(plain.send("GET /old HTTP/1.0\r\n\r\n"));
  const Reply r = plain.read();
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_EQ(json::parse(r.body)["version"], 0);
  EXPECT_TRUE(plain.closed_within(2.0));

  Client kept(server.port());
  for (int k = 0; k < 2; ++k) {
    ASSERT_TRUE(kept.send("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    const Reply again = kept.read();
    ASSERT_EQ(again.status, 200) << k;
    EXPECT_EQ(again.header("connection"), "keep-alive");
  }
}

TEST(HttpServer, PipelinedRequestsAreAnsweredInOrder) {
  Served server(echo);
  Client c(server.port());
  // The first one sleeps: the later ones must still come back after it, in order.
  std::string batch = get_request("/sleep?ms=100", "") + post_request("/two", "2") + get_request("/three", "");
  ASSERT_TRUE(c.send(batch));
  EXPECT_EQ(json::parse(c.read().body)["path"], "/sleep");
  EXPECT_EQ(json::parse(c.read().body)["path"], "/two");
  EXPECT_EQ(json::parse(c.read().body)["path"], "/three");
  // Empty lines between requests are ignored.
  ASSERT_TRUE(c.send("\r\n\r\n" + get_request("/four", "")));
  EXPECT_EQ(json::parse(c.read().body)["path"], "/four");
}

TEST(HttpServer, ExpectContinueIsAnswered) {
  Served server(echo);
  Client c(server.port());
  const std::string body = "{\"x\": 1}";
  ASSERT_TRUE(c.send("POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_EQ(c.read(2.0, /*keep_interim=*/true).status, 100);
  ASSERT_TRUE(c.send(body));
  const Reply r = c.read();
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["body"], body);
}

TEST(HttpServer, IdleKeptAliveConnectionsAreClosedQuietly) {
  ServerOptions o = fast_options();
  o.idle_timeout_seconds = 0.2;
  Served server(echo, o);
  Client c(server.port());
  ASSERT_TRUE(c.send(get_request("/a", "")));
  ASSERT_EQ(c.read().status, 200);
  const auto begin = Clock::now();
  EXPECT_TRUE(c.closed_within(2.0));  // no 408: nothing of a request had arrived
  EXPECT_GE(seconds_since(begin), 0.15);
  EXPECT_TRUE(eventually([&] { return server->stats().open_connections == 0; }));
  EXPECT_EQ(server->stats().timeouts, 0u);
}

// ------------------------------------------------------------ slow clients

// Requests from `threads` threads, each on a fresh connection; returns the
// slowest one's seconds, or a negative number if one failed.
double run_normal_requests(int port, int threads, int per_thread) {
  std::atomic<bool> failed{false};
  std::mutex mutex;
  double slowest = 0;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int k = 0; k < per_thread; ++k) {
        const auto begin = Clock::now();
        const Reply r = fetch(port, post_request("/normal", std::to_string(t * 1000 + k), "Connection: close\r\n"));
        const double took = seconds_since(begin);
        if (r.status != 200 || json::parse(r.body)["body"] != std::to_string(t * 1000 + k)) failed = true;
        std::lock_guard lock(mutex);
        slowest = std::max(slowest, took);
      }
    });
  for (auto& th : pool) th.join();
  return failed ? -1.0 : slowest;
}

// `count` connections each send one byte of `prefix` + endless padding every
// 100 ms until answered; returns each one's status and seconds to the answer.
std::vector<std::pair<int, double>> trickle(int port, int count, const std::string& prefix, double give_up) {
  std::vector<std::unique_ptr<Client>> slow;
  for (int k = 0; k < count; ++k) slow.push_back(std::make_unique<Client>(port));
  std::vector<std::pair<int, double>> result(static_cast<std::size_t>(count), {-1, 0.0});
  std::vector<std::size_t> sent(static_cast<std::size_t>(count), 0);
  const auto begin = Clock::now();
  std::size_t answered = 0;
  while (answered < slow.size() && seconds_since(begin) < give_up) {
    for (std::size_t k = 0; k < slow.size(); ++k) {
      if (result[k].first != -1) continue;
      if (slow[k]->readable()) {
        result[k] = {slow[k]->read(1.0).status, seconds_since(begin)};
        if (result[k].first == -1) result[k].first = 0;  // closed without an answer
        ++answered;
        continue;
      }
      const char byte = sent[k] < prefix.size() ? prefix[sent[k]] : 'a';
      slow[k]->send(std::string(1, byte));
      ++sent[k];
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return result;
}

TEST(HttpServer, SlowHeadersDoNotStarveOtherClientsAndAreCutAt408) {
  ServerOptions o = fast_options();
  o.workers = 2;
  o.header_timeout_seconds = 1.5;
  Served server(echo, o);
  const int port = server.port();
  std::vector<std::pair<int, double>> slow;
  std::thread attacker([&] { slow = trickle(port, 16, "POST /v1/completions HTTP/1.1\r\nX-Pad: ", 5.0); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // all 16 are trickling
  const auto begin = Clock::now();
  const double slowest = run_normal_requests(port, 4, 20);
  const double normal_seconds = seconds_since(begin);
  attacker.join();
  EXPECT_GE(slowest, 0.0) << "a normal request failed";
  EXPECT_LT(slowest, 0.5) << "a normal request waited behind the slow clients";
  EXPECT_LT(normal_seconds, 1.2) << "the normal requests did not all finish while the slow clients were sending";
  for (const auto& [status, seconds] : slow) {
    EXPECT_EQ(status, 408);
    EXPECT_GE(seconds, 1.3);  // cut at header_timeout (1.5 s after its accept), not before
    EXPECT_LT(seconds, 3.0);
  }
  EXPECT_EQ(server->stats().timeouts, 16u);
  EXPECT_TRUE(server.logged("408"));
  EXPECT_TRUE(eventually([&] { return server->stats().open_connections == 0; }));
}

TEST(HttpServer, SlowBodiesDoNotStarveOtherClientsAndAreCutAt408) {
  ServerOptions o = fast_options();
  o.workers = 2;
  o.body_timeout_seconds = 1.0;
  Served server(echo, o);
  const int port = server.port();
  std::vector<std::pair<int, double>> slow;
  // The headers go at once (one byte per 100 ms would take longer than the body's deadline).
  const std::string head = "POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n";
  std::thread attacker([&] {
    std::vector<std::unique_ptr<Client>> clients;
    std::vector<std::pair<int, double>> result(12, {-1, 0.0});
    for (int k = 0; k < 12; ++k) {
      clients.push_back(std::make_unique<Client>(port));
      clients.back()->send(head);
    }
    const auto begin = Clock::now();
    std::size_t answered = 0;
    while (answered < clients.size() && seconds_since(begin) < 4.0) {
      for (std::size_t k = 0; k < clients.size(); ++k) {
        if (result[k].first != -1) continue;
        if (clients[k]->readable()) {
          result[k] = {clients[k]->read(1.0).status, seconds_since(begin)};
          ++answered;
        } else {
          clients[k]->send("{");
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    slow = result;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  const double slowest = run_normal_requests(port, 4, 20);
  attacker.join();
  EXPECT_GE(slowest, 0.0) << "a normal request failed";
  EXPECT_LT(slowest, 0.5);
  ASSERT_EQ(slow.size(), 12u);
  for (const auto& [status, seconds] : slow) {
    EXPECT_EQ(status, 408);
    EXPECT_GE(seconds, 0.8);
    EXPECT_LT(seconds, 2.5);
  }
  EXPECT_EQ(server->stats().timeouts, 12u);
  EXPECT_TRUE(server.logged("body_timeout"));
}

TEST(HttpServer, AConnectionThatSendsNothingIsCut) {
  ServerOptions o = fast_options();
  o.header_timeout_seconds = 0.3;
  Served server(echo, o);
  Client silent(server.port());
  const auto begin = Clock::now();
  EXPECT_EQ(silent.read(3.0).status, 408);
  EXPECT_GE(seconds_since(begin), 0.25);
  EXPECT_TRUE(silent.closed_within(2.0));
}

// ------------------------------------------------------------------- limits

TEST(HttpServer, OversizedHeadersAre431) {
  ServerOptions o = fast_options();
  o.max_header_bytes = 1024;
  Served server(echo, o);
  // A complete head over the limit.
  Client big(server.port());
  ASSERT_TRUE(big.send("GET / HTTP/1.1\r\nX-Big: " + std::string(4000, 'x') + "\r\n\r\n"));
  const Reply r = big.read();
  EXPECT_EQ(r.status, 431);
  EXPECT_NE(r.error_message().find("1024 bytes"), std::string::npos) << r.body;
  EXPECT_EQ(json::parse(r.body)["error"]["type"], "invalid_request_error");
  EXPECT_TRUE(big.closed_within(2.0));
  // A head that never ends is cut at the limit, long before its deadline.
  Client endless(server.port());
  ASSERT_TRUE(endless.send("GET / HTTP/1.1\r\nX-Big: " + std::string(2000, 'x')));
  EXPECT_EQ(endless.read(1.0).status, 431);
  // A head within the limit is fine.
  EXPECT_EQ(fetch(server.port(), get_request("/", "X-Fits: " + std::string(800, 'x') + "\r\n")).status, 200);
  EXPECT_EQ(server->stats().bad_requests, 2u);
}

TEST(HttpServer, OversizedBodiesAre413BeforeTheyAreRead) {
  ServerOptions o = fast_options();
  o.max_body_bytes = 1000;
  Served server(echo, o);
  Client c(server.port());
  // Only the head is sent: the answer comes at once.
  ASSERT_TRUE(c.send("POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n"));
  const Reply r = c.read(1.0);
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.error_message().find("5000"), std::string::npos) << r.body;
  EXPECT_NE(r.error_message().find("max_body_bytes"), std::string::npos) << r.body;
  // A client that sends the whole body anyway still reads the 413 (no reset).
  Client eager(server.port());
  ASSERT_TRUE(eager.send(post_request("/v1/completions", std::string(200000, 'x'))));
  EXPECT_EQ(eager.read().status, 413);
  // With Expect: 100-continue, a 413 instead of a 100.
  Client polite(server.port());
  ASSERT_TRUE(polite.send("POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_EQ(polite.read(1.0, /*keep_interim=*/true).status, 413);
  EXPECT_EQ(fetch(server.port(), post_request("/x", std::string(1000, 'y'), "Connection: close\r\n")).status, 200);
}

TEST(HttpServer, MalformedRequestsAreClientErrors) {
  Served server(echo);
  const std::vector<std::pair<std::string, int>> cases = {
      {"GARBAGE\r\n\r\n", 400},
      {"GET /\r\n\r\n", 400},
      {"GET / HTTP/1.1 extra\r\n\r\n", 400},
      {"G(T / HTTP/1.1\r\n\r\n", 400},
      {"GET nopath HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nab", 400},
      {"GET / HTTP/2.0\r\n\r\n", 505},
      {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
      {"GET / HTTPS/1.1\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 411},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
      {"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc", 411},
      {"POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: something-else\r\n\r\nabc", 417},
  };
  for (const auto& [request, status] : cases) {
    Client c(server.port());
    ASSERT_TRUE(c.send(request));
    const Reply r = c.read(2.0);
    EXPECT_EQ(r.status, status) << request;
    EXPECT_EQ(r.header("connection"), "close") << request;
    EXPECT_FALSE(r.error_message().empty()) << request;
    EXPECT_EQ(r.error_message().rfind("(not an error body", 0), std::string::npos) << request;
    EXPECT_TRUE(c.closed_within(2.0)) << request;
  }
  EXPECT_EQ(server->stats().requests, 0u);  // none reached the handler
  EXPECT_EQ(server->stats().bad_requests, cases.size());
  // The refusal names the coding and the expectation, however many headers follow them.
  std::string many;
  for (int k = 0; k < 40; ++k) many += "X-" + std::to_string(k) + ": v\r\n";
  const Reply coding = fetch(server.port(), "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n" + many + "\r\n");
  EXPECT_EQ(coding.status, 501);
  EXPECT_NE(coding.error_message().find("\"gzip\""), std::string::npos) << coding.body;
  const Reply expectation =
      fetch(server.port(), "POST / HTTP/1.1\r\nExpect: magic\r\n" + many + "Content-Length: 1\r\n\r\nx");
  EXPECT_EQ(expectation.status, 417);
  EXPECT_NE(expectation.error_message().find("\"magic\""), std::string::npos) << expectation.body;
  // Bare LF line ends are accepted.
  EXPECT_EQ(fetch(server.port(), "GET /lf HTTP/1.1\nHost: t\nConnection: close\n\n").status, 200);
}

TEST(HttpServer, ConnectionsOverTheCapAre503) {
  ServerOptions o = fast_options();
  o.max_connections = 4;
  Served server(echo, o);
  std::vector<std::unique_ptr<Client>> held;
  for (int k = 0; k < 4; ++k) held.push_back(std::make_unique<Client>(server.port()));
  ASSERT_TRUE(eventually([&] { return server->stats().open_connections == 4; }));
  Client extra(server.port());
  const Reply r = extra.read(2.0);  // answered without sending anything
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.header("retry-after"), "1");
  EXPECT_NE(r.error_message().find("max_connections"), std::string::npos) << r.body;
  EXPECT_TRUE(extra.closed_within(2.0));
  // A request sent at once still reads the 503.
  Client eager(server.port());
  eager.send(get_request("/x"));
  EXPECT_EQ(eager.read(2.0).status, 503);
  EXPECT_EQ(server->stats().refused_connections, 2u);
  // The held ones still work; when one closes, a new connection is served.
  ASSERT_TRUE(held[0]->send(get_request("/held", "")));
  EXPECT_EQ(held[0]->read().status, 200);
  held[1].reset();
  ASSERT_TRUE(eventually([&] { return server->stats().open_connections == 3; }));
  EXPECT_EQ(fetch(server.port(), get_request("/new")).status, 200);
}

TEST(HttpServer, AFullQueueIs503) {
  Gate gate;
  ServerOptions o = fast_options();
  o.workers = 1;
  o.max_queue = 1;
  Served server(
      [&](const Request& r) {
        if (r.path == "/block") gate.wait();
        return echo(r);
      },
      o);
  Client first(server.port());
  ASSERT_TRUE(first.send(get_request("/block", "")));
  ASSERT_TRUE(eventually([&] { return server->stats().busy_workers == 1; }));
  Client second(server.port());
  ASSERT_TRUE(second.send(get_request("/queued", "")));
  ASSERT_TRUE(eventually([&] { return server->stats().queued == 1; }));
  const Reply third = fetch(server.port(), get_request("/third"));
  EXPECT_EQ(third.status, 503);
  EXPECT_EQ(third.header("retry-after"), "1");
  EXPECT_NE(third.error_message().find("max_queue"), std::string::npos) << third.body;
  EXPECT_EQ(json::parse(third.body)["error"]["type"], "server_error");
  EXPECT_EQ(server->stats().refused_queue_full, 1u);
  gate.open();
  EXPECT_EQ(first.read().status, 200);
  EXPECT_EQ(second.read().status, 200);
  EXPECT_EQ(fetch(server.port(), get_request("/later")).status, 200);
}

TEST(HttpServer, ASlowHandlerDoesNotBlockOtherRequests) {
  ServerOptions o = fast_options();
  o.workers = 4;
  Served server(echo, o);
  std::thread slow([&] { EXPECT_EQ(fetch(server.port(), get_request("/sleep?ms=1500")).status, 200); });
  ASSERT_TRUE(eventually([&] { return server->stats().busy_workers == 1; }));
  const auto begin = Clock::now();
  for (int k = 0; k < 20; ++k) EXPECT_EQ(fetch(server.port(), get_request("/fast")).status, 200);
  EXPECT_LT(seconds_since(begin), 1.0);
  slow.join();
}

TEST(HttpServer, AClientThatNeverReadsIsCutAtTheWriteTimeout) {
  ServerOptions o = fast_options();
  o.write_timeout_seconds = 1.0;
  const std::string big(16 << 20, 'z');
  Served server(
      [&](const Request& r) {
        if (r.path == "/big") return Response{200, big, "text/plain", {}};
        return echo(r);
      },
      o);
  Client reader_never(server.port(), /*receive_buffer=*/4096);
  ASSERT_TRUE(reader_never.send(get_request("/big", "")));
  ASSERT_TRUE(eventually([&] { return server->stats().requests == 1; }));
  const auto begin = Clock::now();
  for (int k = 0; k < 20; ++k) EXPECT_EQ(fetch(server.port(), get_request("/other")).status, 200);
  EXPECT_LT(seconds_since(begin), 0.9);  // all before the stuck write was even cut
  EXPECT_TRUE(eventually([&] { return server->stats().write_timeouts == 1; }, 3.0));
  EXPECT_TRUE(eventually([&] { return server.logged("write_timeout"); }));  // logged just after the count
  EXPECT_TRUE(eventually([&] { return server->stats().open_connections == 0; }));
}

// ---------------------------------------------------------------- lifecycle

TEST(HttpServer, StopLetsRunningRequestsFinishAndRefusesQueuedOnes) {
  ServerOptions o = fast_options();
  o.workers = 2;
  auto server = std::make_unique<Served>(echo, o);
  const int port = server->port();
  std::vector<int> statuses(3, 0);
  std::vector<std::thread> clients;
  for (int k = 0; k < 2; ++k)
    clients.emplace_back([&, k] { statuses[k] = fetch(port, get_request("/sleep?ms=400")).status; });
  ASSERT_TRUE(eventually([&] { return (**server).stats().busy_workers == 2; }));
  clients.emplace_back([&] { statuses[2] = fetch(port, get_request("/queued")).status; });
  ASSERT_TRUE(eventually([&] { return (**server).stats().queued == 1; }));
  Client idle(port);  // an idle connection is simply closed
  ASSERT_TRUE(eventually([&] { return (**server).stats().open_connections == 4; }));
  const auto begin = Clock::now();
  (*server)->stop();
  const double took = seconds_since(begin);
  for (auto& t : clients) t.join();
  EXPECT_EQ(statuses[0], 200);
  EXPECT_EQ(statuses[1], 200);
  EXPECT_EQ(statuses[2], 503);
  EXPECT_LT(took, 2.0);
  EXPECT_FALSE((*server)->running());
  EXPECT_TRUE(idle.closed_within(1.0));
  (*server)->stop();  // twice: nothing happens
  (*server)->wait();  // returns at once when stopped
  Client refused(port);
  EXPECT_FALSE(refused.connected() && refused.send(get_request("/")) && refused.read(0.5).status == 200);
  server.reset();
}

TEST(HttpServer, StopFromInsideAHandler) {
  Server* self = nullptr;
  Served server(
      [&](const Request& r) {
        if (r.path == "/stop") self->stop();  // only signals: this thread is one of the server's
        return echo(r);
      },
      fast_options());
  self = &*server;
  const Reply r = fetch(server.port(), get_request("/stop"));
  EXPECT_EQ(r.status, 200);  // the handler that stopped the server is still answered
  std::thread waiter([&] { server->wait(); });
  waiter.join();
  EXPECT_FALSE(server->running());
}

TEST(HttpServer, StopFromAnotherThreadWhileWaiting) {
  Served server(echo);
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    server->stop();
  });
  server->wait();
  stopper.join();
  EXPECT_FALSE(server->running());
}

TEST(HttpServer, DestructorWithoutStopClosesEverything) {
  int port = 0;
  auto idle = std::unique_ptr<Client>();
  const auto begin = Clock::now();
  {
    Server server(echo, fast_options());
    server.start();
    port = server.port();
    idle = std::make_unique<Client>(port);
    ASSERT_TRUE(idle->send(get_request("/a", "")));
    ASSERT_EQ(idle->read().status, 200);
  }
  EXPECT_LT(seconds_since(begin), 1.5);
  EXPECT_TRUE(idle->closed_within(1.0));
  Server never_started(echo);  // and one that never started
}

TEST(HttpServer, APortInUseIsAnErrorNamingIt) {
  Server first(echo);
  first.start();
  ServerOptions o;
  o.port = first.port();
  Server second(echo, o);
  EXPECT_ANCHORS_ERROR(second.start(), "cannot bind", "127.0.0.1:" + std::to_string(first.port()), "in use");
  EXPECT_FALSE(second.running());
  EXPECT_ANCHORS_ERROR(first.start(), "already started");
  // The first one is unaffected.
  EXPECT_EQ(fetch(first.port(), get_request("/still")).status, 200);
  ServerOptions bad_host;
  bad_host.host = "no-such-host.invalid";
  EXPECT_ANCHORS_ERROR(Server(echo, bad_host).start(), "cannot bind", "no-such-host.invalid");
}

TEST(HttpServer, InvalidOptionsAreErrors) {
  const auto with = [](const std::function<void(ServerOptions&)>& change) {
    ServerOptions o;
    change(o);
    return o;
  };
  EXPECT_ANCHORS_ERROR(Server unused(Handler{}, ServerOptions{}), "no handler");
  EXPECT_ANCHORS_ERROR(Server(echo, with([](auto& o) { o.header_timeout_seconds = 0; })), "timeouts");
  EXPECT_ANCHORS_ERROR(Server(echo, with([](auto& o) { o.write_timeout_seconds = 1.0 / 0.0; })), "timeouts");
  EXPECT_ANCHORS_ERROR(Server(echo, with([](auto& o) { o.workers = -1; })), "workers");
  EXPECT_ANCHORS_ERROR(Server(echo, with([](auto& o) { o.max_connections = 0; })), "max_connections");
  EXPECT_ANCHORS_ERROR(Server(echo, with([](auto& o) { o.max_queue = -2; })), "max_queue");
  EXPECT_ANCHORS_ERROR(Server(echo, with([](auto& o) { o.max_header_bytes = 10; })), "max_header_bytes");
  EXPECT_ANCHORS_ERROR(Server(echo, with([](auto& o) { o.port = 70000; })), "port 70000");
}

TEST(HttpServer, HandlerFailuresAre500) {
  Served server([](const Request& r) -> Response {
    if (r.path == "/throw") throw std::runtime_error("the handler broke");
    if (r.path == "/bad-status") return {99, "", "text/plain", {}};
    if (r.path == "/bad-header") return {200, "", "text/plain", {{"X-Evil", "a\r\nInjected: yes"}}};
    return {204, "ignored", "text/plain", {}};
  });
  const Reply thrown = fetch(server.port(), get_request("/throw"));
  EXPECT_EQ(thrown.status, 500);
  EXPECT_NE(thrown.error_message().find("the handler broke"), std::string::npos);
  EXPECT_EQ(fetch(server.port(), get_request("/bad-status")).status, 500);
  const Reply injected = fetch(server.port(), get_request("/bad-header"));
  EXPECT_EQ(injected.status, 500);
  EXPECT_EQ(injected.header("injected"), "");
  Client c(server.port());
  ASSERT_TRUE(c.send(get_request("/empty", "") + get_request("/empty", "")));
  const Reply empty = c.read();
  EXPECT_EQ(empty.status, 204);  // no body, no Content-Length: the next answer is still framed right
  EXPECT_EQ(empty.header("content-length"), "");
  EXPECT_EQ(c.read().status, 204);
}

// ----------------------------------------------------------------- load

TEST(HttpServer, ABurstAtConcurrency32AllSucceeds) {
  ServerOptions o;  // the defaults, but for short deadlines
  o.idle_timeout_seconds = 2;
  Served server(echo, o);
  constexpr int kThreads = 32;
  constexpr int kPerThread = 25;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      // Half keep one connection alive, half open one per request.
      std::unique_ptr<Client> kept = t % 2 == 0 ? std::make_unique<Client>(server.port()) : nullptr;
      for (int k = 0; k < kPerThread; ++k) {
        const std::string body = std::to_string(t) + ":" + std::to_string(k);
        Reply r;
        if (kept) {
          if (kept->send(post_request("/burst", body))) r = kept->read();
        } else {
          r = fetch(server.port(), post_request("/burst", body, "Connection: close\r\n"));
        }
        if (r.status == 200 && json::parse(r.body)["body"] == body) ++ok;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  const ServerStats stats = server->stats();
  EXPECT_EQ(stats.requests, static_cast<std::uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(stats.refused_queue_full + stats.refused_connections + stats.timeouts + stats.bad_requests, 0u);
  // Every connection is freed once the clients are gone.
  EXPECT_TRUE(eventually([&] { return server->stats().open_connections == 0; }));
}

}  // namespace
}  // namespace anchors::http
