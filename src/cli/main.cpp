#include <iostream>
#include <string>
#include <vector>

#include "anchors/cli.h"
#ifdef ANCHORS_CLI_WITH_MODEL
#include "model_commands.h"
#endif

int main(int argc, char** argv) {
#ifdef ANCHORS_CLI_WITH_MODEL
  anchors::cli::register_model_commands();
#endif
  std::vector<std::string> args(argv + 1, argv + argc);
  return anchors::run_cli(args, std::cin, std::cout, std::cerr);
}
