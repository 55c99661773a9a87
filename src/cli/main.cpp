#include <iostream>
#include <string>
#include <vector>

#include "anchors/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return anchors::run_cli(args, std::cin, std::cout, std::cerr);
}
