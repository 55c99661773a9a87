#pragma once
// Minimal argument parsing for the subcommands: positionals, --flag, --key VALUE
// and --key=VALUE. Unknown options are usage errors, never silently ignored.
#include <iosfwd>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "anchors/core/value.h"

namespace anchors::cli {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Args {
 public:
  // `flags` take no value; `options` take one.
  Args(const std::vector<std::string>& args, const std::set<std::string>& flags,
       const std::set<std::string>& options);

  const std::vector<std::string>& positionals() const { return positionals_; }
  bool flag(const std::string& name) const { return flags_.count(name) > 0; }
  std::optional<std::string> option(const std::string& name) const;
  std::string option_or(const std::string& name, const std::string& fallback) const;
  double number_or(const std::string& name, double fallback) const;
  long integer_or(const std::string& name, long fallback) const;
  // Exactly n positionals, else UsageError naming what is expected.
  void expect_positionals(std::size_t n, const std::string& what) const;

 private:
  std::vector<std::string> positionals_;
  std::set<std::string> flags_;
  std::map<std::string, std::string> options_;
};

// A method option given on the command line, read as the type of its default:
// "--top_k 5" (integer), "--exclude_layer0 false" (bool: true/false, 1/0,
// yes/no), "--temperature 0.7" (number), "--layers 4,5,6" / "--heads 2:3,5:0"
// (integer list), anything else as a string. UsageError naming --name otherwise.
Value parse_option_value(const std::string& name, const std::string& text, const Value& default_value);

// The text of an input argument: the file at `path`, or standard input for
// "-", each bounded by the limit for data files (anchors/core/file_io.h).
// anchors::Error naming the file or "<stdin>".
std::string read_input(const std::string& path, std::istream& in);

}  // namespace anchors::cli
