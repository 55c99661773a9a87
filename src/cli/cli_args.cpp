#include "cli_args.h"

#include <cstdlib>
#include <stdexcept>

#include <fmt/format.h>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"

namespace anchors::cli {

Args::Args(const std::vector<std::string>& args, const std::set<std::string>& flags,
           const std::set<std::string>& options) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const bool long_option = a.size() > 2 && a.compare(0, 2, "--") == 0;
    const bool short_option = a.size() == 2 && a[0] == '-' && a[1] != '-';  // "-o"
    if (long_option || short_option) {
      std::string name = a.substr(long_option ? 2 : 1), value;
      bool has_value = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
      if (flags.count(name)) {
        if (has_value) throw UsageError(fmt::format("--{} takes no value", name));
        flags_.insert(name);
      } else if (options.count(name)) {
        if (!has_value) {
          if (i + 1 >= args.size()) throw UsageError(fmt::format("--{} needs a value", name));
          value = args[++i];
        }
        options_[name] = value;
      } else {
        throw UsageError(fmt::format("unknown option {}", a));
      }
    } else {
      positionals_.push_back(a);  // "-" (stdin) is a positional
    }
  }
}

std::optional<std::string> Args::option(const std::string& name) const {
  auto it = options_.find(name);
  if (it == options_.end()) return std::nullopt;
  return it->second;
}

std::string Args::option_or(const std::string& name, const std::string& fallback) const {
  return option(name).value_or(fallback);
}

double Args::number_or(const std::string& name, double fallback) const {
  auto v = option(name);
  if (!v) return fallback;
  char* end = nullptr;
  const double d = std::strtod(v->c_str(), &end);
  if (v->empty() || *end != '\0') throw UsageError(fmt::format("--{} expects a number, got \"{}\"", name, *v));
  return d;
}

long Args::integer_or(const std::string& name, long fallback) const {
  auto v = option(name);
  if (!v) return fallback;
  char* end = nullptr;
  const long n = std::strtol(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0') throw UsageError(fmt::format("--{} expects an integer, got \"{}\"", name, *v));
  return n;
}

void Args::expect_positionals(std::size_t n, const std::string& what) const {
  if (positionals_.size() != n)
    throw UsageError(fmt::format("expected {}, got {} argument(s)", what, positionals_.size()));
}

Value parse_option_value(const std::string& name, const std::string& text, const Value& default_value) {
  const auto fail = [&](const char* kind) {
    return UsageError(fmt::format("--{} expects {}, got \"{}\"", name, kind, text));
  };
  if (std::holds_alternative<bool>(default_value)) {
    if (text == "true" || text == "1" || text == "yes") return true;
    if (text == "false" || text == "0" || text == "no") return false;
    throw fail("true or false");
  }
  if (std::holds_alternative<std::int64_t>(default_value)) {
    try {
      std::size_t used = 0;
      const long long v = std::stoll(text, &used);
      if (used != text.size()) throw fail("an integer");
      return static_cast<std::int64_t>(v);
    } catch (const std::logic_error&) {
      throw fail("an integer");
    }
  }
  if (std::holds_alternative<IntList>(default_value)) {
    try {
      return parse_int_list(text, "--" + name);
    } catch (const Error&) {
      throw fail("a list of integers like 0,3,5 (pairs as 2:3,5:0)");
    }
  }
  if (std::holds_alternative<double>(default_value)) {
    try {
      std::size_t used = 0;
      const double v = std::stod(text, &used);
      if (used != text.size()) throw fail("a number");
      return v;
    } catch (const std::logic_error&) {
      throw fail("a number");
    }
  }
  return text;
}


std::string read_input(const std::string& path, std::istream& in) {
  if (path == "-") return read_stream(in, "<stdin>", kDataFileLimit);
  return read_text_file(path, kDataFileLimit);
}

}  // namespace anchors::cli
