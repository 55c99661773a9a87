// The reference-schema files: round trips of the authors' real files, the
// summary recomputed from their step_importance.json, a slow reference for the
// summary on synthetic matrices, write_reference_outputs end to end, bad input.
#include "anchors/core/reference_schema.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/reference_import.h"
#include "anchors/core/report.h"
#include "anchors/core/segmentation.h"
#include "anchors/methods/resampling.h"
#include "expect_error.h"
#include "scenario_folder.h"
#include "test_paths.h"

namespace anchors {
namespace {
using json = nlohmann::json;
namespace fs = std::filesystem;

std::optional<std::int64_t> index_of(const std::string& dir) {
  const std::string name = fs::path(dir).filename().string();
  return std::stoll(name.substr(name.find('_') + 1));
}

// ---------------------------------------------------------------------------
// The authors' files
// ---------------------------------------------------------------------------

TEST(ReferenceSchema, AuthorsFilesRoundTrip) {
  std::size_t files = 0;
  for (const auto& dir : testing::reference_dirs()) {
    SCOPED_TRACE(dir);
    const std::string labels_path = dir + "/chunks_labeled.json";
    if (file_exists(labels_path)) {
      const auto chunks = read_chunks_labeled(labels_path);
      ASSERT_FALSE(chunks.empty());
      const std::string written = chunks_labeled_to_json(chunks);
      EXPECT_EQ(parse_chunks_labeled(written), chunks);
      // Same bytes as the authors' Python json.dump(indent=2).
      EXPECT_EQ(written, read_text_file(labels_path, kDataFileLimit));
      ++files;
    }
    for (const char* name : {"/step_importance.json", "/step_importance_supp.json"}) {
      const std::string path = dir + name;
      if (!file_exists(path)) continue;
      const StepImportance rows = read_step_importance(path);
      ASSERT_FALSE(rows.empty());
      EXPECT_EQ(parse_step_importance(step_importance_to_json(rows)), rows);
      if (std::string(name) == "/step_importance.json") {
        EXPECT_EQ(step_importance_to_json(rows), read_text_file(path, kDataFileLimit));
      }
      ++files;
    }
    const std::string summary_path = dir + "/summary.json";
    if (file_exists(summary_path)) {
      const StepImportanceSummary summary = read_summary(summary_path);
      EXPECT_EQ(summary.problem_idx, index_of(dir));
      EXPECT_EQ(summary.top_influential_steps.size(), 5u);
      const std::string written = summary_to_json(summary);
      EXPECT_EQ(parse_summary(written), summary);
      // Old step_text copies keep their own key order and extra keys.
      EXPECT_EQ(written, read_text_file(summary_path, kDataFileLimit));
      ++files;
    }
  }
  EXPECT_GE(files, 9u);  // 4 chunks_labeled + 4 summaries + problem_330's step_importance
}

TEST(ReferenceSchema, OldStepTextsKeepTheirExtraKeys) {
  const std::string path = testing::reference_dirs()[3] + "/summary.json";  // problem_3448
  ASSERT_TRUE(file_exists(path)) << path;  // bundled with the tests: missing is a failure
  const StepImportanceSummary s = read_summary(path);
  const LabeledChunk& c = s.top_influential_steps.front().step_text;
  EXPECT_FALSE(c.resampling_importance_accuracy.has_value());  // not in the old copy
  ASSERT_TRUE(c.counterfactual_importance_kl.has_value());
  const auto extra = std::find_if(c.extra.begin(), c.extra.end(),
                                  [](const auto& kv) { return kv.first == "absolute_importance_kl"; });
  ASSERT_NE(extra, c.extra.end());
  EXPECT_EQ(c.key_order.front(), "chunk");
}

TEST(ReferenceSchema, SummaryOfAuthorsStepImportanceReproducesTheirSummary) {
  std::size_t checked = 0;
  for (const auto& dir : testing::reference_dirs()) {
    const std::string step_path = dir + "/step_importance.json";
    if (!file_exists(step_path) || !file_exists(dir + "/summary.json")) continue;
    SCOPED_TRACE(dir);
    const StepImportance rows = read_step_importance(step_path);
    const auto labels = read_chunks_labeled(dir + "/chunks_labeled.json");
    const StepImportanceSummary expected = read_summary(dir + "/summary.json");
    const StepImportanceSummary got = summarize_step_importance(rows, labels, index_of(dir));
    EXPECT_EQ(got.problem_idx, expected.problem_idx);
    EXPECT_EQ(got.num_chunks, expected.num_chunks);
    // Bit-exact: the sums follow numpy's pairwise order.
    EXPECT_EQ(got.avg_importance, expected.avg_importance);
    EXPECT_EQ(got.max_importance, expected.max_importance);
    EXPECT_EQ(got.min_importance, expected.min_importance);
    const auto compare = [&](const std::vector<InfluentialStep>& a, const std::vector<InfluentialStep>& b) {
      ASSERT_EQ(a.size(), b.size());
      for (std::size_t k = 0; k < a.size(); ++k) {
        EXPECT_EQ(a[k].step_idx, b[k].step_idx);
        EXPECT_EQ(a[k].avg_importance, b[k].avg_importance);
        // step_text is the step's current chunks_labeled entry.
        EXPECT_EQ(a[k].step_text, labels[a[k].step_idx]);
      }
    };
    compare(got.top_influential_steps, expected.top_influential_steps);
    compare(got.top_dependent_steps, expected.top_dependent_steps);
    // problem_330's summary was written from the same chunks_labeled.json: all equal.
    if (dir.find("problem_330") != std::string::npos) {
      EXPECT_EQ(got, expected);
      EXPECT_EQ(summary_to_json(got), read_text_file(dir + "/summary.json", kDataFileLimit));
    }
    ++checked;
  }
  EXPECT_GE(checked, 1u);
}

// ---------------------------------------------------------------------------
// Summary against a slow reference on synthetic matrices
// ---------------------------------------------------------------------------

struct SlowSummary {
  double avg, max, min;
  std::vector<std::pair<std::size_t, double>> influential, dependent;
};

SlowSummary slow_summary(const std::vector<std::vector<double>>& m) {
  const std::size_t n = m.size();
  SlowSummary s{0, -1e300, 1e300, {}, {}};
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      s.avg += m[i][j];
      s.max = std::max(s.max, m[i][j]);
      s.min = std::min(s.min, m[i][j]);
    }
  }
  s.avg /= double(n * n);
  std::vector<double> out(n, 0.0), in(n, 0.0);
  for (std::size_t i = 0; i + 1 < n; ++i) {
    for (std::size_t j = i + 1; j < n; ++j) out[i] += m[i][j];
    out[i] /= double(n - i - 1);
  }
  for (std::size_t j = 1; j < n; ++j) {
    for (std::size_t i = 0; i < j; ++i) in[j] += m[i][j];
    in[j] /= double(j);
  }
  // Five largest positive values, largest first, later index first on ties:
  // repeatedly take the best remaining.
  const auto top = [](std::vector<double> v) {
    std::vector<std::pair<std::size_t, double>> result;
    std::vector<bool> used(v.size(), false);
    for (int k = 0; k < 5; ++k) {
      std::optional<std::size_t> best;
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (!used[i] && (!best || v[i] >= v[*best])) best = i;
      }
      if (!best) break;
      used[*best] = true;
      if (v[*best] > 0) result.emplace_back(*best, v[*best]);
    }
    return result;
  };
  s.influential = top(out);
  s.dependent = top(in);
  return s;
}

