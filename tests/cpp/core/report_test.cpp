// The HTML report: self-contained, every sentence on the page, the embedded
// JSON round-trips to the same result, no text can break out of the <script>
// element, odd results render, bad input is an anchors::Error. (That the page
// renders in a browser is tests/python/test_report.py, in headless Chromium.)
#include "anchors/core/report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>
#include <string>

#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/reference_import.h"
#include "anchors/core/segmentation.h"
#include "test_paths.h"

namespace anchors {
namespace {
using json = nlohmann::json;
namespace fs = std::filesystem;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string example_dir() { return testing::data_dir() + "/../../examples/data/problem_330"; }

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::size_t count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1)) ++n;
  return n;
}

// The text of <script type="application/json" id="ta-data">.
std::string data_text(const std::string& html) {
  const std::string open = "<script type=\"application/json\" id=\"ta-data\">";
  const auto begin = html.find(open);
  EXPECT_NE(begin, std::string::npos);
  const auto start = begin + open.size();
  const auto end = html.find("</script>", start);
  EXPECT_NE(end, std::string::npos);
  return html.substr(start, end - start);
}
json data_of(const std::string& html) { return json::parse(data_text(html)); }

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// A small result: three sentences (one with markup and quotes), a score
// series with a NaN, an S×S matrix with NaN cells, a non-square matrix.
AnalysisResult small_result() {
  AnalysisResult r;
  r.trace.text = "First we add <b>2 & 3</b>. Then \"check\" it's 5. The answer is \\boxed{5}.";
  r.trace.answer = "5";
  r.trace.prompt = "What is 2 + 3?";
  r.trace.metadata["problem_id"] = "problem_7";
  r.trace.sentences = split_sentences(r.trace.text, SegmentOptions{});
  EXPECT_EQ(r.trace.sentences.size(), 3u);
  r.trace.sentences[0].tags = {"active_computation"};
  r.trace.sentences[1].tags = {"self_checking", "my_own_tag"};
  Attribution a;
  a.method = "resampling";
  a.scores["counterfactual_importance_kl"] = {0.5, kNaN, 0.125};
  a.scores["accuracy"] = {1.0, 0.75, -0.25};
  Matrix m(3, 3);
  m(0, 1) = 0.25;
  m(0, 2) = -0.5;
  m(1, 2) = 1e-12;
  a.matrices["sentence_to_sentence"] = m;
  a.options["similarity_threshold"] = 0.8;
  a.metadata["note"] = std::string("a </script> in metadata");
  r.attributions.push_back(a);
  Attribution heads;
  heads.method = "receiver_heads";
  heads.scores["receiver_score"] = {0.1, 0.2, kNaN};
  heads.matrices["head_kurtosis"] = Matrix(2, 4, 1.5);
  heads.metadata["receiver_heads"] = std::string("1:0,1:3");
  r.attributions.push_back(heads);
  return r;
}

TEST(Report, IsSelfContained) {
  const AnalysisResult result = import_reference_folder(example_dir());
  const std::string html = render_report_html(result);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  // Nothing is loaded from elsewhere: no external scripts, styles, frames,
  // images or fonts, no fetches. The only "http" on the page is the SVG
  // namespace name, which the script passes to createElementNS (not a load).
  EXPECT_EQ(count(html, "http"), count(html, "\"http://www.w3.org/2000/svg\""));
  EXPECT_EQ(count(html, "\"http://www.w3.org/2000/svg\""), 1u);
  for (const char* needle : {"<link", "<iframe", "<img", "@import", "url(", "src=", "href=", "fetch(",
                             "XMLHttpRequest", "import(", "WebSocket", "//cdn", "fonts.g"})
    EXPECT_EQ(html.find(needle), std::string::npos) << needle;
  // One stylesheet, three scripts: the error capture, the data, the page script.
  EXPECT_EQ(count(html, "<style>"), 1u);
  EXPECT_EQ(count(html, "</style>"), 1u);
  EXPECT_EQ(count(html, "<script"), 3u);
  EXPECT_EQ(count(html, "</script>"), 3u);
}

