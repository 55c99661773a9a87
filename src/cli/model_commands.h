#pragma once
// Internal: subcommands that need the model runtime (LibTorch). The executable
// and the Python module register them before running the CLI.

namespace anchors::cli {
void register_model_commands();
}