TEST(ReferenceSchema, SummaryMatchesSlowReferenceOnRandomMatrices) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    const std::size_t n = 1 + rng() % 40;
    std::vector<std::vector<double>> m(n, std::vector<double>(n, 0.0));
    StepImportance rows;
    std::vector<LabeledChunk> labels;
    const bool coarse = trial % 2 == 0;  // coarse values: many ties
    for (std::size_t i = 0; i < n; ++i) {
      StepImportanceRow row;
      row.source_chunk_idx = i;
      row.source_chunk_text = "s" + std::to_string(i);
      for (std::size_t j = i + 1; j < n; ++j) {
        const double v = coarse ? double(int(rng() % 5) - 2) / 4.0
                                : std::uniform_real_distribution<double>(-1, trial % 3 == 1 ? 0.0 : 1)(rng);
        m[i][j] = v;
        row.target_impacts.push_back({j, v});
      }
      rows.push_back(row);
      LabeledChunk c;
      c.chunk = row.source_chunk_text;
      c.chunk_idx = i;
      labels.push_back(c);
    }
    const StepImportanceSummary got = summarize_step_importance(rows, labels, 3);
    const SlowSummary want = slow_summary(m);
    EXPECT_EQ(got.num_chunks, n);
    EXPECT_NEAR(got.avg_importance, want.avg, 1e-14);
    EXPECT_EQ(got.max_importance, want.max);
    EXPECT_EQ(got.min_importance, want.min);
    const auto compare = [](const std::vector<InfluentialStep>& a, const std::vector<std::pair<std::size_t, double>>& b) {
      ASSERT_EQ(a.size(), b.size());
      for (std::size_t k = 0; k < a.size(); ++k) {
        EXPECT_EQ(a[k].step_idx, b[k].first);
        EXPECT_NEAR(a[k].avg_importance, b[k].second, 1e-14);
        EXPECT_EQ(a[k].step_text.chunk_idx, b[k].first);
      }
    };
    compare(got.top_influential_steps, want.influential);
    compare(got.top_dependent_steps, want.dependent);
  }
}

TEST(ReferenceSchema, SummaryUsesChunkIndicesNotPositions) {
  // Rows for chunks 0, 2, 5 (short chunks dropped before analysis).
  StepImportance rows = {{0, "a", {{2, 0.5}, {5, 0.25}}}, {2, "b", {{5, -0.5}}}, {5, "c", {}}};
  std::vector<LabeledChunk> labels(3);
  labels[0].chunk_idx = 0;
  labels[1].chunk_idx = 2;
  labels[2].chunk_idx = 5;
  const StepImportanceSummary s = summarize_step_importance(rows, labels, std::nullopt);
  ASSERT_EQ(s.top_influential_steps.size(), 1u);
  EXPECT_EQ(s.top_influential_steps[0].step_idx, 0u);
  EXPECT_DOUBLE_EQ(s.top_influential_steps[0].avg_importance, 0.375);
  ASSERT_EQ(s.top_dependent_steps.size(), 1u);
  EXPECT_EQ(s.top_dependent_steps[0].step_idx, 2u);  // incoming: 0.5 / 1
  EXPECT_DOUBLE_EQ(s.avg_importance, 0.25 / 9.0);
  EXPECT_EQ(json::parse(summary_to_json(s))["problem_idx"], nullptr);

  EXPECT_THROW(summarize_step_importance(rows, {}, 1), Error);
  rows[2].source_chunk_idx = 2;  // duplicate
  EXPECT_THROW(summarize_step_importance(rows, labels, 1), Error);
  rows = {{0, "a", {{9, 0.5}}}};
  EXPECT_THROW(summarize_step_importance(rows, labels, 1), Error);  // target without a row
}

// ---------------------------------------------------------------------------
// LabeledChunk values
// ---------------------------------------------------------------------------

