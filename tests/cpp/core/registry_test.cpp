#include "anchors/methods/registry.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "anchors/core/error.h"
#include "expect_error.h"

namespace anchors {
namespace {

// A user-defined method: scores each sentence by its length.
class LengthMethod : public AttributionMethod {
 public:
  std::string name() const override { return "test_length"; }
  std::string description() const override { return "sentence length in bytes"; }
  ValueMap default_options() const override { return {{"scale", 1.0}, {"tag", std::string("x")}}; }
  std::map<std::string, std::string> option_docs() const override { return {{"scale", "multiplies every length"}}; }
  std::vector<std::string> headline_scores() const override { return {"length"}; }
  Attribution run(const Trace& trace, const Context& context) const override {
    const ValueMap o = resolve_options(*this, context.options);
    Attribution a;
    a.method = name();
    a.options = o;
    for (const auto& s : trace.sentences)
      a.scores["length"].push_back(std::get<double>(o.at("scale")) * static_cast<double>(s.text.size()));
    return a;
  }
};

TEST(Registry, BuiltinsAreListedSortedWithDescriptions) {
  const auto all = methods();
  ASSERT_FALSE(all.empty());
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end(),
                             [](const MethodInfo& a, const MethodInfo& b) { return a.name < b.name; }));
  for (const auto& m : all) EXPECT_FALSE(m.description.empty()) << m.name;
  EXPECT_TRUE(std::any_of(all.begin(), all.end(), [](const MethodInfo& m) { return m.name == "resampling"; }));
}

TEST(Registry, UserMethodsCanBeAddedAndRun) {
  register_method("test_length", [] { return std::make_unique<LengthMethod>(); });
  auto method = make_method("test_length");
  Trace t;
  t.text = "ab cd";
  t.sentences = {Sentence{0, "ab", {0, 2}, {}, {}}, Sentence{1, "cd", {3, 5}, {}, {}}};
  Context ctx;
  ctx.options = {{"scale", std::int64_t{2}}};  // an integer is accepted for a number option
  const Attribution a = method->run(t, ctx);
  EXPECT_EQ(a.score("length"), (std::vector<double>{4.0, 4.0}));
  EXPECT_EQ(std::get<std::string>(a.options.at("tag")), "x");
}

TEST(Registry, UnknownNamesAndOptionsAreErrors) {
  try {
    make_method("no_such_method");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("resampling"), std::string::npos) << e.what();
  }
  LengthMethod m;
  EXPECT_ANCHORS_ERROR(resolve_options(m, {{"nope", 1.0}}), "test_length", "unknown option \"nope\"",
                       "options: scale, tag");
  // The error says what the option expects and what it is for.
  EXPECT_ANCHORS_ERROR(resolve_options(m, {{"scale", std::string("big")}}), "option scale expects a number like 1",
                       "got big", "(multiplies every length)");
  EXPECT_ANCHORS_ERROR(resolve_options(m, {{"tag", 3.0}}), "option tag expects a string like x");
  // An integer is a number; the resolved value is a double.
  EXPECT_EQ(std::get<double>(resolve_options(m, {{"scale", std::int64_t{3}}}).at("scale")), 3.0);
  EXPECT_THROW(register_method("", [] { return std::make_unique<LengthMethod>(); }), Error);
  EXPECT_THROW(register_method("x", nullptr), Error);
}

Attribution with_series(const std::string& method, std::vector<std::string> names) {
  Attribution a;
  a.method = method;
  for (const auto& n : names) a.scores[n] = {1.0, 2.0};
  return a;
}

// One rule picks the series `anchors show`, `anchors report`, the white-box
// commands and the notebook display open with.
TEST(Registry, ChooseScoreTakesTheAskedThenTheHeadlineThenTheFirstSeries) {
  register_method("test_length", [] { return std::make_unique<LengthMethod>(); });
  AnalysisResult result;
  EXPECT_EQ(choose_score(result), std::make_pair(std::string(), std::string()));  // nothing to show
  EXPECT_THROW(choose_score(result, "resampling"), Error);
  result.attributions = {with_series("unregistered", {"zeta", "alpha"}),
                         with_series("resampling", {"accuracy", "resampling_importance_kl"}),
                         with_series("test_length", {"length", "aaa"})};
  // The first attribution whose method names a headline it has: resampling's
  // second choice (its first, counterfactual_importance_kl, is absent).
  EXPECT_EQ(choose_score(result), std::make_pair(std::string("resampling"), std::string("resampling_importance_kl")));
  EXPECT_EQ(choose_score(result, "test_length"), std::make_pair(std::string("test_length"), std::string("length")));
  // A method without a (known) headline: its first series by name.
  EXPECT_EQ(choose_score(result, "unregistered"), std::make_pair(std::string("unregistered"), std::string("alpha")));
  EXPECT_EQ(choose_score(result, "", "aaa"), std::make_pair(std::string("test_length"), std::string("aaa")));
  try {
    choose_score(result, "resampling", "aaa");
    FAIL();
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("test_length.aaa"), std::string::npos) << message;  // lists what there is
    EXPECT_NE(message.find("\"resampling\""), std::string::npos) << message;
  }
  EXPECT_EQ(method_info("test_length").headline_scores, std::vector<std::string>{"length"});
  EXPECT_THROW(method_info("no_such_method"), Error);
}

}  // namespace
}  // namespace anchors
