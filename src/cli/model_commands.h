#pragma once
// Internal: subcommands that need the model runtime (LibTorch). The executable
// and the Python module register them before running the CLI.

#include "anchors/cli.h"

namespace anchors::cli {
void register_model_commands();
// register_cli_command for a command that runs the model: a failed allocation
// (model::allocation_failure: torch's CUDA or CPU allocator, std::bad_alloc)
// becomes anchors::Error ("anchors: error: out of memory: ..."), the user's to
// act on, not an internal error.
void register_model_command(CliCommand command);
}  // namespace anchors::cli