TEST(ReferenceSchema, UnknownKeysNullsAndKeyOrderSurviveARoundTrip) {
  const std::string text = R"([
  {
    "summary": "s",
    "chunk": "A sentence.",
    "weird": {"b": [1, 2], "a": null},
    "chunk_idx": 3,
    "accuracy": null,
    "depends_on": [1, "2"]
  },
  {"chunk": "One.", "chunk_idx": 1},
  {"chunk": "Two.", "chunk_idx": 2}
])";
  const auto chunks = parse_chunks_labeled(text, "x.json");
  ASSERT_EQ(chunks.size(), 3u);
  const LabeledChunk& c = chunks[0];
  EXPECT_EQ(c.chunk_idx, 3u);
  EXPECT_EQ(c.summary, "s");
  EXPECT_FALSE(c.accuracy.has_value());
  EXPECT_EQ(c.depends_on, (std::vector<std::string>{"1", "2"}));  // numbers become strings
  EXPECT_TRUE(c.function_tags.empty());
  EXPECT_EQ(c.key_order, (std::vector<std::string>{"summary", "chunk", "weird", "chunk_idx", "accuracy", "depends_on"}));
  const std::string written = chunks_labeled_to_json(chunks);
  EXPECT_EQ(parse_chunks_labeled(written), chunks);
  const json doc = json::parse(written);
  EXPECT_TRUE(doc[0]["accuracy"].is_null());
  EXPECT_EQ(doc[0]["weird"]["b"], json({1, 2}));
  EXPECT_FALSE(doc[0].contains("function_tags"));  // a chunk read keeps its set of fields
  // Order kept: "summary" first.
  EXPECT_LT(written.find("\"summary\""), written.find("\"chunk\""));
}

TEST(ReferenceSchema, NewChunksGetEveryFieldInReferenceOrder) {
  LabeledChunk c;
  c.chunk = "Caf\xC3\xA9 time.";  // non-ASCII is escaped as the reference does
  c.chunk_idx = 1;
  c.function_tags = {"unknown"};
  c.accuracy = 1.0;
  c.overdeterminedness = 0.25;
  const std::string written = chunks_labeled_to_json({c});
  EXPECT_NE(written.find("Caf\\u00e9 time."), std::string::npos);
  const nlohmann::ordered_json doc = nlohmann::ordered_json::parse(written);
  std::vector<std::string> keys;
  for (const auto& [k, v] : doc[0].items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"chunk", "chunk_idx", "function_tags", "depends_on", "accuracy",
                                            "overdeterminedness", "summary"}));
  EXPECT_EQ(written.find("1.0") != std::string::npos, true);  // doubles stay doubles
}

TEST(ReferenceSchema, NumbersAndStringsAreWrittenAsPythonWritesThem) {
  // Expected texts are Python's json.dumps of the same values.
  const std::vector<std::pair<double, std::string>> numbers = {
      {1e-05, "1e-05"},
      {0.0001, "0.0001"},
      {1e16, "1e+16"},
      {1234567890123456.0, "1234567890123456.0"},
      {0.1, "0.1"},
      {5e-324, "5e-324"},
      {1.7976931348623157e+308, "1.7976931348623157e+308"},
      {-0.0, "-0.0"},
      {123.456, "123.456"},
      {1e22, "1e+22"},
      {2.5e-07, "2.5e-07"},
      {-0.016288659793814442, "-0.01628865979381444"},  // nlohmann alone writes 17 digits
      {0.30000000000000004, "0.30000000000000004"},
      {0.0, "0.0"},
      {1.0, "1.0"},
  };
  for (const auto& [value, text] : numbers) {
    StepImportance rows = {{0, "a", {{1, value}}}};
    const std::string written = step_importance_to_json(rows);
    EXPECT_NE(written.find("\"importance_score\": " + text + "\n"), std::string::npos) << text << "\n" << written;
    EXPECT_EQ(parse_step_importance(written)[0].target_impacts[0].importance_score, value);
  }
  StepImportance rows = {{0, std::string("a\x7f\x01\xC3\xA9\xF0\x9F\x98\x80\"\\/\t\b\f\r\n"), {}}};
  const std::string written = step_importance_to_json(rows);
  EXPECT_NE(written.find(R"("a\u007f\u0001\u00e9\ud83d\ude00\"\\/\t\b\f\r\n")"), std::string::npos) << written;
  EXPECT_EQ(parse_step_importance(written), rows);
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

template <typename F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "expected anchors::Error";
  } catch (const Error& e) {
    for (const auto& part : parts) EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(ReferenceSchema, BadChunksLabeledIsAnError) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"", {"f.json", "malformed JSON"}},
      {"\x89PNG\r\n\x1a\n\xff\xfe", {"f.json", "malformed JSON"}},
      {"{}", {"f.json", "list"}},
      {"[1]", {"f.json", "entry 0", "object"}},
      {R"([{"chunk_idx": 0}])", {"entry 0", "missing field \"chunk\""}},
      {R"([{"chunk": "a"}])", {"missing field \"chunk_idx\""}},
      {R"([{"chunk": "a", "chunk_idx": -1}])", {"chunk_idx", "non-negative integer"}},
      {R"([{"chunk": "a", "chunk_idx": 1.5}])", {"chunk_idx"}},
      // Strings holding a value are read (the web app's files, below); others are errors.
      {R"([{"chunk": "a", "chunk_idx": "one"}])", {"chunk_idx", "\"one\""}},
      {R"([{"chunk": "a", "chunk_idx": "-1"}])", {"chunk_idx", "string of digits"}},
      {R"([{"chunk": "a", "chunk_idx": true}])", {"chunk_idx", "non-negative integer"}},
      {R"([{"chunk": 5, "chunk_idx": 1}])", {"\"chunk\"", "string"}},
      {R"([{"chunk": "a", "chunk_idx": 1, "function_tags": 3}])", {"function_tags", "list"}},
      {R"([{"chunk": "a", "chunk_idx": 1, "function_tags": "['x'"}])", {"function_tags", "not a Python list"}},
      {R"([{"chunk": "a", "chunk_idx": 1, "function_tags": "[1]"}])", {"function_tags", "not a Python list"}},
      {R"([{"chunk": "a", "chunk_idx": 1, "depends_on": "[0.5]"}])", {"depends_on", "not a Python list"}},
      {R"([{"chunk": "a", "chunk_idx": 1, "function_tags": [1]}])", {"function_tags"}},
      {R"([{"chunk": "a", "chunk_idx": 1, "depends_on": [true]}])", {"depends_on"}},
      {R"([{"chunk": "a", "chunk_idx": 1, "accuracy": "0.5%"}])", {"accuracy", "number", "\"0.5%\""}},
      {R"([{"chunk": "a", "chunk_idx": 1, "accuracy": true}])", {"accuracy", "number"}},
      {R"([{"chunk": "a", "chunk_idx": 1, "blackmail_rate": "high"}])", {"blackmail_rate", "\"high\""}},
      {R"([{"chunk": "a", "chunk_idx": 1, "semantic_entropy": [1]}])", {"semantic_entropy", "number"}},
      {R"([{"chunk": "a", "chunk_idx": 1, "summary": 3}])", {"summary", "string"}},
      {"[{\"chunk\": \"a\xff\", \"chunk_idx\": 1}]", {"f.json", "malformed JSON"}},
  };
  for (const auto& [text, parts] : cases) {
    SCOPED_TRACE(text);
    expect_error([&] { parse_chunks_labeled(text, "f.json"); }, parts);
  }
  expect_error([] { read_chunks_labeled("/nonexistent/chunks_labeled.json"); }, {"/nonexistent/chunks_labeled.json"});
}

