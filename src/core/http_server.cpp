#include "anchors/core/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <system_error>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>

#include "anchors/core/error.h"
#include "anchors/rollout/openai_format.h"

namespace anchors::http {

const std::string* Request::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key.size() != name.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < key.size() && same; ++i)
      same = std::tolower(static_cast<unsigned char>(key[i])) == std::tolower(static_cast<unsigned char>(name[i]));
    if (same) return &value;
  }
  return nullptr;
}

namespace {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

constexpr std::uint64_t kListenerId = 0;
constexpr std::uint64_t kWakeId = 1;
constexpr std::size_t kReadChunk = 64 << 10;      // bytes read per readiness event (fairness between connections)
constexpr std::size_t kShrinkAbove = 256 << 10;   // a kept-alive connection's buffers shrink back above this
constexpr double kLingerSeconds = 2.0;            // at most, after a closing response (see begin_linger)
constexpr auto kAcceptPause = std::chrono::milliseconds(100);
constexpr int kLogLinesPerSecond = 20;

// Set on the server's own threads, so that stop() from a handler does not join itself.
thread_local const void* t_server = nullptr;

std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// RFC 9110 token characters.
bool is_tchar(unsigned char c) {
  if (std::isalnum(c)) return c < 0x80;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return is_tchar(static_cast<unsigned char>(c)); });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool has_line_break_or_nul(std::string_view s) { return s.find_first_of(std::string_view("\r\n\0", 3)) != s.npos; }

const char* reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: break;
  }
  if (status < 300) return "OK";
  if (status < 400) return "Redirection";
  if (status < 500) return "Client Error";
  return "Server Error";
}

// The "type" of an error answer the transport writes itself.
const char* error_type(int status) {
  if (status == 408) return "timeout_error";
  return status < 500 || status == 501 || status == 505 ? "invalid_request_error" : "server_error";
}

Response error_response(int status, const std::string& message) {
  Response r;
  r.status = status;
  r.body = rollout::openai::error_body(message, error_type(status));
  if (status == 503) r.headers.emplace_back("Retry-After", "1");
  return r;
}

// The Date header's value (RFC 9110 IMF-fixdate), independent of the locale.
std::string http_date(std::time_t t) {
  static const char* const kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{}, {:02d} {} {:04d} {:02d}:{:02d}:{:02d} GMT", kDays[tm.tm_wday % 7], tm.tm_mday,
                     kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string seconds_text(double s) { return fmt::format("{:g}s", s); }

std::string where(const std::string& host, int port) {
  return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

std::string peer_name(const sockaddr_storage& addr) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    return fmt::format("{}:{}", text, ntohs(a->sin_port));
  }
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    return fmt::format("[{}]:{}", text, ntohs(a->sin6_port));
  }
  return "unknown peer";
}

// The end of the request line and headers (the index after the blank line)
// in `in`, searching from `from` on; npos while incomplete. Lines end in LF
// or CRLF.
std::size_t find_head_end(const std::string& in, std::size_t from) {
  std::size_t i = std::max<std::size_t>(from, 1);
  while (i < in.size()) {
    const void* hit = std::memchr(in.data() + i, '\n', in.size() - i);
    if (hit == nullptr) return std::string::npos;
    i = static_cast<std::size_t>(static_cast<const char*>(hit) - in.data());
    if (i >= 1 && in[i - 1] == '\n') return i + 1;
    if (i >= 2 && in[i - 1] == '\r' && in[i - 2] == '\n') return i + 1;
    ++i;
  }
  return std::string::npos;
}

// What the request line and headers say.
struct Head {
  Request request;  // without the body
  std::uint64_t content_length = 0;
  bool keep_alive = true;
  bool expect_continue = false;
};

// A request the transport answers itself.
struct Refusal {
  int status = 400;
  std::string message;
};

bool refuse(Refusal& out, int status, std::string message) {
  out = {status, std::move(message)};
  return false;
}

