#include "anchors/core/attribution.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/segmentation.h"
#include "test_paths.h"

namespace anchors {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// A result exercising every field: non-ASCII text (code point vs byte offsets),
// token spans, tags, NaN scores, matrices, every Value alternative.
AnalysisResult sample_result() {
  AnalysisResult r;
  r.trace.prompt = "Problem: café ×2?\n<think>\n";
  r.trace.text = "Let me think about café prices. Each costs 3 € so 6 €!\n\nThe answer is \\boxed{6}.";
  r.trace.answer = "6";
  r.trace.metadata = {{"model", "tiny"}, {"problem_id", "problem_7"}};
  r.trace.sentences = split_sentences(r.trace.text);
  r.trace.sentences[0].tags = {"plan_generation"};
  r.trace.sentences[1].tokens = TokenSpan{10, 17};
  Attribution a;
  a.method = "resampling";
  a.scores["accuracy"] = {0.5, kNaN, 1.0};
  a.scores["kl"] = {0.1, 1e-300, -2.5e10};
  Matrix m(3, 3);
  m(0, 1) = 0.25;
  m(0, 2) = -0.125;
  m(1, 2) = 1.0 / 3.0;
  a.matrices["sentence_to_sentence"] = m;
  a.options = {{"threshold", 0.8}, {"n", std::int64_t{100}}, {"compat", true}, {"name", std::string("x")},
               {"none", std::monostate{}}, {"integral_double", 2.0}, {"layers", IntList{0, 3, -57}},
               {"heads", IntList{}}};
  a.metadata = {{"elapsed", 1.5}};
  r.attributions.push_back(a);
  return r;
}

TEST(ResultJson, RoundTripIsLossless) {
  const AnalysisResult r = sample_result();
  ASSERT_EQ(r.trace.sentences.size(), 3u);
  const AnalysisResult back = result_from_json(result_to_json(r));
  EXPECT_EQ(back, r);
  // Value alternatives survive (an integral double stays a double, NaN stays NaN).
  const auto& opts = back.attributions[0].options;
  EXPECT_TRUE(std::holds_alternative<double>(opts.at("integral_double")));
  EXPECT_TRUE(std::holds_alternative<std::int64_t>(opts.at("n")));
  EXPECT_TRUE(std::holds_alternative<std::monostate>(opts.at("none")));
  EXPECT_EQ(std::get<IntList>(opts.at("layers")), (IntList{0, 3, -57}));
  EXPECT_EQ(std::get<IntList>(opts.at("heads")), IntList{});  // an empty list stays a list
  EXPECT_NE(result_to_json(r).find("[\n"), std::string::npos);  // written as a JSON array
  // A list of anything but integers is not a Value.
  std::string text = result_to_json(r);
  const auto at = text.find("-57");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 3, "\"x\"");
  EXPECT_THROW(result_from_json(text), Error);
}

TEST(Value, IntegerListsParseAndPrint) {
  EXPECT_EQ(parse_int_list("0,3,5", "layers"), (IntList{0, 3, 5}));
  EXPECT_EQ(parse_int_list("2:3, 5:0", "heads"), (IntList{2, 3, 5, 0}));
  EXPECT_EQ(parse_int_list("[1, -2]", "x"), (IntList{1, -2}));
  EXPECT_EQ(parse_int_list("", "x"), IntList{});
  EXPECT_EQ(parse_int_list("[]", "x"), IntList{});
  EXPECT_THROW(parse_int_list("1,x", "layers"), Error);
  EXPECT_THROW(parse_int_list("1.5", "layers"), Error);
  EXPECT_EQ(to_string(Value{IntList{0, 3}}), "[0, 3]");
  EXPECT_EQ(to_string(Value{IntList{}}), "[]");
}

TEST(ResultJson, NonFiniteOptionValuesSurvive) {
  AnalysisResult r = sample_result();
  r.attributions[0].options = {{"nan", kNaN}, {"inf", std::numeric_limits<double>::infinity()}};
  const AnalysisResult back = result_from_json(result_to_json(r));
  EXPECT_EQ(back, r);  // NaN equals NaN in result equality
  const auto& opts = back.attributions[0].options;
  EXPECT_TRUE(std::isnan(std::get<double>(opts.at("nan"))));
  EXPECT_EQ(std::get<double>(opts.at("inf")), std::numeric_limits<double>::infinity());
}

TEST(ResultJson, SpansAreCodePointOffsets) {
  const AnalysisResult r = sample_result();
  const std::string json = result_to_json(r, -1);
  // "Let me think about café prices." is 31 code points but 32 bytes.
  EXPECT_NE(json.find("\"char_end\":31"), std::string::npos) << json.substr(0, 400);
}

TEST(ResultJson, SaveAndLoadFile) {
  testing::ScratchDir dir("result");
  const AnalysisResult r = sample_result();
  save_result(r, dir.file("sub/dir/result.json"));
  EXPECT_EQ(load_result(dir.file("sub/dir/result.json")), r);
}