// The result_json fuzzer's finding, in the parser these readers share: a
// number beyond a double's range (nlohmann's out_of_range while parsing)
// escaped instead of being an anchors::Error.
TEST(ReferenceSchema, NumberBeyondADoubleIsMalformedJson) {
  expect_error([] { parse_chunks_labeled(R"([{"chunk": "a", "chunk_idx": 0, "accuracy": 1e309}])", "f.json"); },
               {"f.json", "malformed JSON", "number overflow"});
  expect_error([] { parse_step_importance(R"([{"source_chunk_idx": 0, "importance_score": -2e308}])", "s.json"); },
               {"s.json", "malformed JSON", "number overflow"});
  expect_error([] { parse_summary(R"({"avg_importance": 1e400})", "m.json"); },
               {"m.json", "malformed JSON", "number overflow"});
}

TEST(ReferenceSchema, DependsOnThatNamesNoSentenceIsAnError) {
  // Accepted silently before: an edge of the dependency graph to nowhere.
  const std::string two = R"({"chunk": "a", "chunk_idx": 0}, {"chunk": "b", "chunk_idx": 1)";
  EXPECT_ANCHORS_ERROR(parse_chunks_labeled("[" + two + R"(, "depends_on": ["0", 5]}])", "f.json"), "f.json",
                       "entry 1 (chunk_idx 1)", "depends_on entry \"5\" names no sentence");
  for (const char* name : {R"("-1")", "-1", R"("x")", R"("")", R"(" 0")", R"("00")", "2"}) {
    SCOPED_TRACE(name);
    EXPECT_ANCHORS_ERROR(parse_chunks_labeled("[" + two + ", \"depends_on\": [" + name + "]}]", "f.json"),
                         "f.json", "entry 1", "names no sentence");
  }
  // Chunk indices need not start at 0 or be contiguous; a sentence may be named by itself.
  const auto ok = parse_chunks_labeled(
      R"([{"chunk": "a", "chunk_idx": 4}, {"chunk": "b", "chunk_idx": 9, "depends_on": [4, "9"]}])", "f.json");
  EXPECT_EQ(ok[1].depends_on, (std::vector<std::string>{"4", "9"}));

  // Through the file reader, and the writers refuse what the reader would.
  testing::ScratchDir dir("depends-on");
  const std::string path = dir.file("chunks_labeled.json");
  write_file_atomic(path, "[" + two + R"(, "depends_on": ["7"]}])");
  EXPECT_ANCHORS_ERROR(read_chunks_labeled(path), path, "entry 1 (chunk_idx 1)", "\"7\" names no sentence");
  std::vector<LabeledChunk> chunks = ok;
  chunks[1].depends_on = {"5"};
  EXPECT_ANCHORS_ERROR(chunks_labeled_to_json(chunks), "entry 1 (chunk_idx 9)", "\"5\" names no sentence");
  const std::string out = dir.file("out.json");
  EXPECT_ANCHORS_ERROR(write_chunks_labeled(chunks, out), out, "\"5\" names no sentence");
  EXPECT_FALSE(file_exists(out));
}

TEST(ReferenceSchema, BadStepImportanceIsAnError) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"[", {"s.json", "malformed JSON"}},
      {"{}", {"s.json", "list"}},
      {R"([{"source_chunk_text": "a", "target_impacts": []}])", {"source_chunk_idx"}},
      {R"([{"source_chunk_idx": 0, "target_impacts": []}])", {"source_chunk_text"}},
      {R"([{"source_chunk_idx": 0, "source_chunk_text": "a"}])", {"target_impacts"}},
      {R"([{"source_chunk_idx": 0, "source_chunk_text": "a", "target_impacts": {}}])", {"target_impacts", "list"}},
      {R"([{"source_chunk_idx": 0, "source_chunk_text": "a", "target_impacts": [{"target_chunk_idx": 1}]}])",
       {"target_impacts[0]", "importance_score"}},
      {R"([{"source_chunk_idx": 0, "source_chunk_text": "a", "target_impacts": [{"target_chunk_idx": 1, "importance_score": null}]}])",
       {"importance_score", "number"}},
  };
  for (const auto& [text, parts] : cases) {
    SCOPED_TRACE(text);
    expect_error([&] { parse_step_importance(text, "s.json"); }, parts);
  }
}