// Parses text = request line + headers + blank line. false with `refusal` set
// for a request that is answered without running the handler.
bool parse_head(std::string_view text, Head& head, Refusal& refusal) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const std::size_t lf = text.find('\n');
    std::string_view line = text.substr(0, lf);
    text.remove_prefix(lf == text.npos ? text.size() : lf + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    lines.push_back(line);
  }
  if (lines.empty()) return refuse(refusal, 400, "empty request");
  Request& r = head.request;

  // Request line: METHOD SP target SP HTTP/x.y
  const std::string_view line = lines[0];
  const std::size_t sp1 = line.find(' ');
  const std::size_t sp2 = sp1 == line.npos ? line.npos : line.find(' ', sp1 + 1);
  if (sp2 == line.npos || line.find(' ', sp2 + 1) != line.npos)
    return refuse(refusal, 400, "malformed request line (expected \"METHOD target HTTP/1.1\")");
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!is_token(method)) return refuse(refusal, 400, "malformed request line: invalid method");
  if (target.empty() || std::any_of(target.begin(), target.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u == 0x7f;
      }))
    return refuse(refusal, 400, "malformed request line: invalid request target");
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  const bool version_shape = version.size() == 8 && version.substr(0, 5) == "HTTP/" && digit(version[5]) &&
                             version[6] == '.' && digit(version[7]);
  if (!version_shape) return refuse(refusal, 400, "malformed request line: invalid HTTP version");
  if (version == "HTTP/1.1") {
    r.version_minor = 1;
  } else if (version == "HTTP/1.0") {
    r.version_minor = 0;
  } else {
    return refuse(refusal, 505, fmt::format("{} is not supported (this server speaks HTTP/1.1 and 1.0)", version));
  }
  r.method = std::string(method);
  r.target = std::string(target);
  std::string_view path = target;
  if (path.front() != '/' && path != "*") {
    // absolute-form: scheme://authority/path?query
    const std::size_t scheme = path.find("://");
    if (scheme == path.npos || !(iequals(path.substr(0, scheme), "http") || iequals(path.substr(0, scheme), "https")))
      return refuse(refusal, 400, "malformed request target (expected a path such as /v1/models)");
    path.remove_prefix(scheme + 3);
    const std::size_t slash = path.find_first_of("/?");
    path = slash == path.npos ? std::string_view("/") : path.substr(slash);
    r.path = path.front() == '?' ? "/" : "";
  }
  const std::size_t question = path.find('?');
  r.path += std::string(path.substr(0, question));
  if (question != path.npos) r.query = std::string(path.substr(question + 1));

  // Header fields.
  bool close = false;
  bool keep_alive = false;
  bool have_length = false;
  std::optional<std::size_t> transfer_encoding;  // indices into r.headers
  std::optional<std::size_t> expect;
  for (std::size_t k = 1; k < lines.size(); ++k) {
    const std::string_view field = lines[k];
    if (field.front() == ' ' || field.front() == '\t')
      return refuse(refusal, 400, "malformed header: folded header lines are not accepted");
    const std::size_t colon = field.find(':');
    if (colon == field.npos || !is_token(field.substr(0, colon)))
      return refuse(refusal, 400, fmt::format("malformed header line {} (expected \"Name: value\")", k));
    const std::string_view value = trim(field.substr(colon + 1));
    if (std::any_of(value.begin(), value.end(), [](char c) {
          const auto u = static_cast<unsigned char>(c);
          return (u < 0x20 && u != '\t') || u == 0x7f;
        }))
      return refuse(refusal, 400, fmt::format("malformed header \"{}\": control characters in its value",
                                              field.substr(0, colon)));
    r.headers.emplace_back(std::string(field.substr(0, colon)), std::string(value));
    const std::string_view name = field.substr(0, colon);
    if (iequals(name, "content-length")) {
      if (value.empty() || value.size() > 18 ||
          !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return refuse(refusal, 400, fmt::format("invalid Content-Length \"{}\"", value));
      const std::uint64_t length = std::stoull(std::string(value));
      if (have_length && length != head.content_length)
        return refuse(refusal, 400, "conflicting Content-Length headers");
      head.content_length = length;
      have_length = true;
    } else if (iequals(name, "transfer-encoding")) {
      transfer_encoding = r.headers.size() - 1;
    } else if (iequals(name, "expect")) {
      expect = r.headers.size() - 1;
    } else if (iequals(name, "connection")) {
      std::string_view rest = value;
      while (!rest.empty()) {
        const std::size_t comma = rest.find(',');
        const std::string_view option = trim(rest.substr(0, comma));
        if (iequals(option, "close")) close = true;
        if (iequals(option, "keep-alive")) keep_alive = true;
        rest.remove_prefix(comma == rest.npos ? rest.size() : comma + 1);
      }
    }
  }
  head.keep_alive = r.version_minor == 1 ? !close : keep_alive && !close;
  if (transfer_encoding) {
    const std::string& codings_text = r.headers[*transfer_encoding].second;
    const std::string_view codings = codings_text;
    const std::size_t comma = codings.rfind(',');
    const std::string_view last = trim(comma == codings.npos ? codings : codings.substr(comma + 1));
    if (iequals(last, "chunked"))
      return refuse(refusal, 411, "chunked request bodies are not supported: send the body with a Content-Length");
    return refuse(refusal, 501, fmt::format("Transfer-Encoding \"{}\" is not supported: send the body with a "
                                            "Content-Length",
                                            codings_text));
  }
  if (expect) {
    const std::string& expectation = r.headers[*expect].second;
    if (!iequals(expectation, "100-continue"))
      return refuse(refusal, 417, fmt::format("Expect \"{}\" is not supported", expectation));
    head.expect_continue = r.version_minor == 1;  // HTTP/1.0's is ignored (RFC 9110 §10.1.1)
  }
  return true;
}

enum class State {
  kHeaders,   // reading the request line and headers (or idle between requests)
  kBody,      // reading the body
  kHandling,  // the request is queued or with a worker; nothing is read
  kWriting,   // writing the response
  kLingering  // after a closing response: our side shut down, the client's bytes are discarded until it closes
};

