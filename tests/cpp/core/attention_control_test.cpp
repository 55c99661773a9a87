// AttentionControl as data: the builders, first_query (what decides how much
// of a generation's prefix cache stays valid), validation, and the JSON that
// `anchors serve` reads, round trip and refusals.
#include "anchors/core/attention_control.h"

#include <gtest/gtest.h>

#include <cmath>

#include "anchors/core/error.h"

namespace anchors {
namespace {

AttentionControl sample_control() {
  AttentionControl control;
  control.ablate_heads(3, {1, 5}, /*from=*/12);
  control.suppress_keys({40, 55}, /*from=*/60, /*layers=*/{0, 2});
  control.boost_keys({4, 9}, 2.25, /*from=*/0, {}, /*heads=*/{7});
  control.regions.push_back(AttentionRegion::suppress(1, {3, 8}, {0, 2}));
  return control;
}

TEST(AttentionControlData, BuildersApplyToEveryLaneFromAPosition) {
  const AttentionControl control = sample_control();
  ASSERT_EQ(control.regions.size(), 4u);
  const AttentionRegion& ablate = control.regions[0];
  EXPECT_EQ(ablate.effect, RegionEffect::kAblate);
  EXPECT_EQ(ablate.lane, kEveryLane);
  EXPECT_EQ(ablate.queries, (TokenSpan{12, kToTheEnd}));
  EXPECT_EQ(ablate.layers, (std::vector<std::int64_t>{3}));
  EXPECT_EQ(ablate.heads, (std::vector<std::int64_t>{1, 5}));
  EXPECT_TRUE(control.regions[1].applies_to_lane(7));
  EXPECT_FALSE(control.regions[3].applies_to_lane(0));
  EXPECT_FALSE(control.every_lane());
  EXPECT_TRUE(control.changes_scores(0));
  EXPECT_TRUE(control.changes_scores(3));  // the boost has no layer list
  AttentionControl only_ablation;
  only_ablation.ablate_heads(3, {0});
  EXPECT_TRUE(only_ablation.affects_layer(3));
  EXPECT_FALSE(only_ablation.changes_scores(3));
  EXPECT_FALSE(only_ablation.affects_layer(2));
}

TEST(AttentionControlData, FirstQueryIgnoresRegionsThatChangeNothing) {
  AttentionControl control;
  EXPECT_EQ(control.first_query(), kToTheEnd);
  control.suppress_keys({5, 5}, /*from=*/0);  // no keys: no effect
  control.regions.push_back(AttentionRegion::ablate(kEveryLane, {2, 2}, {}, {}));  // no queries
  EXPECT_EQ(control.first_query(), kToTheEnd);
  control.ablate_heads(0, {1}, /*from=*/30);
  control.boost_keys({0, 4}, 1.0, /*from=*/17);
  EXPECT_EQ(control.first_query(), 17);
}

TEST(AttentionControlData, ValidateNamesTheRegionAndTheProblem) {
  AttentionControl control = sample_control();
  EXPECT_NO_THROW(control.validate(2, 8, 4));
  EXPECT_NO_THROW(control.validate(2));  // heads and layers unknown: not checked
  try {
    control.validate(2, 6, 4);  // head 7 of the boost
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("region 2: head 7 outside [0, 6)"), std::string::npos) << e.what();
  }
  EXPECT_THROW(control.validate(1, 8, 4), Error);  // lane 1 of 1
  EXPECT_THROW(control.validate(2, 8, 3), Error);  // layer 3 of 3
  control.regions[0].heads = {-1};
  EXPECT_THROW(control.validate(2), Error);
  control = sample_control();
  control.regions[2].beta = std::nan("");
  EXPECT_THROW(control.validate(2), Error);
  control = sample_control();
  control.regions[0].keys = {9, 2};  // ablation ignores keys
  EXPECT_NO_THROW(control.validate(2, 8, 4));
  control.regions[1].keys = {9, 2};
  EXPECT_THROW(control.validate(2, 8, 4), Error);
}

TEST(AttentionControlData, JsonRoundTrip) {
  const AttentionControl control = sample_control();
  const std::string json = attention_control_json(control);
  EXPECT_NE(json.find("\"queries\":[12,null]"), std::string::npos) << json;
  EXPECT_EQ(parse_attention_control(json, "request"), control);
  EXPECT_TRUE(parse_attention_control("{}", "request").empty());
  EXPECT_TRUE(parse_attention_control(attention_control_json({}), "request").empty());
}

TEST(AttentionControlData, JsonDefaultsToEveryLaneAndEveryQuery) {
  const AttentionControl control =
      parse_attention_control(R"({"regions": [{"effect": "ablate", "heads": [2], "layers": [1]}]})", "body");
  ASSERT_EQ(control.regions.size(), 1u);
  EXPECT_EQ(control.regions[0].lane, kEveryLane);
  EXPECT_EQ(control.regions[0].queries, (TokenSpan{0, kToTheEnd}));
}

TEST(AttentionControlData, JsonRefusalsNameTheField) {
  const auto message = [](const std::string& json) -> std::string {
    try {
      parse_attention_control(json, "request body attention_control");
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  const auto expect_in = [&](const std::string& json, const std::string& part) {
    const std::string got = message(json);
    EXPECT_NE(got.find(part), std::string::npos) << json << " -> " << got;
    EXPECT_EQ(got.rfind("request body attention_control", 0), 0u) << got;
  };
  expect_in("[1]", "must be a JSON object");
  expect_in("{\"region\": []}", "unknown field \"region\"");
  expect_in("{\"regions\": {}}", "\"regions\" must be a list");
  expect_in(R"({"regions": [{"heads": [1]}]})", "regions[0]: missing \"effect\"");
  expect_in(R"({"regions": [{"effect": "mute"}]})", "regions[0].effect must be");
  expect_in(R"({"regions": [{"effect": "suppress"}]})", "needs \"keys\"");
  expect_in(R"({"regions": [{"effect": "boost", "keys": [0, 2]}]})", "needs \"beta\"");
  expect_in(R"({"regions": [{"effect": "ablate", "keys": [0, 2]}]})", "takes no \"keys\"");
  expect_in(R"({"regions": [{"effect": "suppress", "keys": [0, 2], "beta": 1}]})", "only a boost");
  expect_in(R"({"regions": [{"effect": "ablate", "heads": [1.5]}]})", "regions[0].heads[0] must be an integer");
  expect_in(R"({"regions": [{"effect": "ablate", "queries": [3]}]})", "regions[0].queries must be [begin, end]");
  expect_in(R"({"regions": [{"effect": "ablate", "queries": [5, 2]}]})", "bad query span [5, 2)");
  expect_in(R"({"regions": [{"effect": "ablate", "lane": -2}]})", "regions[0].lane must be >= -1");
  expect_in(R"({"regions": [{"effect": "ablate", "layers": [-1]}]})", "negative layer -1");
  expect_in(R"({"regions": [{"effect": "ablate", "colour": 1}]})", "unknown field \"colour\"");
  expect_in("{", "malformed JSON");
}

}  // namespace
}  // namespace anchors