TEST(ReferenceSchema, BadSummaryIsAnError) {
  const json good = {{"problem_idx", 1},         {"num_chunks", 2},          {"avg_importance", 0.1},
                     {"max_importance", 0.5},    {"min_importance", -0.5},   {"top_influential_steps", json::array()},
                     {"top_dependent_steps", json::array()}};
  EXPECT_NO_THROW(parse_summary(good.dump(), "m.json"));
  for (const auto& key : {"problem_idx", "num_chunks", "avg_importance", "max_importance", "min_importance",
                          "top_influential_steps", "top_dependent_steps"}) {
    SCOPED_TRACE(key);
    json broken = good;
    broken.erase(key);
    expect_error([&] { parse_summary(broken.dump(), "m.json"); }, {"m.json", key});
  }
  json bad_idx = good;
  bad_idx["problem_idx"] = "330";
  expect_error([&] { parse_summary(bad_idx.dump(), "m.json"); }, {"problem_idx"});
  json bad_step = good;
  bad_step["top_influential_steps"] = json::array({{{"step_idx", 0}, {"step_text", "text"}, {"avg_outgoing_importance", 1}}});
  expect_error([&] { parse_summary(bad_step.dump(), "m.json"); }, {"top_influential_steps[0]", "step_text", "object"});
  json bad_value = good;
  bad_value["top_dependent_steps"] = json::array({{{"step_idx", 0}, {"step_text", {{"chunk", "a"}, {"chunk_idx", 0}}}}});
  expect_error([&] { parse_summary(bad_value.dump(), "m.json"); }, {"avg_incoming_importance"});
}

// ---------------------------------------------------------------------------
// write_reference_outputs end to end
// ---------------------------------------------------------------------------

void write_json(const fs::path& path, const json& doc) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << doc.dump(1);
}

json record(const std::string& removed, const std::string& resampled, const std::string& rollout,
            const std::string& answer, bool correct) {
  return {{"chunk_removed", removed}, {"chunk_resampled", resampled}, {"rollout", rollout},
          {"answer", answer},         {"is_correct", correct}};
}

// Three sentences; the last has no rollouts, so several metrics are NaN.
fs::path write_small_problem(const fs::path& root) {
  const fs::path dir = root / "correct_base_solution" / "problem_21";
  write_json(dir / "problem.json", {{"problem", "p"}, {"gt_answer", "42"}});
  write_json(dir / "base_solution.json", {{"solution", "x"}, {"answer", "42"}});
  write_json(dir / "chunks.json", {{"chunks", {"First we add numbers.", "Then we check it.", "So it is 42."}}});
  write_json(dir / "chunk_0" / "solutions.json",
             json::array({record("First we add numbers.", "First we add numbers.", "Then we check it.", "42", true),
                          record("First we add numbers.", "Maybe guess instead.", "So it is 42.", "41", false)}));
  write_json(dir / "chunk_1" / "solutions.json",
             json::array({record("Then we check it.", "Then we check it.", "So it is 42.", "42", true)}));
  return dir;
}

double toy_similarity(const std::string& a, const std::string& b) { return a == b ? 1.0 : 0.1; }

ResamplingMetrics small_metrics(const ProblemRollouts& rollouts) {
  TableSimilarity similarity(toy_similarity);
  return compute_resampling_metrics(rollouts, similarity, {});
}

TEST(ReferenceSchema, WriteReferenceOutputsWritesAllThreeFiles) {
  testing::ScratchDir scratch("schema");
  const fs::path dir = write_small_problem(scratch.path());
  const ProblemRollouts rollouts = read_problem_rollouts(dir.string());
  const ResamplingMetrics metrics = small_metrics(rollouts);
  const fs::path out = fs::path(scratch.path()) / "out" / "nested";
  const ReferenceOutputs written = write_reference_outputs(rollouts, metrics, out.string());

  const auto labels = read_chunks_labeled((out / "chunks_labeled.json").string());
  EXPECT_EQ(labels, written.chunks_labeled);
  ASSERT_EQ(labels.size(), 3u);
  for (std::size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(labels[k].chunk_idx, k);
    EXPECT_EQ(labels[k].chunk, rollouts.chunks[k]);
    EXPECT_EQ(labels[k].function_tags, std::vector<std::string>{"unknown"});  // no labels to keep
    EXPECT_TRUE(labels[k].depends_on.empty());
    EXPECT_EQ(labels[k].summary, "");
  }
  // accuracy of sentence 0: 1/2; of sentence 2 (no rollouts): NaN, written 0.0.
  EXPECT_EQ(labels[0].accuracy, 0.5);
  EXPECT_EQ(labels[0].resampling_importance_accuracy, 0.5);
  EXPECT_EQ(labels[2].accuracy, 0.0);
  EXPECT_TRUE(std::isnan(metrics.sentences[2].accuracy));
  EXPECT_EQ(labels[0].different_trajectories_fraction, 0.5);

  const StepImportance rows = read_step_importance((out / "step_importance.json").string());
  EXPECT_EQ(rows, written.step_importance);
  ASSERT_EQ(rows.size(), 3u);
  ASSERT_EQ(rows[0].target_impacts.size(), 2u);
  EXPECT_TRUE(rows[2].target_impacts.empty());
  // M[0][1]: kept (chunk 1) never says "Then we check it." -> 0; resampled: 1 of 2 -> 0.5.
  EXPECT_DOUBLE_EQ(rows[0].target_impacts[0].importance_score, -0.5);
  // M[1][2]: chunk 2 has no rollouts -> NaN in the metrics, 0.0 in the file.
  EXPECT_TRUE(std::isnan(metrics.sentence_to_sentence(1, 2)));
  EXPECT_EQ(rows[1].target_impacts[0].importance_score, 0.0);

  const StepImportanceSummary summary = read_summary((out / "summary.json").string());
  ASSERT_TRUE(written.summary.has_value());
  EXPECT_EQ(summary, *written.summary);
  EXPECT_EQ(summary.problem_idx, 21);
  EXPECT_EQ(summary.num_chunks, 3u);
  EXPECT_EQ(summary, summarize_step_importance(rows, labels, 21));

  // The resampled sentences, in the authors' chunks_resampled.json: what the
  // report reads as each sentence's alternatives, equal to the rollouts' own.
  const json resampled = json::parse(read_text_file((out / "chunks_resampled.json").string(), kDataFileLimit));
  EXPECT_EQ(resampled, json({{"0", {"First we add numbers.", "Maybe guess instead."}}, {"1", {"Then we check it."}}}));
  Trace trace;
  trace.text = "First we add numbers. Then we check it. So it is 42.";
  trace.sentences = split_sentences(trace.text);
  SentenceAlternatives from_rollouts = alternatives_from_rollouts(rollouts, trace);
  for (auto& [i, texts] : from_rollouts) std::sort(texts.begin(), texts.end());
  EXPECT_EQ(read_reference_alternatives((out / "chunks_resampled.json").string(), trace), from_rollouts);

  // Only the four files: no temporary files left behind.
  std::size_t entries = 0;
  for (const auto& e : fs::directory_iterator(out)) {
    ++entries;
    EXPECT_EQ(e.path().extension(), ".json") << e.path();
  }
  EXPECT_EQ(entries, 4u);
}