struct Connection {
  std::uint64_t id = 0;
  int fd = -1;
  std::string peer;
  State state = State::kHeaders;
  bool counted = true;  // against max_connections (refusals and lingering connections are not)
  bool idle = false;    // kHeaders after a response, nothing of the next request received yet
  bool closed = false;  // fd closed; erased at the end of the I/O loop's round
  std::string in;       // received bytes not yet consumed: the request being read, then what follows it
  std::size_t scan = 0;  // where the search for the end of the headers resumes
  std::size_t head_bytes = 0;
  std::uint64_t body_bytes = 0;
  Request request;
  std::string what;  // "METHOD path" of the request with a worker, for the log
  bool keep_alive = false;
  bool head_method = false;
  std::string out_head;
  std::string out_body;
  std::size_t sent = 0;  // of out_head + out_body
  bool close_after = false;
  std::uint32_t events = 0;  // registered with epoll
  bool has_deadline = false;
  TimePoint deadline{};
};

struct Job {
  std::uint64_t connection;
  Request request;
};

struct Done {
  std::uint64_t connection;
  Response response;
};

}  // namespace

struct Server::Impl {
  Handler handler;
  ServerOptions options;
  std::size_t workers = 0;
  std::size_t max_queue = 0;

  int listen_fd = -1;
  int epoll_fd = -1;
  int wake_fd = -1;
  int reserve_fd = -1;  // a spare descriptor, given up to accept-and-refuse when the process runs out

  // Lifecycle.
  mutable std::mutex state_mutex;
  std::condition_variable state_cv;
  bool started = false;
  bool finished = false;
  int port = 0;
  std::atomic<bool> stopping{false};
  std::mutex join_mutex;
  std::thread io_thread;
  std::vector<std::thread> worker_threads;

  // Requests for the workers.
  mutable std::mutex queue_mutex;
  std::condition_variable queue_cv;
  std::deque<Job> queue;
  std::size_t busy = 0;
  bool workers_exit = false;
  // Answers from the workers.
  std::mutex done_mutex;
  std::vector<Done> done;

  std::atomic<std::size_t> open_connections{0};
  std::atomic<std::uint64_t> accepted{0}, requests{0}, refused_connections{0}, refused_queue_full{0}, timeouts{0},
      write_timeouts{0}, bad_requests{0};

  // The I/O thread's own state.
  std::unordered_map<std::uint64_t, std::unique_ptr<Connection>> connections;
  std::set<std::pair<TimePoint, std::uint64_t>> timers;
  std::vector<std::uint64_t> graveyard;
  std::vector<char> scratch = std::vector<char>(kReadChunk);  // what one recv() reads into
  std::uint64_t next_id = 2;
  std::size_t active = 0;       // connections counted against max_connections
  std::size_t closing = 0;      // refusals and lingering closes
  std::size_t outstanding = 0;  // jobs handed to the workers whose answers have not come back
  bool shutting_down = false;
  bool listener_paused = false;
  TimePoint listener_resume{};
  TimePoint log_window{};
  int log_lines = 0;
  std::uint64_t log_suppressed = 0;
  std::time_t date_second = 0;
  std::string date_text;

  ~Impl() {
    for (int* fd : {&listen_fd, &epoll_fd, &wake_fd, &reserve_fd})
      if (*fd >= 0) {
        ::close(*fd);
        *fd = -1;
      }
  }

