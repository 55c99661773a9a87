#pragma once
// A small HTTP/1.1 server for JSON APIs -- the transport of `anchors serve`
// (rollout/server.h) -- built so that slow or stalled clients cannot starve it.
//
//   anchors::http::Server server([](const anchors::http::Request& r) {
//     return anchors::http::Response{200, R"({"ok": true})"};
//   });
//   server.start();                 // binds 127.0.0.1:<free port>, serves on background threads
//   ... "http://127.0.0.1:" + std::to_string(server.port()) ...
//   server.stop();                  // also done by the destructor
//
// Threads. One I/O thread owns every socket: it accepts, reads each request
// (request line, headers, Content-Length body) into a buffer of its
// connection, and writes every response, all non-blocking under epoll. Only a
// *complete* request is handed to the pool of `workers` threads that run the
// handler, so a client that sends slowly, or stops reading its answer, holds
// a buffer and a file descriptor but never a worker. The handler runs on a
// worker thread, concurrently with itself: make it thread-safe. It returns
// the Response; the I/O thread writes it. The log callback is called from the
// I/O thread only.
//
// Limits (ServerOptions; each has a test in tests/cpp/core/http_server_test.cpp):
//   - header_timeout_seconds: the request line and headers must be complete
//     within this time of the connection's accept (first request) or of the
//     request's first byte (later requests on a kept-alive connection): a
//     *total* deadline, however slowly the bytes trickle in. Then: 408, close.
//   - body_timeout_seconds: total deadline for the body, from the end of the
//     headers. Then: 408, close.
//   - idle_timeout_seconds: a kept-alive connection with no request in
//     progress is closed (silently) after this long.
//   - write_timeout_seconds: a response must be written within this time; a
//     client that does not read it is disconnected.
//   - max_header_bytes: request line + headers; more: 431, close.
//   - max_body_bytes: a larger Content-Length is a 413 at once, before the
//     body is read; close.
//   - max_connections: open client connections. Over it, a new connection is
//     accepted, answered 503 and closed (the accept loop never stalls); the
//     file descriptors of such refusals and of closing connections are
//     bounded by max_connections as well (beyond it a refusal is closed at once).
//   - max_queue: complete requests waiting for a free worker; a request that
//     finds the queue full is answered 503 (Retry-After: 1) and its
//     connection closed.
// Memory is bounded by the limits: a connection buffers at most one request
// (max_header_bytes + max_body_bytes) and one response; a kept-alive
// connection's buffers shrink back after a large request.
//
// Protocol. HTTP/1.1 and 1.0 requests; keep-alive by HTTP/1.1's default
// ("Connection: close" ends it) and HTTP/1.0's ("Connection: keep-alive" asks
// for it); every response carries Content-Length and Connection. Pipelined
// requests on one connection are read one after another and answered in
// order (the next one is read only after the previous answer is written).
// "Expect: 100-continue" is answered "100 Continue" (or 413 at once when the
// declared body is too large); other expectations are a 417. Request bodies
// need a Content-Length: "Transfer-Encoding: chunked" is a 411, other
// transfer codings a 501. Malformed requests (request line, header syntax,
// Content-Length) are a 400, HTTP versions other than 1.0 / 1.1 a 505. HEAD
// responses carry the headers only. Errors the transport answers itself have
// OpenAI's JSON shape ({"error": {"message", "type", ...}},
// rollout/openai_format.h) and close the connection. A handler that throws
// gives a 500 with the exception's message.
//
// Lifecycle. start() binds (SO_REUSEADDR only, never SO_REUSEPORT: a second
// server cannot bind a port in use) and returns once connections are
// accepted. stop() stops accepting, closes connections that wait or are
// being read, answers requests still queued with 503, lets handlers that are
// running finish and writes their responses (each within
// write_timeout_seconds), then joins the threads. stop() is idempotent and
// may be called from any thread, a handler included (it then only signals;
// the threads are joined by wait(), a later stop() from another thread or
// the destructor). A stopped server is not restarted: make a new one.
// Linux only (epoll, eventfd).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace anchors::http {

