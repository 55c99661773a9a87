#pragma once
// Internal: the subcommands the core ships with.
#include <vector>

#include "anchors/cli.h"

namespace anchors::cli {
std::vector<CliCommand> builtin_commands();
}