TEST(ResultJson, RejectsBadDocuments) {
  const std::string good = result_to_json(sample_result());
  auto expect_error = [](const std::string& text, const std::string& needle) {
    try {
      result_from_json(text, "doc.json");
      FAIL() << "no error for: " << text.substr(0, 80);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("doc.json"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("", "malformed JSON");
  expect_error("\x89PNG\r\n\x1a\n\x00\x01", "malformed JSON");
  expect_error("[1,2,3]", "not a thought-anchors result");
  expect_error(R"({"format":"thought-anchors/result","version":99})", "unsupported result version");
  expect_error(R"({"format":"thought-anchors/result","version":1})", "missing field \"trace\"");

  auto mutate = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const auto pos = s.find(from);
    EXPECT_NE(pos, std::string::npos) << from;
    return s.replace(pos, from.size(), to);
  };
  expect_error(mutate("\"char_end\": 31", "\"char_end\": 100000"), "outside the trace text");
  expect_error(mutate("\"char_start\": 0", "\"char_start\": -1"), "non-negative integer");
  expect_error(mutate("\"prompt\":", "\"prompt\": 5, \"x\":"), "must be a string");
  expect_error(mutate("0.5,", "\"high\","), "expected a number");
  // A score series whose length differs from the sentence count.
  expect_error(mutate("0.5,", ""), "has 2 values for 3 sentences");
}

// Found by fuzzing (fuzz/corpus/result_json/number_overflow.json): a number
// beyond a double's range is an out_of_range that nlohmann throws while
// parsing; it escaped as that instead of an anchors::Error.
TEST(ResultJson, NumberBeyondADoubleIsMalformedJson) {
  std::string text = result_to_json(sample_result());
  text.replace(text.find("0.5,"), 4, "-1e309,");
  try {
    result_from_json(text, "doc.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("doc.json: malformed JSON"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("number overflow"), std::string::npos) << e.what();
  }
}

// Found by fuzzing (fuzz/corpus/result_json/format_not_a_string.json):
// {"format": 1, ...} escaped as nlohmann's type_error from json::value().
TEST(ResultJson, FormatThatIsNotAStringIsNotAResult) {
  for (const std::string format : {"1", "null", "[\"thought-anchors/result\"]", "{}"}) {
    SCOPED_TRACE(format);
    try {
      result_from_json(R"({"format": )" + format + R"(, "version": 1})", "doc.json");
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("doc.json: not a thought-anchors result"), std::string::npos) << e.what();
    }
  }
}

// Found while writing the result_json fuzz target (its input:
// fuzz/corpus/result_json/matrix_claims_huge_size.json): a matrix was
// allocated at the size its "rows" and "cols" claim before its rows were
// checked, so one short row asking for 2^61 columns was a
// std::length_error (and 10^10 columns an 80 GB allocation).
TEST(ResultJson, MatrixSizeIsCheckedAgainstItsDataBeforeAllocating) {
  const std::string doc =
      R"({"format": "thought-anchors/result", "version": 1,
          "trace": {"prompt": "", "text": "", "answer": "", "sentences": []},
          "attributions": [{"method": "m", "scores": {},
                            "matrices": {"big": {"rows": 1, "cols": 2305843009213693952, "data": [[]]}}}]})";
  try {
    result_from_json(doc, "doc.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("matrices.big: row 0 must have 2305843009213693952 values"),
              std::string::npos)
        << e.what();
  }
}

TEST(ResultJson, RejectsOverlappingSentences) {
  AnalysisResult r = sample_result();
  r.trace.sentences[1].chars.begin = r.trace.sentences[0].chars.begin;
  EXPECT_THROW(result_to_json(r), Error);
}

TEST(Attribution, EqualityTreatsNaNAsMissingValue) {
  Attribution a, b;
  a.method = b.method = "m";
  a.scores["x"] = {1.0, kNaN};
  b.scores["x"] = {1.0, kNaN};
  EXPECT_EQ(a, b);
  b.scores["x"][1] = 0.0;
  EXPECT_NE(a, b);
  b.scores["x"] = {1.0};
  EXPECT_NE(a, b);
}

TEST(Attribution, LookupsNameWhatIsAvailable) {
  const AnalysisResult r = sample_result();
  EXPECT_EQ(r.attribution("resampling").score("accuracy")[0], 0.5);
  try {
    r.attribution("resampling").score("missing");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("accuracy, kl"), std::string::npos) << e.what();
  }
  EXPECT_THROW(r.attribution("nope"), Error);
  EXPECT_THROW(r.attribution("resampling").matrix("nope"), Error);
}

TEST(Attribution, SetReplacesSameMethod) {
  AnalysisResult r = sample_result();
  Attribution b;
  b.method = "resampling";
  b.scores["x"] = {1, 2, 3};
  r.set_attribution(b);
  ASSERT_EQ(r.attributions.size(), 1u);
  EXPECT_EQ(r.attributions[0], b);
  b.method = "other";
  r.set_attribution(b);
  EXPECT_EQ(r.attributions.size(), 2u);
}

TEST(FileIo, AtomicWriteReplacesAndLeavesNoTemporaries) {
  testing::ScratchDir dir("io");
  const std::string path = dir.file("out.txt");
  write_file_atomic(path, "first");
  write_file_atomic(path, "second version");
  EXPECT_EQ(read_text_file(path, kDataFileLimit), "second version");
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) (void)e, ++files;
  EXPECT_EQ(files, 1u);
}

TEST(FileIo, ErrorsNameThePath) {
  testing::ScratchDir dir("io");
  try {
    read_text_file(dir.file("missing.json"), kDataFileLimit);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.json"), std::string::npos);
  }
  EXPECT_THROW(read_text_file(dir.path(), kDataFileLimit), Error);  // a directory
  // Writing below a regular file cannot create the directory.
  write_file_atomic(dir.file("plain"), "x");
  EXPECT_THROW(write_file_atomic(dir.file("plain/child.json"), "y"), Error);
}

}  // namespace
}  // namespace anchors