TEST(Report, EverySentenceIsOnThePageEscaped) {
  for (const AnalysisResult& result : {import_reference_folder(example_dir()), small_result()}) {
    const std::string html = render_report_html(result);
    for (const auto& s : result.trace.sentences) {
      EXPECT_NE(html.find("data-i=\"" + std::to_string(s.index) + "\""), std::string::npos) << s.index;
      EXPECT_NE(html.find("<span class=\"sx\">" + escape(s.text) + "</span>"), std::string::npos) << s.text;
    }
    EXPECT_EQ(count(html, "<div class=\"s\" "), result.trace.sentences.size());
  }
  const std::string html = render_report_html(small_result());
  EXPECT_NE(html.find("First we add &lt;b&gt;2 &amp; 3&lt;/b&gt;."), std::string::npos);
  EXPECT_EQ(html.find("<b>2 & 3</b>"), std::string::npos);
  // Tags become chips; unknown tags keep their name.
  EXPECT_NE(html.find("class=\"chip tag-active_computation\""), std::string::npos);
  EXPECT_NE(html.find("class=\"chip tag-my_own_tag\" title=\"my own tag\">my own tag<"), std::string::npos);
}

TEST(Report, DataRoundTripsToTheResult) {
  for (const AnalysisResult& result : {import_reference_folder(example_dir()), small_result()}) {
    const json doc = data_of(render_report_html(result));
    EXPECT_EQ(doc.at("format"), "thought-anchors/report");
    EXPECT_EQ(result_from_json(doc.at("result").dump()), result);
    // Every score series and every matrix is there.
    std::size_t series = 0, matrices = 0;
    for (const auto& a : doc.at("result").at("attributions")) {
      series += a.at("scores").size();
      matrices += a.at("matrices").size();
    }
    std::size_t want_series = 0, want_matrices = 0;
    for (const auto& a : result.attributions) {
      want_series += a.scores.size();
      want_matrices += a.matrices.size();
    }
    EXPECT_EQ(series, want_series);
    EXPECT_EQ(matrices, want_matrices);
  }
  const AnalysisResult example = import_reference_folder(example_dir());
  const json doc = data_of(render_report_html(example));
  EXPECT_EQ(doc.at("result").at("attributions").size(), 2u);  // resampling + attention_suppression
}

