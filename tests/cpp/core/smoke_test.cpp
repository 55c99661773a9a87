#include <gtest/gtest.h>

#include "anchors/core/error.h"

TEST(Error, CarriesMessage) {
  try {
    throw anchors::Error("file.json: bad");
  } catch (const anchors::Error& e) {
    EXPECT_STREQ(e.what(), "file.json: bad");
  }
}