TEST(ReferenceSchema, LabelsAreKeptOnlyForTheSameSentences) {
  testing::ScratchDir scratch("schema");
  const fs::path dir = write_small_problem(scratch.path());
  const ProblemRollouts rollouts = read_problem_rollouts(dir.string());
  const ResamplingMetrics metrics = small_metrics(rollouts);

  std::vector<LabeledChunk> labels = labeled_chunks(metrics);
  labels[0].function_tags = {"plan_generation"};
  labels[1].function_tags = {"self_checking"};
  labels[1].depends_on = {"0"};
  labels[2].summary = "state answer";
  write_chunks_labeled(labels, (dir / "chunks_labeled.json").string());

  const fs::path out = fs::path(scratch.path()) / "out";
  auto written = write_reference_outputs(rollouts, metrics, out.string());
  EXPECT_EQ(written.chunks_labeled[0].function_tags, std::vector<std::string>{"plan_generation"});
  EXPECT_EQ(written.chunks_labeled[1].depends_on, std::vector<std::string>{"0"});
  EXPECT_EQ(written.chunks_labeled[2].summary, "state answer");
  // Summary step_text entries are the labeled entries.
  for (const auto& step : written.summary->top_influential_steps) {
    EXPECT_EQ(step.step_text, written.chunks_labeled[step.step_idx]);
  }

  // Writing into the problem folder itself keeps the labels too.
  written = write_reference_outputs(rollouts, metrics, dir.string());
  EXPECT_EQ(read_chunks_labeled((dir / "chunks_labeled.json").string())[1].function_tags,
            std::vector<std::string>{"self_checking"});

  // A different sentence list: labels are not trusted.
  labels[1].chunk = "Then we check it again.";
  write_chunks_labeled(labels, (dir / "chunks_labeled.json").string());
  written = write_reference_outputs(rollouts, metrics, out.string());
  for (const auto& c : written.chunks_labeled) EXPECT_EQ(c.function_tags, std::vector<std::string>{"unknown"});

  // Explicit labels file, and switching labels off.
  labels[1].chunk = "Then we check it.";
  const std::string elsewhere = (fs::path(scratch.path()) / "labels.json").string();
  write_chunks_labeled(labels, elsewhere);
  ReferenceOutputOptions explicit_labels;
  explicit_labels.labels_path = elsewhere;
  EXPECT_EQ(write_reference_outputs(rollouts, metrics, out.string(), explicit_labels).chunks_labeled[0].function_tags,
            std::vector<std::string>{"plan_generation"});
  ReferenceOutputOptions no_labels;
  no_labels.keep_labels = false;
  no_labels.labels_path = elsewhere;
  EXPECT_EQ(write_reference_outputs(rollouts, metrics, out.string(), no_labels).chunks_labeled[0].function_tags,
            std::vector<std::string>{"unknown"});

  // An unreadable labels file is bad input, not silently ignored.
  std::ofstream((dir / "chunks_labeled.json").string()) << "[{";
  expect_error([&] { write_reference_outputs(rollouts, metrics, out.string()); }, {"chunks_labeled.json", "malformed"});
}

TEST(ReferenceSchema, WithoutMatrixOnlyChunksLabeledIsWritten) {
  testing::ScratchDir scratch("schema");
  const fs::path dir = write_small_problem(scratch.path());
  const ProblemRollouts rollouts = read_problem_rollouts(dir.string());
  TableSimilarity similarity(toy_similarity);
  ResamplingMetricsOptions options;
  options.compute_matrix = false;
  const ResamplingMetrics metrics = compute_resampling_metrics(rollouts, similarity, options);
  EXPECT_THROW(step_importance(metrics), Error);
  const fs::path out = fs::path(scratch.path()) / "out";
  const ReferenceOutputs written = write_reference_outputs(rollouts, metrics, out.string());
  EXPECT_FALSE(written.summary.has_value());
  EXPECT_TRUE(fs::exists(out / "chunks_labeled.json"));
  EXPECT_FALSE(fs::exists(out / "step_importance.json"));
  EXPECT_FALSE(fs::exists(out / "summary.json"));
}


// ---------------------------------------------------------------------------
// Agentic files (Thought Branches) and the web app's string-typed values
// ---------------------------------------------------------------------------

