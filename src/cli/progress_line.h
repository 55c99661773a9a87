#pragma once
// The command line's one progress display for a RunControl (core/run_control.h):
//
//   ProgressLine line(err, "analyze", quiet);
//   options.control.progress = std::ref(line);
//   ... run ...
//   line.finish();
//
// prints "\r<label>: <done>/<total> <unit>, <rate> <unit>/s, eta <time>" on
// every report (rate and ETA measured from the first report, so work resumed
// from disk does not inflate them), a newline once done == total, nothing when
// quiet.
#include <chrono>
#include <cstddef>
#include <optional>
#include <ostream>
#include <string>

namespace anchors::cli {

// "42s", "3m05s", "1h07m"; "?" when not known.
std::string duration_text(double seconds, bool known);

class ProgressLine {
 public:
  ProgressLine(std::ostream& err, std::string label, bool quiet) : err_(err), label_(std::move(label)), quiet_(quiet) {}
  void operator()(std::size_t done, std::size_t total, const std::string& unit);
  // Ends a line left open (e.g. when the run stopped with an error).
  void finish();

 private:
  std::ostream& err_;
  std::string label_;
  bool quiet_;
  bool open_ = false;
  std::optional<std::pair<std::size_t, std::chrono::steady_clock::time_point>> first_;
};

}  // namespace anchors::cli