  void wake() {
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_fd, &one, sizeof one);
  }

  void join() {
    std::lock_guard lock(join_mutex);
    if (io_thread.joinable()) io_thread.join();
    for (auto& w : worker_threads)
      if (w.joinable()) w.join();
  }

  // ------------------------------------------------------------------ workers

  void worker_loop() {
    t_server = this;
    for (;;) {
      Job job;
      {
        std::unique_lock lock(queue_mutex);
        queue_cv.wait(lock, [&] { return !queue.empty() || workers_exit; });
        if (queue.empty()) return;
        job = std::move(queue.front());
        queue.pop_front();
        ++busy;
      }
      Response response;
      try {
        response = handler(job.request);
      } catch (const std::exception& e) {
        response = error_response(500, fmt::format("internal error: {}", e.what()));
      } catch (...) {
        response = error_response(500, "internal error");
      }
      {
        std::lock_guard lock(queue_mutex);
        --busy;
      }
      std::lock_guard lock(done_mutex);
      done.push_back({job.connection, std::move(response)});
      wake();
    }
  }

  // ------------------------------------------------------------------ logging

  void emit(const std::string& line) {
    try {
      options.log(line);
    } catch (...) {
    }
  }

  void log(const std::string& line) {
    if (!options.log) return;
    const TimePoint now = Clock::now();
    if (now - log_window >= std::chrono::seconds(1)) {
      if (log_suppressed > 0)
        emit(fmt::format("({} more messages of the transport were not logged: over {} a second)", log_suppressed,
                         kLogLinesPerSecond));
      log_window = now;
      log_lines = 0;
      log_suppressed = 0;
    }
    if (log_lines >= kLogLinesPerSecond) {
      ++log_suppressed;
      return;
    }
    ++log_lines;
    emit(line);
  }

  // --------------------------------------------------------------- bookkeeping

  void set_events(Connection& c, std::uint32_t events) {
    if (c.closed || c.events == events) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = c.id;
    if (::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c.fd, &ev) == 0) c.events = events;
  }

  void set_deadline(Connection& c, TimePoint when) {
    clear_deadline(c);
    c.deadline = when;
    c.has_deadline = true;
    timers.emplace(when, c.id);
  }

  void clear_deadline(Connection& c) {
    if (!c.has_deadline) return;
    timers.erase({c.deadline, c.id});
    c.has_deadline = false;
  }

  static TimePoint after(double seconds) {
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  }

  void uncount(Connection& c) {
    if (!c.counted) return;
    c.counted = false;
    --active;
    ++closing;
    open_connections.store(active);
  }

  void close_connection(Connection& c) {
    if (c.closed) return;
    c.closed = true;
    clear_deadline(c);
    ::close(c.fd);  // also removes it from the epoll set
    c.fd = -1;
    if (c.counted) {
      --active;
      open_connections.store(active);
    } else {
      --closing;
    }
    graveyard.push_back(c.id);
  }

  Connection* find(std::uint64_t id) {
    const auto it = connections.find(id);
    return it == connections.end() || it->second->closed ? nullptr : it->second.get();
  }

  // The new connection, or nullptr (fd closed, logged) when epoll cannot take it.
  Connection* add_connection(int fd, std::string peer, bool counted) {
    auto c = std::make_unique<Connection>();
    c->id = next_id++;
    c->fd = fd;
    c->peer = std::move(peer);
    c->counted = counted;
    c->events = EPOLLIN;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = c->id;
    if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      log(fmt::format("{}: cannot watch the connection ({}); closed", c->peer, errno_text(errno)));
      ::close(fd);
      return nullptr;
    }
    if (counted) {
      ++active;
      open_connections.store(active);
    } else {
      ++closing;
    }
    Connection* ref = c.get();
    connections.emplace(ref->id, std::move(c));
    return ref;
  }

  // ------------------------------------------------------------------- writing

  const std::string& date() {
    const std::time_t now = std::time(nullptr);
    if (now != date_second || date_text.empty()) {
      date_second = now;
      date_text = http_date(now);
    }
    return date_text;
  }

  void start_write(Connection& c, Response response) {
    bool valid = response.status >= 200 && response.status <= 599 && !has_line_break_or_nul(response.content_type);
    for (const auto& [name, value] : response.headers) valid = valid && is_token(name) && !has_line_break_or_nul(value);
    if (!valid) {
      log(fmt::format("{}: the handler's response to {} is invalid (status {}, or a header with a line break); "
                      "answered 500",
                      c.peer, c.what, response.status));
      response = error_response(500, "internal error: the handler's response is not valid HTTP");
    }
    const int status = response.status;
    const bool no_body = status == 204 || status == 304;
    c.close_after = !c.keep_alive || shutting_down || stopping.load();
    std::string& head = c.out_head;
    head.clear();
    head += fmt::format("HTTP/1.1 {} {}\r\nDate: {}\r\n", status, reason_phrase(status), date());
    if (!no_body) {
      if (!response.content_type.empty()) head += fmt::format("Content-Type: {}\r\n", response.content_type);
      head += fmt::format("Content-Length: {}\r\n", response.body.size());
    }
    for (const auto& [name, value] : response.headers) head += fmt::format("{}: {}\r\n", name, value);
    if (c.close_after) {
      head += "Connection: close\r\n\r\n";
    } else {
      head += fmt::format("Connection: keep-alive\r\nKeep-Alive: timeout={}\r\n\r\n",
                          std::max<long>(1, std::lround(std::floor(options.idle_timeout_seconds))));
    }
    c.out_body = no_body || c.head_method ? std::string() : std::move(response.body);
    c.sent = 0;
    c.state = State::kWriting;
    set_deadline(c, after(options.write_timeout_seconds));
    on_writable(c);
  }

  void on_writable(Connection& c) {
    const std::size_t total = c.out_head.size() + c.out_body.size();
    while (c.sent < total) {
      iovec iov[2];
      int count = 0;
      if (c.sent < c.out_head.size()) {
        iov[count++] = {c.out_head.data() + c.sent, c.out_head.size() - c.sent};
        if (!c.out_body.empty()) iov[count++] = {c.out_body.data(), c.out_body.size()};
      } else {
        const std::size_t offset = c.sent - c.out_head.size();
        iov[count++] = {c.out_body.data() + offset, c.out_body.size() - offset};
      }
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<std::size_t>(count);
      const ssize_t n = ::sendmsg(c.fd, &msg, MSG_NOSIGNAL);
      if (n > 0) {
        c.sent += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        set_events(c, EPOLLOUT);
        return;
      }
      close_connection(c);  // the client is gone (EPIPE, ECONNRESET)
      return;
    }
    finished_write(c);
  }

  void finished_write(Connection& c) {
    c.out_head.clear();
    c.out_body = std::string();
    if (c.out_head.capacity() > kShrinkAbove) c.out_head.shrink_to_fit();
    if (c.close_after || shutting_down) {
      if (shutting_down) {
        close_connection(c);
      } else {
        begin_linger(c);
      }
      return;
    }
    c.state = State::kHeaders;
    c.request = Request();
    c.head_method = false;
    c.scan = 0;
    c.idle = c.in.empty();
    set_deadline(c, after(c.idle ? options.idle_timeout_seconds : options.header_timeout_seconds));
    set_events(c, EPOLLIN);
    process(c);  // a pipelined request may be buffered already
  }

  // After a response that closes the connection: shut our side down and
  // discard what the client still sends until it closes (or kLingerSeconds
  // pass), so that it reads the response instead of a reset (closing a socket
  // with unread bytes sends RST, which can destroy the response in flight).
  void begin_linger(Connection& c) {
    ::shutdown(c.fd, SHUT_WR);
    uncount(c);
    if (closing > static_cast<std::size_t>(options.max_connections)) {
      close_connection(c);
      return;
    }
    c.state = State::kLingering;
    c.in = std::string();
    c.request = Request();
    set_deadline(c, after(std::min(kLingerSeconds, options.idle_timeout_seconds)));
    set_events(c, EPOLLIN);
  }

  // Answers a request the transport refuses, and closes the connection after.
  void refuse(Connection& c, int status, const std::string& message) {
    if (status == 408) {
      ++timeouts;
    } else if (status != 503) {
      ++bad_requests;
    }
    log(fmt::format("{}: {} {}", c.peer, status, message));
    c.keep_alive = false;
    start_write(c, error_response(status, message));
  }

  // ------------------------------------------------------------------- reading

  void on_readable(Connection& c) {
    if (c.state == State::kLingering) {
      const ssize_t n = ::recv(c.fd, scratch.data(), scratch.size(), 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) close_connection(c);
      return;
    }
    std::size_t room = 0;
    if (c.state == State::kHeaders) {
      const std::size_t limit = options.max_header_bytes + 1;
      room = c.in.size() < limit ? limit - c.in.size() : 0;
    } else {
      room = static_cast<std::size_t>(c.head_bytes + c.body_bytes - c.in.size());
    }
    if (room == 0) {  // cannot happen: process() refuses a full buffer
      process(c);
      return;
    }
    // Into the scratch buffer first, so that a connection's buffer grows by
    // what arrives, not by the chunk size (a slow client costs bytes, not 64 KiB).
    const ssize_t n = ::recv(c.fd, scratch.data(), std::min(room, scratch.size()), 0);
    const int e = errno;
    if (n > 0) {
      c.in.append(scratch.data(), static_cast<std::size_t>(n));
      process(c);
    } else if (n == 0) {
      close_connection(c);  // the client closed (between requests, or giving up on one)
    } else if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR) {
      close_connection(c);
    }
  }

  // Moves the connection on with what has been received: parses the head,
  // waits for the body, hands a complete request to the workers.
  void process(Connection& c) {
    if (c.closed) return;
    if (c.state == State::kHeaders) {
      if (c.scan == 0) {  // empty lines before a request line are ignored (RFC 9112 §2.2)
        std::size_t k = 0;
        while (k < c.in.size() && (c.in[k] == '\r' || c.in[k] == '\n')) ++k;
        if (k > 0) c.in.erase(0, k);
      }
      if (c.in.empty()) return;
      if (c.idle) {  // the first byte of the next request on a kept-alive connection
        c.idle = false;
        set_deadline(c, after(options.header_timeout_seconds));
      }
      const std::size_t end = find_head_end(c.in, c.scan);
      if (end == std::string::npos) {
        c.scan = c.in.size();
        if (c.in.size() > options.max_header_bytes)
          refuse(c, 431, fmt::format("the request line and headers exceed {} bytes (max_header_bytes)",
                                     options.max_header_bytes));
        return;
      }
      if (end > options.max_header_bytes) {
        refuse(c, 431, fmt::format("the request line and headers exceed {} bytes (max_header_bytes)",
                                   options.max_header_bytes));
        return;
      }
      Head head;
      Refusal refusal;
      if (!parse_head(std::string_view(c.in).substr(0, end), head, refusal)) {
        c.request = std::move(head.request);
        refuse(c, refusal.status, refusal.message);
        return;
      }
      c.request = std::move(head.request);
      c.keep_alive = head.keep_alive;
      c.head_method = c.request.method == "HEAD";
      if (head.content_length > options.max_body_bytes) {
        refuse(c, 413, fmt::format("the request body of {} bytes exceeds {} bytes (max_body_bytes)",
                                   head.content_length, options.max_body_bytes));
        return;
      }
      c.head_bytes = end;
      c.body_bytes = head.content_length;
      c.scan = 0;
      c.state = State::kBody;
      if (c.body_bytes > 0) {
        set_deadline(c, after(options.body_timeout_seconds));
        if (head.expect_continue && c.in.size() < c.head_bytes + c.body_bytes) {
          static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
          // Nothing else is being written on this connection: the send buffer has room.
          [[maybe_unused]] const ssize_t n = ::send(c.fd, kContinue, sizeof kContinue - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
      }
    }
    if (c.state == State::kBody) {
      const std::size_t total = c.head_bytes + static_cast<std::size_t>(c.body_bytes);
      if (c.in.size() < total) return;
      c.request.body.assign(c.in, c.head_bytes, static_cast<std::size_t>(c.body_bytes));
      c.in.erase(0, total);
      if (c.in.capacity() > kShrinkAbove) c.in.shrink_to_fit();
      dispatch(c);
    }
  }

  void dispatch(Connection& c) {
    if (shutting_down) {
      refuse(c, 503, "the server is shutting down");
      return;
    }
    bool full = false;
    std::size_t waiting = 0;
    {
      std::lock_guard lock(queue_mutex);
      waiting = queue.size();
      if (busy + queue.size() >= workers + max_queue) {
        full = true;
      } else {
        c.what = fmt::format("{} {}", c.request.method, c.request.path);
        queue.push_back({c.id, std::move(c.request)});
        ++requests;
      }
    }
    if (full) {
      ++refused_queue_full;
      refuse(c, 503,
             fmt::format("the server is busy: {} requests are waiting for its {} workers (max_queue {}); retry later",
                         waiting, workers, max_queue));
      return;
    }
    queue_cv.notify_one();
    ++outstanding;
    c.request = Request();
    c.state = State::kHandling;
    clear_deadline(c);
    set_events(c, 0);
  }

  void collect_done() {
    std::vector<Done> batch;
    {
      std::lock_guard lock(done_mutex);
      batch.swap(done);
    }
    for (Done& d : batch) {
      --outstanding;
      Connection* c = find(d.connection);
      if (c == nullptr || c->state != State::kHandling) continue;  // the client has gone
      start_write(*c, std::move(d.response));
    }
  }

  // --------------------------------------------------------------- accepting

  void pause_listener() {
    if (listen_fd < 0) return;
    epoll_event ev{};
    ev.data.u64 = kListenerId;
    ::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, listen_fd, &ev);
    listener_paused = true;
    listener_resume = Clock::now() + kAcceptPause;
  }

  void resume_listener() {
    if (!listener_paused || Clock::now() < listener_resume || listen_fd < 0) return;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenerId;
    ::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, listen_fd, &ev);
    listener_paused = false;
  }

  // A 503 sent without waiting, for connections the server cannot keep.
  static void refuse_at_once(int fd, const std::string& message) {
    const Response r = error_response(503, message);
    const std::string bytes =
        fmt::format("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
                    "Retry-After: 1\r\nConnection: close\r\n\r\n{}",
                    r.body.size(), r.body);
    [[maybe_unused]] const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }

  void accept_all() {
    for (;;) {
      sockaddr_storage addr{};
      socklen_t length = sizeof addr;
      const int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr), &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const int e = errno;
        if (e == EINTR || e == ECONNABORTED || e == EPROTO) continue;
        if (e == EAGAIN || e == EWOULDBLOCK) return;
        if ((e == EMFILE || e == ENFILE) && reserve_fd >= 0) {
          // Out of descriptors: give up the spare one to accept, refuse and close this connection.
          ::close(reserve_fd);
          reserve_fd = -1;
          const int spare = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (spare >= 0) {
            ++accepted;
            ++refused_connections;
            refuse_at_once(spare, "the server has run out of file descriptors; retry later");
            ::close(spare);
          }
          reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
          log(fmt::format("accept: {} (the process's descriptor limit); refused a connection with 503",
                          errno_text(e)));
          if (reserve_fd >= 0) continue;
        }
        log(fmt::format("accept failed: {}; new connections wait {} ms", errno_text(e), kAcceptPause.count()));
        pause_listener();
        return;
      }
      ++accepted;
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      std::string peer = peer_name(addr);
      if (active >= static_cast<std::size_t>(options.max_connections)) {
        ++refused_connections;
        const std::string message =
            fmt::format("too many connections: {} are open (max_connections); retry later", active);
        log(fmt::format("{}: 503 {}", peer, message));
        if (closing >= static_cast<std::size_t>(options.max_connections)) {
          refuse_at_once(fd, message);
          ::close(fd);
          continue;
        }
        if (Connection* c = add_connection(fd, std::move(peer), /*counted=*/false)) {
          c->keep_alive = false;
          start_write(*c, error_response(503, message));
        }
        continue;
      }
      if (Connection* c = add_connection(fd, std::move(peer), /*counted=*/true))
        set_deadline(*c, after(options.header_timeout_seconds));
    }
  }

  // ------------------------------------------------------------------ events

  void on_event(Connection& c, std::uint32_t events) {
    if (events & EPOLLERR) {
      close_connection(c);
      return;
    }
    switch (c.state) {
      case State::kHeaders:
      case State::kBody:
      case State::kLingering:
        if (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) on_readable(c);
        break;
      case State::kWriting:
        if (events & (EPOLLOUT | EPOLLHUP)) on_writable(c);
        break;
      case State::kHandling:
        if (events & EPOLLHUP) close_connection(c);  // reset by the client: its answer is dropped
        break;
    }
  }

  void on_deadline(Connection& c) {
    switch (c.state) {
      case State::kHeaders:
        if (c.idle) {
          close_connection(c);  // idle_timeout between requests: closed without a word
        } else {
          refuse(c, 408, fmt::format("the request line and headers were not received within {} (header_timeout); "
                                     "{} bytes arrived",
                                     seconds_text(options.header_timeout_seconds), c.in.size()));
        }
        break;
      case State::kBody:
        refuse(c, 408, fmt::format("the request body was not received within {} (body_timeout): {} of {} bytes "
                                   "arrived",
                                   seconds_text(options.body_timeout_seconds), c.in.size() - c.head_bytes,
                                   c.body_bytes));
        break;
      case State::kWriting:
        ++write_timeouts;
        log(fmt::format("{}: the response was not read within {} (write_timeout): {} of {} bytes sent; connection "
                        "closed",
                        c.peer, seconds_text(options.write_timeout_seconds), c.sent,
                        c.out_head.size() + c.out_body.size()));
        close_connection(c);
        break;
      case State::kLingering:
        close_connection(c);
        break;
      case State::kHandling:
        break;
    }
  }

  void expire_timers() {
    const TimePoint now = Clock::now();
    while (!timers.empty() && timers.begin()->first <= now) {
      const std::uint64_t id = timers.begin()->second;
      timers.erase(timers.begin());
      const auto it = connections.find(id);
      if (it == connections.end()) continue;
      Connection& c = *it->second;
      c.has_deadline = false;
      if (!c.closed) on_deadline(c);
    }
  }

  int next_timeout_ms() const {
    TimePoint next = TimePoint::max();
    if (!timers.empty()) next = timers.begin()->first;
    if (listener_paused) next = std::min(next, listener_resume);
    if (next == TimePoint::max()) return -1;
    const auto wait = next - Clock::now();
    if (wait <= Clock::duration::zero()) return 0;
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
    return static_cast<int>(std::min<long long>(ms, INT_MAX));
  }

  void bury() {
    for (const std::uint64_t id : graveyard) connections.erase(id);
    graveyard.clear();
  }

  // stop(): no new connections, no new requests; requests with a worker are answered.
  void begin_shutdown() {
    shutting_down = true;
    if (listen_fd >= 0) {
      ::close(listen_fd);
      listen_fd = -1;
    }
    std::deque<Job> queued;
    {
      std::lock_guard lock(queue_mutex);
      queued.swap(queue);
    }
    for (Job& job : queued) {
      --outstanding;
      if (Connection* c = find(job.connection); c != nullptr && c->state == State::kHandling)
        refuse(*c, 503, "the server is shutting down");
    }
    for (auto& [id, c] : connections) {
      if (c->closed) continue;
      if (c->state == State::kHeaders || c->state == State::kBody || c->state == State::kLingering)
        close_connection(*c);
    }
    bury();
  }

  void run() {
    std::vector<epoll_event> events(256);
    for (;;) {
      if (stopping.load() && !shutting_down) begin_shutdown();
      if (shutting_down && outstanding == 0 && connections.empty()) return;
      const int n = ::epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), next_timeout_ms());
      if (n < 0) {
        if (errno == EINTR) continue;
        throw Error(fmt::format("epoll_wait: {}", errno_text(errno)));
      }
      for (int i = 0; i < n; ++i) {
        const std::uint64_t id = events[static_cast<std::size_t>(i)].data.u64;
        if (id == kListenerId) {
          if (listen_fd >= 0 && !shutting_down) accept_all();
        } else if (id == kWakeId) {
          std::uint64_t count = 0;
          [[maybe_unused]] const ssize_t r = ::read(wake_fd, &count, sizeof count);
        } else if (Connection* c = find(id)) {
          on_event(*c, events[static_cast<std::size_t>(i)].events);
        }
      }
      collect_done();
      expire_timers();
      resume_listener();
      bury();
    }
  }

  void io_loop() {
    t_server = this;
    try {
      run();
    } catch (const std::exception& e) {
      log(fmt::format("the server failed: {}", e.what()));
    } catch (...) {
      log("the server failed");
    }
    for (auto& [id, c] : connections) close_connection(*c);
    bury();
    if (listen_fd >= 0) {
      ::close(listen_fd);
      listen_fd = -1;
    }
    {
      std::lock_guard lock(queue_mutex);
      queue.clear();
      workers_exit = true;
    }
    queue_cv.notify_all();
    {
      std::lock_guard lock(state_mutex);
      finished = true;
    }
    state_cv.notify_all();
  }
};