TEST(ReferenceSchema, StringTypedAgenticLabelsReadAsTypedValues) {
  const nlohmann::ordered_json file = testing::ScenarioFolder::labels();
  const auto chunks = parse_chunks_labeled(file.dump(), "chunks_labeled.json");
  ASSERT_EQ(chunks.size(), 4u);
  EXPECT_EQ(chunks[0].chunk_idx, 0u);  // "0"
  EXPECT_EQ(chunks[2].chunk_idx, 3u);  // "3"
  EXPECT_EQ(chunks[0].function_tags, std::vector<std::string>{"situation_assessment"});
  EXPECT_EQ(chunks[1].function_tags, (std::vector<std::string>{"leverage_identification", "plan_generation"}));
  EXPECT_EQ(chunks[2].function_tags, std::vector<std::string>{"action_execution"});  // a bare string
  EXPECT_TRUE(chunks[0].depends_on.empty());                                          // "[]"
  EXPECT_EQ(chunks[1].depends_on, std::vector<std::string>{"0"});                      // "['0']"
  EXPECT_EQ(chunks[2].depends_on, (std::vector<std::string>{"0", "2"}));               // "[0, 2]"
  EXPECT_FALSE(chunks[0].accuracy.has_value());  // the rate keeps its own key
  EXPECT_EQ(chunks[0].different_trajectories_fraction, 0.5);
  EXPECT_EQ(chunks[0].overdeterminedness, 0.0);
  using Metrics = std::vector<std::pair<std::string, double>>;
  EXPECT_EQ(chunks[0].scenario_metrics, (Metrics{{"blackmail_rate", 0.5},
                                                 {"resampling_importance_blackmail_rate", 0.16666666666666663},
                                                 {"counterfactual_importance_blackmail_rate", -0.25},
                                                 {"semantic_entropy", 0.6931471805599453}}));
  EXPECT_EQ(chunks[1].scenario_metrics,
            (Metrics{{"blackmail_rate", 0.6666666666666666},
                     {"resampling_importance_blackmail_rate", 0.33333333333333337},
                     {"counterfactual_plusplus_importance_blackmail_rate", 0.4},
                     {"counterfactual_plusplus_importance", 0.4},
                     {"counterfactual_importance_cfpp", 0.4},
                     {"cfpp_importance", 0.4}}));
  // No value ("None") and unknown keys stay verbatim.
  using Extra = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(chunks[1].extra, (Extra{{"counterfactual_importance_blackmail_rate", "\"None\""},
                                    {"resampling_importance_logodds", "\"1.2\""}}));
  EXPECT_EQ(chunks[2].extra, (Extra{{"counterfactual_importance_blackmail_rate", "\"nan\""}}));

  // Written back as JSON numbers and lists, in the file's key order.
  const std::string written = chunks_labeled_to_json(chunks);
  EXPECT_EQ(parse_chunks_labeled(written), chunks);
  const json back = json::parse(written);
  EXPECT_EQ(back[0]["chunk_idx"], 0);
  EXPECT_EQ(back[0]["blackmail_rate"], 0.5);
  EXPECT_EQ(back[1]["function_tags"], json::array({"leverage_identification", "plan_generation"}));
  EXPECT_EQ(back[1]["counterfactual_importance_blackmail_rate"], "None");
  EXPECT_EQ(back[2]["depends_on"], json::array({"0", "2"}));
  const auto first_keys = [](const std::string& text) {
    std::vector<std::string> keys;
    const auto doc = nlohmann::ordered_json::parse(text);
    for (const auto& item : doc[1].items()) keys.push_back(item.key());
    return keys;
  };
  EXPECT_EQ(first_keys(written), first_keys(file.dump()));
}