TEST(Report, ScriptTextCannotBreakOut) {
  AnalysisResult r;
  r.trace.text = "Evil </script><script>alert(1)</script> here. Also <!-- a comment <script> start. "
                 "And </SCRIPT > too.";
  r.trace.sentences = split_sentences(r.trace.text, SegmentOptions{});
  r.trace.metadata["problem"] = "</script>";
  Attribution a;
  a.method = "m</script>";
  a.scores["s</script>"] = std::vector<double>(r.trace.sentences.size(), 1.0);
  r.attributions.push_back(a);
  ReportOptions options;
  options.title = "</title><script>alert(2)</script>";
  options.alternatives[0] = {"</script><script>alert(3)</script>"};
  const std::string html = render_report_html(r, options);
  const std::string blob = data_text(html);
  EXPECT_EQ(blob.find('<'), std::string::npos);
  // Still the whole document, with the exact texts.
  const json doc = json::parse(blob);
  EXPECT_EQ(result_from_json(doc.at("result").dump()), r);
  EXPECT_EQ(doc.at("title"), options.title);
  EXPECT_EQ(doc.at("alternatives").at("0").at("items").at(0).at(0), "</script><script>alert(3)</script>");
  // Exactly the page's own three script elements close; the texts are escaped.
  EXPECT_EQ(count(html, "</script>"), 3u);
  EXPECT_EQ(count(html, "<script"), 3u);
  EXPECT_NE(html.find("<title>&lt;/title&gt;&lt;script&gt;alert(2)&lt;/script&gt;</title>"), std::string::npos);
  EXPECT_NE(html.find("Evil &lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
}

TEST(Report, NaNScoresAndEmptyResultsRender) {
  AnalysisResult nan_result = small_result();
  for (auto& [name, values] : nan_result.attributions[0].scores) values.assign(values.size(), kNaN);
  const std::string html = render_report_html(nan_result);
  EXPECT_EQ(result_from_json(data_of(html).at("result").dump()), nan_result);

  AnalysisResult bare = small_result();
  bare.attributions.clear();
  const json doc = data_of(render_report_html(bare));
  EXPECT_EQ(doc.at("initial").at("method"), "");
  EXPECT_TRUE(doc.at("result").at("attributions").empty());

  AnalysisResult empty;  // no text, no sentences
  const std::string page = render_report_html(empty);
  EXPECT_NE(page.find("This trace has no sentences."), std::string::npos);
  EXPECT_EQ(page.find("Thought anchors \xe2\x80\x94"), std::string::npos);  // no problem id: plain title
}

TEST(Report, InitialSeriesAndOptions) {
  const AnalysisResult r = small_result();
  json doc = data_of(render_report_html(r));
  EXPECT_EQ(doc.at("initial"), json({{"method", "resampling"}, {"score", "counterfactual_importance_kl"}}));
  EXPECT_EQ(doc.at("title"), "Thought anchors \xe2\x80\x94 problem_7");
  EXPECT_EQ(doc.at("top_anchors"), 10);

  ReportOptions options;
  options.method = "receiver_heads";
  options.top_anchors = 3;
  options.max_links = 2;
  options.title = "Mine";
  doc = data_of(render_report_html(r, options));
  EXPECT_EQ(doc.at("initial"), json({{"method", "receiver_heads"}, {"score", "receiver_score"}}));
  EXPECT_EQ(doc.at("top_anchors"), 3);
  EXPECT_EQ(doc.at("max_links"), 2);
  EXPECT_EQ(doc.at("title"), "Mine");
  options = {};
  options.score = "accuracy";
  doc = data_of(render_report_html(r, options));
  EXPECT_EQ(doc.at("initial"), json({{"method", "resampling"}, {"score", "accuracy"}}));
}

TEST(Report, AlternativesAreCountedMostFrequentFirst) {
  ReportOptions options;
  options.alternatives[1] = {"b", "a", "b", "c", "a", "b", "d"};
  options.alternatives[2] = {};
  options.max_alternatives = 2;
  const json doc = data_of(render_report_html(small_result(), options));
  const json& alts = doc.at("alternatives");
  EXPECT_TRUE(doc.at("has_alternatives"));
  EXPECT_FALSE(alts.contains("0"));
  EXPECT_FALSE(alts.contains("2"));  // empty lists are left out
  EXPECT_EQ(alts.at("1").at("total"), 7);
  EXPECT_EQ(alts.at("1").at("distinct"), 4);
  EXPECT_EQ(alts.at("1").at("items"), json::parse(R"([["b", 3], ["a", 2]])"));
}

TEST(Report, BadInputIsAnError) {
  AnalysisResult bad = small_result();
  bad.attributions[0].scores["accuracy"].pop_back();
  EXPECT_THROW(render_report_html(bad), Error);

  ReportOptions options;
  options.alternatives[3] = {"past the end"};
  try {
    render_report_html(small_result(), options);
    FAIL() << "expected anchors::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sentence 3"), std::string::npos) << e.what();
  }
  options = {};
  options.score = "no_such_score";
  try {
    render_report_html(small_result(), options);
    FAIL() << "expected anchors::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("resampling.accuracy"), std::string::npos) << e.what();
  }
  options = {};
  options.method = "no_such_method";
  EXPECT_THROW(render_report_html(small_result(), options), Error);

  testing::ScratchDir scratch("report-bad");
  write_text(scratch.file("a_file"), "x");
  EXPECT_THROW(write_report_html(small_result(), scratch.file("a_file") + "/report.html"), Error);
  EXPECT_THROW(write_report_html(small_result(), ""), Error);
}

TEST(Report, WritesTheFileAtomically) {
  testing::ScratchDir scratch("report-write");
  const std::string path = scratch.file("sub/report.html");
  write_report_html(small_result(), path);
  EXPECT_EQ(read_text_file(path, kDataFileLimit), render_report_html(small_result()));
  for (const auto& entry : fs::directory_iterator(scratch.file("sub")))
    EXPECT_EQ(entry.path().filename(), "report.html");  // no temporary left behind
}

// ---- alternatives from the reference's chunks_resampled.json and from rollouts