Server::Server(Handler handler, ServerOptions options) : impl_(std::make_unique<Impl>()) {
  if (!handler) throw Error("http::Server: no handler");
  const auto positive = [](double s) { return std::isfinite(s) && s > 0; };
  if (!positive(options.header_timeout_seconds) || !positive(options.body_timeout_seconds) ||
      !positive(options.idle_timeout_seconds) || !positive(options.write_timeout_seconds))
    throw Error(fmt::format("http::Server: timeouts must be positive and finite (header {}, body {}, idle {}, "
                            "write {})",
                            options.header_timeout_seconds, options.body_timeout_seconds,
                            options.idle_timeout_seconds, options.write_timeout_seconds));
  if (options.workers < 0 || options.workers > 4096)
    throw Error(fmt::format("http::Server: workers {} outside [0, 4096] (0: the default)", options.workers));
  if (options.max_connections < 1)
    throw Error(fmt::format("http::Server: max_connections {} < 1", options.max_connections));
  if (options.max_queue < -1) throw Error(fmt::format("http::Server: max_queue {} < -1", options.max_queue));
  if (options.max_header_bytes < 256)
    throw Error(fmt::format("http::Server: max_header_bytes {} < 256", options.max_header_bytes));
  if (options.port < 0 || options.port > 65535)
    throw Error(fmt::format("http::Server: port {} outside [0, 65535]", options.port));
  if (options.host.empty()) throw Error("http::Server: empty host");
  Impl& s = *impl_;
  s.handler = std::move(handler);
  s.workers = options.workers > 0 ? static_cast<std::size_t>(options.workers)
                                  : std::max<std::size_t>(4, std::thread::hardware_concurrency());
  s.max_queue = options.max_queue >= 0 ? static_cast<std::size_t>(options.max_queue)
                                       : std::max<std::size_t>(64, 4 * s.workers);
  s.options = std::move(options);
}

