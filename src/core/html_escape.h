#pragma once
// Internal: text for HTML (element content and quoted attribute values), for
// the generated pages (report.cpp, study_report.cpp).
#include <string>
#include <string_view>

namespace anchors::detail {

inline std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace anchors::detail
