#include "anchors/cli.h"

#include <gtest/gtest.h>

#include <sstream>

#include <nlohmann/json.hpp>

#include "anchors/core/attribution.h"
#include "anchors/core/file_io.h"
#include "anchors/core/utf8.h"
#include "scoped_max_bytes.h"
#include "test_paths.h"

namespace anchors {
namespace {
using json = nlohmann::json;

struct CliRun {
  int code;
  std::string out, err;
};

CliRun cli(const std::vector<std::string>& args, const std::string& stdin_text = "") {
  std::istringstream in(stdin_text);
  std::ostringstream out, err;
  const int code = run_cli(args, in, out, err);
  return {code, out.str(), err.str()};
}

TEST(Cli, SegmentPrintsCodePointSpans) {
  const std::string text = "Voilà, the café is open. Prices are 3 € each!\n\nSo the total is 6 €.";
  const CliRun r = cli({"segment", "-"}, text);
  ASSERT_EQ(r.code, 0) << r.err;
  const json list = json::parse(r.out);
  ASSERT_EQ(list.size(), 3u);
  // Code point offsets: re-slice the text by code points and compare.
  for (const auto& s : list) {
    const std::size_t b = utf8::byte_offset(text, s["char_start"].get<std::size_t>());
    const std::size_t e = utf8::byte_offset(text, s["char_end"].get<std::size_t>());
    EXPECT_EQ(text.substr(b, e - b), s["text"].get<std::string>());
  }
  EXPECT_EQ(list[0]["char_end"].get<std::size_t>(), 24u);  // "Voilà, the café is open." is 24 code points
}

TEST(Cli, SegmentFileMatchesReferenceChunks) {
  const std::string dir = testing::reference_dirs()[0];
  const json base = json::parse(read_text_file(dir + "/base_solution.json", kDataFileLimit));
  testing::ScratchDir scratch("cli");
  write_file_atomic(scratch.file("solution.txt"), base["solution"].get<std::string>());
  const CliRun r = cli({"segment", scratch.file("solution.txt")});
  ASSERT_EQ(r.code, 0) << r.err;
  const json labels = json::parse(read_text_file(dir + "/chunks_labeled.json", kDataFileLimit));
  const json list = json::parse(r.out);
  ASSERT_EQ(list.size(), labels.size());
  for (std::size_t i = 0; i < list.size(); ++i) EXPECT_EQ(list[i]["text"], labels[i]["chunk"]);
}

TEST(Cli, SegmentOptionsChangeTheResult) {
  const std::string text = "Ok. Fine then, we go on. Next step here.";
  const auto merged = json::parse(cli({"segment", "-"}, text).out);
  const auto raw = json::parse(cli({"segment", "-", "--merge-shorter-than", "0", "--drop-shorter-than=0"}, text).out);
  EXPECT_EQ(merged.size(), 2u);  // "Ok." (3 code points) merges into the next sentence
  EXPECT_EQ(raw.size(), 3u);
}

TEST(Cli, ShowPrintsSentencesTagsAndTopAnchors) {
  const std::string dir = testing::reference_dirs()[0];
  const CliRun r = cli({"show", dir, "--top", "3"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("139 sentences, answer 88572 (correct)"), std::string::npos) << r.out.substr(0, 300);
  EXPECT_NE(r.out.find("counterfactual_importance_kl"), std::string::npos);
  EXPECT_NE(r.out.find("problem_setup"), std::string::npos);
  EXPECT_NE(r.out.find("top 3 anchors"), std::string::npos);
  // Sentence 0's authors' score appears with its text.
  EXPECT_NE(r.out.find("1.3408"), std::string::npos);
}

TEST(Cli, ImportThenShowResultFile) {
  testing::ScratchDir scratch("cli");
  const std::string out = scratch.file("r.json");
  const CliRun imp = cli({"import", testing::reference_dirs()[3], "-o", out});
  ASSERT_EQ(imp.code, 0) << imp.err;
  const AnalysisResult r = load_result(out);
  EXPECT_EQ(r.trace.metadata.at("is_correct"), "false");
  const CliRun show = cli({"show", out, "--score", "accuracy", "--top", "0"});
  ASSERT_EQ(show.code, 0) << show.err;
  EXPECT_NE(show.out.find("importance: accuracy (resampling)"), std::string::npos);
}

TEST(Cli, ErrorsAndUsage) {
  EXPECT_EQ(cli({}).code, 2);
  EXPECT_EQ(cli({"frobnicate"}).code, 2);
  EXPECT_EQ(cli({"segment"}).code, 2);
  EXPECT_EQ(cli({"segment", "-", "--bogus"}).code, 2);
  EXPECT_EQ(cli({"segment", "-", "--merge-shorter-than", "ten"}).code, 2);
  const CliRun missing = cli({"segment", "/no/such/file.txt"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("/no/such/file.txt"), std::string::npos);
  const CliRun binary = cli({"segment", "-"}, std::string("ab\xff\xfe cd", 7));
  EXPECT_EQ(binary.code, 1);
  EXPECT_NE(binary.err.find("not valid UTF-8"), std::string::npos);
  EXPECT_EQ(cli({"show", "/no/such/dir.json"}).code, 1);
  EXPECT_EQ(cli({"help", "segment"}).code, 0);
  EXPECT_EQ(cli({"--version"}).code, 0);
  EXPECT_EQ(cli({"show", "--help"}).code, 0);
}

TEST(Cli, StandardInputIsBoundedLikeAFile) {
  // "-" reads standard input under the limit for data files, as a file is:
  // an endless pipe is an error naming <stdin> and the limit, not a hang.
  testing::ScopedMaxBytes lower("64");
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"segment", "-"}, std::vector<std::string>{"tag", "-"}}) {
    const CliRun over = cli(args, std::string(65, 'a'));
    EXPECT_EQ(over.code, 1);
    EXPECT_NE(over.err.find("<stdin>: more than 64 bytes"), std::string::npos) << over.err;
  }
  EXPECT_EQ(cli({"segment", "-"}, "One. Two.").code, 0);
}

TEST(Cli, TagChoosesTheMethod) {
  const std::string text = "We need to find x. Let me check: 3 + 4 = 7, which matches. So the answer is \\boxed{7}.";
  const CliRun learned = cli({"tag", "-"}, text);
  ASSERT_EQ(learned.code, 0) << learned.err;
  const json by_default = json::parse(learned.out);
  ASSERT_EQ(by_default.size(), 3u);
  for (const auto& entry : by_default) EXPECT_EQ(entry["rule"], "learned");
  EXPECT_EQ(cli({"tag", "-", "--method", "learned"}, text).out, learned.out);
  const CliRun rules = cli({"tag", "-", "--method", "rules"}, text);
  ASSERT_EQ(rules.code, 0) << rules.err;
  const json by_rules = json::parse(rules.out);
  EXPECT_EQ(by_rules.at(1)["rule"], "check-open");
  EXPECT_EQ(by_rules.at(2)["tag"], "final_answer_emission");
  const CliRun bad = cli({"tag", "-", "--method", "llm"}, text);
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("--method must be learned or rules (got 'llm')"), std::string::npos) << bad.err;
}

TEST(Cli, MethodsListsRegistry) {
  const CliRun r = cli({"methods", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  bool found = false;
  for (const auto& m : json::parse(r.out)) found |= m["name"] == "resampling";
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace anchors