Server::~Server() {
  try {
    stop();
  } catch (...) {
  }
}

void Server::start() {
  Impl& s = *impl_;
  {
    std::lock_guard lock(s.state_mutex);
    if (s.started) throw Error("http::Server: already started (a stopped server is not restarted: make a new one)");
  }
  const ServerOptions& o = s.options;
  const std::string address = o.port == 0 ? fmt::format("a free port on {}", o.host) : where(o.host, o.port);

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(o.port);
  if (const int rc = ::getaddrinfo(o.host.c_str(), service.c_str(), &hints, &found); rc != 0)
    throw Error(fmt::format("http::Server: cannot bind {}: cannot resolve \"{}\" ({})", address, o.host,
                            ::gai_strerror(rc)));
  int fd = -1;
  int error = 0;
  for (addrinfo* ai = found; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      error = errno;
      continue;
    }
    // SO_REUSEADDR only (restarts while old connections are in TIME_WAIT);
    // never SO_REUSEPORT, which would let a second server share a port in use.
    const int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, SOMAXCONN) != 0) {
      error = errno;
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0) throw Error(fmt::format("http::Server: cannot bind {}: {}", address, errno_text(error)));
  s.listen_fd = fd;
  sockaddr_storage bound{};
  socklen_t length = sizeof bound;
  int port = o.port;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) == 0) {
    if (bound.ss_family == AF_INET) port = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    if (bound.ss_family == AF_INET6) port = ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  }

  const auto fail = [&](const std::string& what) {
    const int e = errno;
    for (int* f : {&s.listen_fd, &s.epoll_fd, &s.wake_fd, &s.reserve_fd})
      if (*f >= 0) {
        ::close(*f);
        *f = -1;
      }
    throw Error(fmt::format("http::Server: {} failed on {}: {}", what, where(o.host, port), errno_text(e)));
  };
  s.epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (s.epoll_fd < 0) fail("epoll_create1");
  s.wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s.wake_fd < 0) fail("eventfd");
  s.reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenerId;
  if (::epoll_ctl(s.epoll_fd, EPOLL_CTL_ADD, s.listen_fd, &ev) != 0) fail("epoll_ctl");
  ev.data.u64 = kWakeId;
  if (::epoll_ctl(s.epoll_fd, EPOLL_CTL_ADD, s.wake_fd, &ev) != 0) fail("epoll_ctl");

  {
    std::lock_guard lock(s.state_mutex);
    s.port = port;
    s.started = true;
  }
  try {
    s.worker_threads.reserve(s.workers);
    for (std::size_t k = 0; k < s.workers; ++k) s.worker_threads.emplace_back([&s] { s.worker_loop(); });
    s.io_thread = std::thread([&s] { s.io_loop(); });
  } catch (const std::system_error& e) {
    {
      std::lock_guard lock(s.queue_mutex);
      s.workers_exit = true;
    }
    s.queue_cv.notify_all();
    for (auto& w : s.worker_threads) w.join();
    s.worker_threads.clear();
    {
      std::lock_guard lock(s.state_mutex);
      s.finished = true;
    }
    s.state_cv.notify_all();
    throw Error(fmt::format("http::Server: cannot start its threads on {}: {}", where(o.host, port), e.what()));
  }
}

