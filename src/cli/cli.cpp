#include "anchors/cli.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <iterator>
#include <map>
#include <mutex>
#include <new>
#include <numeric>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/attribution.h"
#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/segmentation.h"
#include "anchors/core/utf8.h"
#include "anchors/methods/registry.h"
#include "anchors/version.h"
#include "cli_args.h"
#include "cli_commands.h"

namespace anchors {
namespace {

std::map<std::string, CliCommand>& command_table() {
  static std::map<std::string, CliCommand> table;
  return table;
}
std::mutex& command_mutex() {
  static std::mutex m;
  return m;
}

void register_builtin_commands() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (auto& c : cli::builtin_commands()) command_table()[c.name] = std::move(c);
  });
}

void print_help(std::ostream& out) {
  out << "usage: anchors <command> [options]\n\n"
         "Which sentences of a chain of thought matter (Thought Anchors).\n\ncommands:\n";
  for (const auto& [name, c] : command_table()) out << fmt::format("  {:<18} {}\n", name, c.summary);
  out << "\nRun `anchors help COMMAND` for a command's options.\n";
}

}  // namespace

void register_cli_command(CliCommand command) {
  register_builtin_commands();
  std::lock_guard<std::mutex> lock(command_mutex());
  command_table()[command.name] = std::move(command);
}

int run_cli(const std::vector<std::string>& args, std::istream& in, std::ostream& out, std::ostream& err) {
  register_builtin_commands();
  if (args.empty() || args[0] == "-h" || args[0] == "--help") {
    print_help(args.empty() ? err : out);
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    out << "anchors " << ANCHORS_VERSION << "\n";
    return 0;
  }
  if (args[0] == "help") {
    if (args.size() > 1) {
      auto it = command_table().find(args[1]);
      if (it == command_table().end()) {
        err << "anchors: unknown command \"" << args[1] << "\"\n";
        return 2;
      }
      out << it->second.usage;
      return 0;
    }
    print_help(out);
    return 0;
  }
  CliCommand command;
  {
    std::lock_guard<std::mutex> lock(command_mutex());
    auto it = command_table().find(args[0]);
    if (it == command_table().end()) {
      err << "anchors: unknown command \"" << args[0] << "\"\n\n";
      print_help(err);
      return 2;
    }
    command = it->second;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    for (const auto& a : rest) {
      if (a == "-h" || a == "--help") {
        out << command.usage;
        return 0;
      }
    }
    return command.run(rest, in, out, err);
  } catch (const cli::UsageError& e) {
    err << "anchors " << command.name << ": " << e.what() << "\n\n" << command.usage;
    return 2;
  } catch (const Error& e) {
    err << "anchors: error: " << e.what() << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    err << "anchors: error: out of memory (an allocation failed); ask for less work at once\n";
    return 1;
  } catch (const std::exception& e) {
    err << "anchors: internal error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace anchors
