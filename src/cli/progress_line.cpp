#include "progress_line.h"

#include <cmath>

#include <fmt/format.h>

namespace anchors::cli {

std::string duration_text(double seconds, bool known) {
  if (!known || !std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<long long>(std::llround(seconds));
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

void ProgressLine::operator()(std::size_t done, std::size_t total, const std::string& unit) {
  if (quiet_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!first_) first_.emplace(done, now);
  const double seconds = std::chrono::duration<double>(now - first_->second).count();
  const double rate = seconds > 0 && done > first_->first ? static_cast<double>(done - first_->first) / seconds : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total - std::min(done, total)) / rate : 0.0;
  err_ << fmt::format("\r{}: {}/{} {}, {:.1f} {}/s, eta {}   ", label_, done, total, unit, rate, unit,
                      duration_text(eta, rate > 0 || done >= total));
  open_ = done < total;
  err_ << (open_ ? "" : "\n") << std::flush;
}

void ProgressLine::finish() {
  if (open_) err_ << "\n" << std::flush;
  open_ = false;
}

}  // namespace anchors::cli
