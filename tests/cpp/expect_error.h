#pragma once
// EXPECT_ANCHORS_ERROR(statement, needles...): runs `statement`, expecting an
// anchors::Error whose message contains every one of the needles (for errors
// about a file, its path among them). Shared by both test suites.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "anchors/core/error.h"

#define EXPECT_ANCHORS_ERROR(statement, ...)                                                    \
  do {                                                                                          \
    try {                                                                                       \
      statement;                                                                                \
      ADD_FAILURE() << "expected anchors::Error from " #statement;                              \
    } catch (const anchors::Error& e) {                                                         \
      const std::string message = e.what();                                                    \
      for (const std::string& needle : std::vector<std::string>{__VA_ARGS__})                   \
        EXPECT_NE(message.find(needle), std::string::npos)                                      \
            << "message \"" << message << "\" does not mention \"" << needle << "\"";          \
    }                                                                                           \
  } while (0)