void Server::stop() {
  Impl& s = *impl_;
  {
    std::lock_guard lock(s.state_mutex);
    if (!s.started) return;
  }
  s.stopping.store(true);
  s.wake();
  if (t_server == &s) return;  // from a handler or the log: the threads are joined later
  s.join();
}

void Server::wait() {
  Impl& s = *impl_;
  {
    std::unique_lock lock(s.state_mutex);
    s.state_cv.wait(lock, [&] { return !s.started || s.finished; });
  }
  if (t_server != &s) s.join();
}

bool Server::running() const {
  std::lock_guard lock(impl_->state_mutex);
  return impl_->started && !impl_->finished;
}

int Server::port() const {
  std::lock_guard lock(impl_->state_mutex);
  return impl_->port;
}

ServerStats Server::stats() const {
  const Impl& s = *impl_;
  ServerStats out;
  out.open_connections = s.open_connections.load();
  {
    std::lock_guard lock(s.queue_mutex);
    out.queued = s.queue.size();
    out.busy_workers = s.busy;
  }
  out.accepted = s.accepted.load();
  out.requests = s.requests.load();
  out.refused_connections = s.refused_connections.load();
  out.refused_queue_full = s.refused_queue_full.load();
  out.timeouts = s.timeouts.load();
  out.write_timeouts = s.write_timeouts.load();
  out.bad_requests = s.bad_requests.load();
  return out;
}

}  // namespace anchors::http
