#pragma once
// The `anchors` command line. One implementation serves the C++ executable and
// the Python console script (thought_anchors.cli calls into it), so both accept
// exactly the same commands and print exactly the same output.
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace anchors {

// Runs `anchors <args...>`; returns the process exit code (0 ok, 1 error, 2 usage).
// anchors::Error raised by a command is printed to `err` as "anchors: error: <message>".
int run_cli(const std::vector<std::string>& args, std::istream& in, std::ostream& out, std::ostream& err);

// A subcommand: receives its arguments (after the command name).
struct CliCommand {
  std::string name;
  std::string summary;  // one line for `anchors help`
  std::string usage;    // full usage text for `anchors help NAME`
  std::function<int(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                     std::ostream& err)>
      run;
};

// Adds (or replaces) a subcommand; libraries built on the core (the model
// runtime) register theirs before calling run_cli.
void register_cli_command(CliCommand command);

}  // namespace anchors
