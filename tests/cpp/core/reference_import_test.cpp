#include "anchors/core/reference_import.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "test_paths.h"

namespace anchors {
namespace {
using json = nlohmann::json;
namespace fs = std::filesystem;

TEST(ReferenceImport, EveryReferenceTraceMatchesItsLabels) {
  for (const auto& dir : testing::reference_dirs()) {
    SCOPED_TRACE(dir);
    const AnalysisResult r = import_reference_folder(dir);
    const json labels = json::parse(read_text_file(dir + "/chunks_labeled.json", kDataFileLimit));
    ASSERT_EQ(r.trace.sentences.size(), labels.size());
    const Attribution& a = r.attribution("resampling");
    for (std::size_t i = 0; i < labels.size(); ++i) {
      EXPECT_EQ(r.trace.sentences[i].text, labels[i]["chunk"].get<std::string>());
      EXPECT_EQ(r.trace.sentences[i].tags, labels[i]["function_tags"].get<std::vector<std::string>>());
      EXPECT_EQ(a.score("counterfactual_importance_kl")[i], labels[i]["counterfactual_importance_kl"].get<double>());
      EXPECT_EQ(a.score("accuracy")[i], labels[i]["accuracy"].get<double>());
    }
    const json base = json::parse(read_text_file(dir + "/base_solution.json", kDataFileLimit));
    EXPECT_EQ(r.trace.text, base["solution"].get<std::string>());
    EXPECT_EQ(r.trace.answer, base["answer"].get<std::string>());
    EXPECT_EQ(r.trace.metadata.at("is_correct"), base["is_correct"].get<bool>() ? "true" : "false");
    // Round trip through our own format.
    EXPECT_EQ(result_from_json(result_to_json(r)), r);
  }
}

TEST(ReferenceImport, StepImportanceBecomesSourceByTargetMatrix) {
  const std::string dir = testing::reference_dirs()[0];  // problem_330 carries step_importance.json
  const AnalysisResult r = import_reference_folder(dir);
  const Matrix& m = r.attribution("resampling").matrix("sentence_to_sentence");
  const json rows = json::parse(read_text_file(dir + "/step_importance.json", kDataFileLimit));
  ASSERT_EQ(m.rows, r.trace.sentences.size());
  std::size_t cells = 0;
  for (const auto& row : rows) {
    const auto i = row["source_chunk_idx"].get<std::size_t>();
    for (const auto& t : row["target_impacts"]) {
      EXPECT_EQ(m(i, t["target_chunk_idx"].get<std::size_t>()), t["importance_score"].get<double>());
      ++cells;
    }
  }
  EXPECT_GT(cells, 0u);
  EXPECT_TRUE(std::isnan(m(5, 5)));  // no self-impact in the file
}

class BrokenReference : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* f : {"base_solution.json", "chunks_labeled.json", "problem.json"})
      fs::copy_file(testing::reference_dirs()[1] + "/" + f, dir.file(f));
  }
  void expect_error(const std::string& needle) {
    try {
      import_reference_folder(dir.path());
      FAIL() << "expected an error mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
  void write(const std::string& name, const std::string& content) { write_file_atomic(dir.file(name), content); }
  testing::ScratchDir dir{"refimport"};
};

TEST_F(BrokenReference, CopyImports) { EXPECT_NO_THROW(import_reference_folder(dir.path())); }

TEST_F(BrokenReference, MissingDirectory) {
  EXPECT_THROW(import_reference_folder(dir.file("nope")), Error);
}

TEST_F(BrokenReference, MissingLabels) {
  fs::remove(dir.file("chunks_labeled.json"));
  expect_error("chunks_labeled.json");
}

TEST_F(BrokenReference, MalformedBaseSolution) {
  write("base_solution.json", "{\"solution\": ");
  expect_error("base_solution.json: malformed JSON");
}

TEST_F(BrokenReference, WrongTypeInBaseSolution) {
  write("base_solution.json", R"({"solution": 42})");
  expect_error("\"solution\" must be a string");
}

TEST_F(BrokenReference, BinaryGarbage) {
  write("chunks_labeled.json", std::string("\x00\xff\xfe garbage", 11));
  expect_error("chunks_labeled.json");
}

TEST_F(BrokenReference, LabelsForAnotherTrace) {
  json labels = json::parse(read_text_file(dir.file("chunks_labeled.json"), kDataFileLimit));
  labels.erase(labels.begin());
  write("chunks_labeled.json", labels.dump());
  expect_error("reference segmentation");
}

TEST_F(BrokenReference, StepImportanceOutOfRange) {
  write("step_importance.json",
        R"([{"source_chunk_idx": 0, "source_chunk_text": "x", "target_impacts": [{"target_chunk_idx": 100000, "importance_score": 0.1}]}])");
  expect_error("out of range");
}

}  // namespace
}  // namespace anchors