struct Request {
  std::string method;  // as sent, e.g. "GET", "POST" (case-sensitive)
  std::string target;  // the request-target as sent, e.g. "/v1/models?x=1"
  std::string path;    // the target up to '?' ("http://host/p" is read as "/p"), not percent-decoded
  std::string query;   // after '?', "" when none
  int version_minor = 1;  // 0: HTTP/1.0, 1: HTTP/1.1
  std::vector<std::pair<std::string, std::string>> headers;  // as sent; values trimmed
  std::string body;

  // The value of the first header with this name (case-insensitive); nullptr when absent.
  const std::string* header(std::string_view name) const;
};

struct Response {
  int status = 200;  // 200..599; anything else is sent as a 500
  std::string body;
  std::string content_type = "application/json";
  // Extra headers (e.g. Retry-After). Content-Length, Connection and Date are
  // the server's; a name or value with CR, LF or NUL makes the response a 500.
  std::vector<std::pair<std::string, std::string>> headers;
};

using Handler = std::function<Response(const Request&)>;

struct ServerOptions {
  std::string host = "127.0.0.1";  // a numeric address or a name getaddrinfo resolves
  int port = 0;                    // 0: any free port (see Server::port())
  int workers = 0;                 // handler threads; 0: max(4, hardware threads)
  int max_connections = 512;       // open client connections (see above)
  int max_queue = -1;              // complete requests waiting for a worker; -1: max(64, 4 x workers); 0: none
  double header_timeout_seconds = 10;
  double body_timeout_seconds = 60;
  double idle_timeout_seconds = 5;
  double write_timeout_seconds = 30;
  std::size_t max_header_bytes = 64 << 10;  // request line + headers
  std::size_t max_body_bytes = 64 << 20;
  // One line per event of the transport: requests it refuses (408, 413, 431,
  // 503, ...), connections cut by a deadline, accept failures. Called from the
  // I/O thread; keep it quick. At most 20 lines a second (the rest are
  // counted and the count logged). Empty: silent.
  std::function<void(const std::string&)> log;
};

// Counters of a server, for tests and monitoring (a snapshot; each field is read on its own).
struct ServerStats {
  std::size_t open_connections = 0;  // client connections counted against max_connections, now
  std::size_t queued = 0;            // complete requests waiting for a worker, now
  std::size_t busy_workers = 0;      // handlers running, now
  std::uint64_t accepted = 0;        // connections accepted (refused ones included)
  std::uint64_t requests = 0;        // requests handed to the handler
  std::uint64_t refused_connections = 0;  // 503: over max_connections
  std::uint64_t refused_queue_full = 0;   // 503: queue full
  std::uint64_t timeouts = 0;             // 408: headers or body too slow
  std::uint64_t write_timeouts = 0;       // responses not read within write_timeout_seconds
  std::uint64_t bad_requests = 0;         // 400, 411, 413, 417, 431, 501, 505
};

class Server {
 public:
  // anchors::Error for an empty handler or invalid options (non-positive or
  // non-finite timeouts, workers < 0, max_connections < 1, max_queue < -1,
  // max_header_bytes < 256, a port outside [0, 65535], an empty host).
  explicit Server(Handler handler, ServerOptions options = {});
  // Stops and joins. Never destroy a server from one of its own handlers.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds host:port, starts the threads and returns once connections are
  // accepted. anchors::Error naming host:port and the reason when the address
  // cannot be bound (e.g. in use), or when already started.
  void start();
  // See "Lifecycle" above. Idempotent; returns at once before start().
  void stop();
  // Blocks until the server has stopped (stop() from another thread or a
  // handler, or a failure of the I/O thread, which is logged), and joins its
  // threads; at once if it was never started. Never call it from a handler
  // (it would wait for that handler).
  void wait();
  bool running() const;  // started and not yet stopped
  int port() const;      // the bound port (after start(); 0 before)
  ServerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace anchors::http