TEST(ReferenceSchema, PythonLiteralsInStrings) {
  const auto read = [](const json& entry) {
    json e = entry;
    e["chunk"] = "a";
    e["chunk_idx"] = 1;
    return parse_chunks_labeled(json::array({e}).dump(), "f.json").at(0);
  };
  // Strings: both quotes, escapes, non-ASCII, a trailing comma, spaces.
  EXPECT_EQ(read({{"function_tags", R"( [ 'it\'s', "say \"hi\"", 'caf\xe9', '\u00e9\U0001F600', 'a\\b\tc' , ] )"}})
                .function_tags,
            (std::vector<std::string>{"it's", "say \"hi\"", "caf\xC3\xA9", "\xC3\xA9\xF0\x9F\x98\x80", "a\\b\tc"}));
  EXPECT_EQ(read({{"function_tags", "['naïve']"}}).function_tags, std::vector<std::string>{"naïve"});
  EXPECT_TRUE(read({{"function_tags", ""}}).function_tags.empty());
  EXPECT_TRUE(read({{"function_tags", "  "}}).function_tags.empty());
  EXPECT_TRUE(read({{"function_tags", "[ ]"}}).function_tags.empty());
  // Integers keep their decimal text; quoted entries their own.
  EXPECT_EQ(read({{"depends_on", "[1, '1', +1, 001]"}}).depends_on, (std::vector<std::string>{"1", "1", "1", "1"}));
  EXPECT_EQ(read({{"depends_on", "1"}}).depends_on, std::vector<std::string>{"1"});  // a bare string
  // Numbers as Python writes them; no-value strings are kept verbatim.
  EXPECT_EQ(read({{"accuracy", " 0.25 "}}).accuracy, 0.25);
  EXPECT_EQ(read({{"accuracy", "+1."}}).accuracy, 1.0);
  EXPECT_EQ(read({{"accuracy", ".5"}}).accuracy, 0.5);
  EXPECT_EQ(read({{"accuracy", "-3E-05"}}).accuracy, -3e-05);
  EXPECT_EQ(read({{"accuracy", "0.1"}}).accuracy, 0.1);  // the nearest double, as Python's float()
  EXPECT_EQ(read({{"accuracy", "1e-400"}}).accuracy, 0.0);  // underflow: 0.0 in Python too
  for (const char* none : {"None", "nan", "NaN", "-inf", "Infinity", "1e400", "", "null"}) {
    SCOPED_TRACE(none);
    const LabeledChunk c = read({{"blackmail_rate", none}});
    EXPECT_TRUE(c.scenario_metrics.empty());
    ASSERT_EQ(c.extra.size(), 1u);
    EXPECT_EQ(c.extra[0].second, json(none).dump());
  }
  for (const char* bad : {"0x10", "1_000", "1e", ".", "--1", "1.2.3", "e5", "0.5 0.5", "one"}) {
    SCOPED_TRACE(bad);
    EXPECT_ANCHORS_ERROR(read({{"blackmail_rate", bad}}), "f.json", "entry 0", "\"blackmail_rate\"",
                         json(bad).dump());
  }
  for (const char* bad : {"['a'", "['a' 'b']", "['a\\qb']", "['\\ud800']", "['\\x4']", "[a]", "['a']]", "['a\nb']",
                          "[\"a']", "['a',,]"}) {
    SCOPED_TRACE(bad);
    EXPECT_ANCHORS_ERROR(read({{"function_tags", bad}}), "f.json", "entry 0", "\"function_tags\"",
                         "not a Python list");
  }
}

// write_reference_outputs for the rollouts of an agentic folder: the authors'
// agentic key names, and a folder that imports again.
TEST(ReferenceSchema, AgenticFolderWritesAndImportsItsRates) {
  testing::ScratchDir scratch("schema-scenario");
  const fs::path dir = fs::path(scratch.path()) / "yes_base_solution" / "scenario_7";
  testing::ScenarioFolder::write(dir);
  const ProblemRollouts rollouts = read_problem_rollouts(dir.string());
  const ResamplingMetrics metrics = small_metrics(rollouts);
  ASSERT_EQ(metrics.sentences.size(), 4u);
  EXPECT_EQ(metrics.sentences[1].chunk_idx, 2u);
  EXPECT_EQ(metrics.sentences[0].accuracy, 0.5);  // yes, no; the null verdict and the error record left out
  EXPECT_DOUBLE_EQ(metrics.sentences[1].accuracy, 2.0 / 3.0);
  // The trace of the folder is the one these metrics belong to.
  const Trace trace = trace_from_rollouts(rollouts);
  const Attribution attribution = resampling_attribution(trace, metrics, {});
  EXPECT_EQ(attribution.score("accuracy")[0], 0.5);

  write_reference_outputs(rollouts, metrics, dir.string());
  const auto file =
      nlohmann::ordered_json::parse(read_text_file((dir / "chunks_labeled.json").string(), kDataFileLimit));
  ASSERT_EQ(file.size(), 4u);
  std::vector<std::string> keys;
  for (const auto& item : file[0].items()) keys.push_back(item.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"chunk", "chunk_idx", "function_tags", "depends_on", "blackmail_rate",
                                            "resampling_importance_blackmail_rate", "resampling_importance_kl",
                                            "counterfactual_importance_blackmail_rate", "counterfactual_importance_kl",
                                            "forced_importance_blackmail_rate", "forced_importance_kl",
                                            "different_trajectories_fraction", "overdeterminedness", "summary"}));
  EXPECT_EQ(file[0]["blackmail_rate"], 0.5);
  EXPECT_EQ(file[1]["chunk_idx"], 2);
  EXPECT_DOUBLE_EQ(file[0]["resampling_importance_blackmail_rate"].get<double>(), 2.0 / 3.0 - 0.5);
  EXPECT_EQ(file[1]["function_tags"], json::array({"leverage_identification", "plan_generation"}));  // kept

  const AnalysisResult imported = import_reference_folder(dir.string());
  const Attribution& a = imported.attribution("resampling");
  EXPECT_EQ(a.score("accuracy")[0], 0.5);
  EXPECT_EQ(a.score("accuracy")[3], 0.0);  // no rollouts: NaN, written 0.0
  EXPECT_EQ(a.score("resampling_importance_accuracy")[0], metrics.sentences[0].resampling_importance_accuracy);
  EXPECT_EQ(imported.trace.sentences[1].tags, (std::vector<std::string>{"leverage_identification", "plan_generation"}));
  ASSERT_TRUE(a.matrices.count("sentence_to_sentence"));
  EXPECT_EQ(a.matrix("sentence_to_sentence").rows, 4u);
}

}  // namespace
}  // namespace anchors

namespace anchors {
namespace {

TEST(ReferenceSchema, SuppressionMatrixWritesTheAuthorsSuppFileAndReadsBack) {
  testing::ScratchDir scratch("supp");
  const fs::path folder = fs::path(scratch.path()) / "problem_330";
  fs::copy(testing::reference_dirs()[0], folder, fs::copy_options::recursive);
  AnalysisResult result = import_reference_folder(folder.string());
  const std::size_t S = result.trace.sentences.size();
  EXPECT_THROW(suppression_step_importance(result), Error);  // no attention_suppression yet
  // Our orientation: S[j][i] = effect on a later sentence j of suppressing i; NaN where j <= i.
  Attribution a;
  a.method = "attention_suppression";
  Matrix m(S, S);
  for (std::size_t j = 0; j < S; ++j)
    for (std::size_t i = 0; i < j; ++i) m(j, i) = 0.001 * static_cast<double>(j) - 0.01 * static_cast<double>(i);
  m(S - 1, 0) = std::numeric_limits<double>::quiet_NaN();  // written as 0.0, as the authors do
  a.matrices["suppression"] = m;
  result.set_attribution(a);
  const std::string path = write_step_importance_supp(result, folder.string());
  EXPECT_EQ(path, (folder / "step_importance_supp.json").string());
  const StepImportance rows = read_step_importance(path);
  ASSERT_EQ(rows.size(), S);
  EXPECT_EQ(rows[0].source_chunk_text, result.trace.sentences[0].text);
  EXPECT_EQ(rows[0].target_impacts.size(), S - 1);
  EXPECT_TRUE(rows[S - 1].target_impacts.empty());
  // Imported back: the authors' orientation, M[i][j] = S[j][i] above the diagonal.
  const Matrix back = import_reference_folder(folder.string()).attribution("attention_suppression").matrix(
      "sentence_to_sentence");
  for (std::size_t i = 0; i < S; ++i)
    for (std::size_t j = i + 1; j < S; ++j)
      EXPECT_EQ(back(i, j), (i == 0 && j == S - 1) ? 0.0 : m(j, i)) << i << "," << j;
  a.matrices["suppression"] = Matrix(S - 1, S - 1);
  result.set_attribution(a);
  EXPECT_THROW(suppression_step_importance(result), Error);
}

}  // namespace
}  // namespace anchors