TEST(ReportAlternatives, ReadsReferenceChunksResampled) {
  const AnalysisResult r = small_result();
  testing::ScratchDir scratch("report-ref");
  write_text(scratch.file("chunks_resampled.json"), R"({"0": ["x", "y", "x"], "2": ["z", null, ""]})");
  for (const std::string& path : {scratch.path(), scratch.file("chunks_resampled.json")}) {
    const SentenceAlternatives alts = read_reference_alternatives(path, r.trace);
    EXPECT_EQ(alts, (SentenceAlternatives{{0, {"x", "y", "x"}}, {2, {"z"}}}));
    EXPECT_EQ(read_alternatives(path, r.trace), alts);
  }
  const auto expect_error = [&](const std::string& text, const std::string& words) {
    write_text(scratch.file("chunks_resampled.json"), text);
    try {
      read_reference_alternatives(scratch.path(), r.trace);
      FAIL() << "expected anchors::Error for " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("chunks_resampled.json"), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"3": ["x"]})", "out of range");
  expect_error(R"({"one": ["x"]})", "not a chunk index");
  expect_error(R"({"-1": ["x"]})", "not a chunk index");
  expect_error(R"({"0": "x"})", "must be a list");
  expect_error(R"({"0": [1]})", "must be a string");
  expect_error(R"(["x"])", "expected an object");
  expect_error("{", "malformed JSON");
  EXPECT_THROW(read_reference_alternatives(scratch.file("missing.json"), r.trace), Error);
}

TEST(ReportAlternatives, ReadsRolloutFolders) {
  // Chunks: one short chunk the analysis drops, so chunk indices and sentence
  // indices differ; sentence 2 has no rollouts; one record is an error.
  testing::ScratchDir scratch("report-rollouts");
  const fs::path dir = fs::path(scratch.path()) / "correct_base_solution" / "problem_3";
  const std::string solution = "Sentence one is here. Sentence two is here. Sentence three is here.";
  write_text(dir / "problem.json", json{{"problem", "p"}, {"gt_answer", "1"}}.dump());
  write_text(dir / "base_solution.json", json{{"prompt", "P"}, {"solution", solution}, {"answer", "1"}}.dump());
  write_text(dir / "chunks.json",
             json{{"source_text", solution},
                  {"solution_text", solution},
                  {"chunks", {"Sentence one is here.", "Hm.", "Sentence two is here.", "Sentence three is here."}}}
                 .dump());
  const auto record = [](const std::string& resampled) {
    return json{{"chunk_removed", "x"}, {"chunk_resampled", resampled}, {"rollout", resampled}, {"answer", "1"}};
  };
  write_text(dir / "chunk_0" / "solutions.json",
             json::array({record("Alt A."), record("Alt B."), record("Alt A."), {{"error", "timeout"}}}).dump());
  write_text(dir / "chunk_1" / "solutions.json", json::array({record("Short alt.")}).dump());
  write_text(dir / "chunk_2" / "solutions.json", json::array({record("Two alt."), record("")}).dump());

  Trace trace;
  trace.text = solution;
  trace.sentences = split_sentences(solution, SegmentOptions{});
  ASSERT_EQ(trace.sentences.size(), 3u);
  const SentenceAlternatives want{{0, {"Alt A.", "Alt B.", "Alt A."}}, {1, {"Two alt."}}};
  EXPECT_EQ(read_rollout_alternatives(dir.string(), trace), want);
  EXPECT_EQ(read_alternatives(dir.string(), trace), want);

  Trace other;
  other.text = "Nothing in common here. Really nothing.";
  other.sentences = split_sentences(other.text, SegmentOptions{});
  EXPECT_THROW(read_rollout_alternatives(dir.string(), other), Error);
  EXPECT_THROW(read_alternatives(scratch.path(), trace), Error);  // neither layout
  EXPECT_THROW(read_alternatives(scratch.file("missing"), trace), Error);
}

TEST(ReportAlternatives, ReachThePage) {
  const AnalysisResult r = small_result();
  ReportOptions options;
  options.alternatives = {{0, {"Alt & <one>", "Alt & <one>"}}};
  const json doc = data_of(render_report_html(r, options));
  EXPECT_EQ(doc.at("alternatives").at("0").at("items"), json::parse(R"([["Alt & <one>", 2]])"));
}

}  // namespace
}  // namespace anchors
