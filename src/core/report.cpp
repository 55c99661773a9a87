#include "anchors/core/report.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/methods/registry.h"
#include "anchors/version.h"
#include "json_fields.h"
// kCss and kScript: the bytes of src/core/report/report.css and report.js,
// generated into the build tree by cmake/EmbedText.cmake. The script reads the
// JSON document in <script id="ta-data"> and draws the page (sentence colours,
// series switch, top anchors, score profile, heatmaps, receiver-head chart,
// detail panel, methods table); when done it sets data-rendered="ok" on <body>
// (and data-sentences, data-matrices, data-charts, data-selected,
// data-alternatives). Neither file may contain "</" (they sit inside <style>
// and <script>): the generator refuses it, and report_test.cpp checks the page.
#include "html_escape.h"
#include "report_assets.h"

namespace anchors {
namespace {
using json = nlohmann::json;
namespace fs = std::filesystem;

using detail::html_escape;

// Short chip labels of the function tags of docs/design.md §3; other tags show
// their name with spaces for underscores.
const std::map<std::string, std::string>& tag_labels() {
  static const std::map<std::string, std::string> labels = {
      {"problem_setup", "setup"},          {"plan_generation", "plan"},
      {"fact_retrieval", "fact"},          {"active_computation", "compute"},
      {"result_consolidation", "consolidate"}, {"uncertainty_management", "uncertainty"},
      {"self_checking", "check"},          {"final_answer_emission", "answer"},
      {"unknown", "unknown"}};
  return labels;
}

std::string tag_label(const std::string& tag) {
  const auto it = tag_labels().find(tag);
  if (it != tag_labels().end()) return it->second;
  std::string out = tag;
  std::replace(out.begin(), out.end(), '_', ' ');
  return out;
}

// CSS class of a tag: only [A-Za-z0-9_-] survive (the script does the same).
std::string tag_class(const std::string& tag) {
  std::string out = "tag-";
  for (char c : tag)
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-') out += c;
  return out;
}

std::string chip_html(const std::string& tag) {
  std::string pretty = tag;
  std::replace(pretty.begin(), pretty.end(), '_', ' ');
  return fmt::format("<span class=\"chip {}\" title=\"{}\">{}</span>", tag_class(tag), html_escape(pretty),
                     html_escape(tag_label(tag)));
}

// {"i": {"total": n, "distinct": d, "items": [[text, count], ...]}}: the most
// frequent alternatives first (ties: first seen first).
json alternatives_json(const SentenceAlternatives& alternatives, std::size_t num_sentences, std::size_t max_items) {
  json out = json::object();
  for (const auto& [index, list] : alternatives) {
    if (index >= num_sentences)
      throw Error(fmt::format("report: alternatives given for sentence {}, but the trace has {} sentences", index,
                              num_sentences));
    if (list.empty()) continue;
    std::vector<std::pair<std::string, std::size_t>> counts;
    std::unordered_map<std::string, std::size_t> position;
    for (const auto& text : list) {
      const auto [it, inserted] = position.emplace(text, counts.size());
      if (inserted) counts.emplace_back(text, 0);
      ++counts[it->second].second;
    }
    std::stable_sort(counts.begin(), counts.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    json items = json::array();
    for (std::size_t k = 0; k < counts.size() && k < max_items; ++k)
      items.push_back(json::array({counts[k].first, counts[k].second}));
    out[std::to_string(index)] = {{"total", list.size()}, {"distinct", counts.size()}, {"items", std::move(items)}};
  }
  return out;
}

// The JSON document for the script; every '<' becomes \u003c (only possible
// inside JSON strings), so no text can end the <script> element early.
std::string data_blob(const AnalysisResult& result, const ReportOptions& options, const std::string& title,
                      const std::pair<std::string, std::string>& initial) {
  json labels = json::object();
  for (const auto& [tag, label] : tag_labels()) labels[tag] = label;
  json doc{{"format", "thought-anchors/report"},
           {"version", 1},
           {"library_version", ANCHORS_VERSION},
           {"title", title},
           {"initial", {{"method", initial.first}, {"score", initial.second}}},
           {"top_anchors", options.top_anchors},
           {"max_links", options.max_links},
           {"tag_labels", std::move(labels)},
           {"has_alternatives", !options.alternatives.empty()},
           {"alternatives",
            alternatives_json(options.alternatives, result.trace.sentences.size(), options.max_alternatives)},
           {"result", json_fields::parse(result_to_json(result, -1), "<result>")}};
  const std::string text = doc.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string out;
  out.reserve(text.size() + 64);
  for (char c : text) {
    if (c == '<')
      out += "\\u003c";
    else
      out += c;
  }
  return out;
}

std::string metadata_value(const Trace& trace, const char* key) {
  const auto it = trace.metadata.find(key);
  return it == trace.metadata.end() ? std::string() : it->second;
}

void append_header(std::string& out, const AnalysisResult& result, const std::string& title) {
  const Trace& trace = result.trace;
  out += "<header class=\"ta-head\">\n<h1>" + html_escape(title) + "</h1>\n<div class=\"ta-facts\">";
  for (const char* key : {"problem_id", "nickname", "level", "type", "model"}) {
    const std::string value = metadata_value(trace, key);
    if (!value.empty())
      out += fmt::format("<span>{} <b>{}</b></span>", key == std::string("problem_id") ? "problem" : key,
                         html_escape(value));
  }
  if (!trace.answer.empty()) out += "<span>answer <b><code>" + html_escape(trace.answer) + "</code></b></span>";
  if (const std::string gt = metadata_value(trace, "gt_answer"); !gt.empty())
    out += "<span>ground truth <b><code>" + html_escape(gt) + "</code></b></span>";
  if (const std::string ok = metadata_value(trace, "is_correct"); ok == "true" || ok == "false")
    out += ok == "true" ? "<span class=\"badge ok\">correct</span>" : "<span class=\"badge bad\">incorrect</span>";
  out += fmt::format("<span><b>{}</b> sentences</span>", trace.sentences.size());
  std::string methods;
  for (const auto& a : result.attributions) methods += (methods.empty() ? "" : ", ") + html_escape(a.method);
  out += "<span>methods <b>" + (methods.empty() ? std::string("none") : methods) + "</b></span></div>\n";
  if (const std::string problem = metadata_value(trace, "problem"); !problem.empty())
    out += "<div class=\"ta-problem\"><span class=\"lbl\">Problem</span>" + html_escape(problem) + "</div>\n";
  if (!trace.prompt.empty())
    out += "<details class=\"ta-prompt\"><summary>Prompt</summary><pre>" + html_escape(trace.prompt) +
           "</pre></details>\n";
  out += "</header>\n";
}

void append_trace(std::string& out, const Trace& trace) {
  // Tag legend: every tag in order of first use, with its count.
  std::vector<std::pair<std::string, std::size_t>> tags;
  for (const auto& s : trace.sentences)
    for (const auto& t : s.tags) {
      auto it = std::find_if(tags.begin(), tags.end(), [&](const auto& p) { return p.first == t; });
      if (it == tags.end())
        tags.emplace_back(t, 1);
      else
        ++it->second;
    }
  out += fmt::format("<section class=\"ta-card\"><h2>Chain of thought<span class=\"sub\">{} sentences</span></h2>\n",
                     trace.sentences.size());
  if (!tags.empty()) {
    out += "<div class=\"tag-legend\" id=\"ta-tag-legend\">";
    for (const auto& [tag, count] : tags) {
      std::string pretty = tag;
      std::replace(pretty.begin(), pretty.end(), '_', ' ');
      out += fmt::format("<span class=\"item\">{} {} ({})</span>", chip_html(tag), html_escape(pretty), count);
    }
    out += "</div>\n";
  }
  out += "<div class=\"ta-trace\" id=\"ta-trace\">\n";
  for (const auto& s : trace.sentences) {
    out += fmt::format("<div class=\"s\" id=\"s{0}\" data-i=\"{0}\"><span class=\"si\">{0}</span><span class=\"st\">",
                       s.index);
    for (const auto& t : s.tags) out += chip_html(t);
    out += "</span><span class=\"sx\">" + html_escape(s.text) + "</span></div>\n";
  }
  if (trace.sentences.empty()) out += "<p class=\"muted\">This trace has no sentences.</p>\n";
  out += "</div></section>\n";
}

// Runs before anything else: records script errors on <body> for tests and
// for anyone opening the developer tools.
constexpr const char* kErrorCapture =
    "window.__taErrors=[];"
    "window.onerror=function(m,s,l,c){window.__taErrors.push(String(m)+(l?' (line '+l+':'+c+')':''));"
    "if(document.body){document.body.setAttribute('data-errors',window.__taErrors.join(' | '));"
    "if(document.body.getAttribute('data-rendered')!=='ok')document.body.setAttribute('data-rendered','error');}};"
    "window.addEventListener('unhandledrejection',function(e){window.onerror('unhandled rejection: '+e.reason);});";

}  // namespace

std::string render_report_html(const AnalysisResult& result, const ReportOptions& options) {
  result.validate();
  const auto initial = choose_score(result, options.method, options.score);
  std::string title = options.title;
  if (title.empty()) {
    const std::string id = metadata_value(result.trace, "problem_id");
    title = id.empty() ? "Thought anchors" : "Thought anchors \xe2\x80\x94 " + id;
  }
  const std::string blob = data_blob(result, options, title, initial);

  std::string out;
  out.reserve(blob.size() + 64 * 1024 + result.trace.text.size() * 2);
  out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         "<meta name=\"generator\" content=\"thought-anchors " ANCHORS_VERSION "\">\n<title>" +
         html_escape(title) + "</title>\n<style>\n";
  out += report_assets::kCss;
  out += "</style>\n<script>";
  out += kErrorCapture;
  out += "</script>\n</head>\n<body>\n<div class=\"ta\">\n";
  append_header(out, result, title);
  out +=
      "<div class=\"ta-controls\"><label>Colour by <select id=\"ta-series\" aria-label=\"score series\"></select>"
      "</label><span id=\"ta-legend\"></span><label><input type=\"checkbox\" id=\"ta-flow\"> paragraph view</label>"
      "<span class=\"ta-hint\">hover a sentence for its details \xc2\xb7 click to pin \xc2\xb7 \xe2\x86\x91/\xe2\x86\x93 to "
      "step</span></div>\n<main class=\"ta-main\">\n<div>\n";
  append_trace(out, result.trace);
  out += "</div>\n<aside class=\"ta-side\">\n"
         "<section class=\"ta-card\" id=\"ta-detail\"><p class=\"muted\">Select a sentence.</p></section>\n"
         "<section class=\"ta-card\"><h2>Top anchors<span class=\"sub\" id=\"ta-top-sub\"></span></h2>"
         "<ol class=\"top\" id=\"ta-top\"></ol></section>\n</aside>\n</main>\n"
         "<section class=\"ta-card\"><h2>Score profile<span class=\"sub\" id=\"ta-profile-sub\"></span></h2>"
         "<div id=\"ta-profile\"></div></section>\n"
         "<div id=\"ta-receiver\"></div>\n"
         "<section class=\"ta-card\"><h2>Matrices<span class=\"sub\" id=\"ta-matrices-sub\"></span></h2>"
         "<div class=\"ta-grid\" id=\"ta-matrices\"></div></section>\n"
         "<section class=\"ta-card\"><h2>Methods</h2><div class=\"methods\" id=\"ta-methods\"></div></section>\n"
         "<footer>thought-anchors " ANCHORS_VERSION
         " \xc2\xb7 a self-contained report: everything it shows is in this file, and it loads nothing from the "
         "network.</footer>\n</div>\n<script type=\"application/json\" id=\"ta-data\">";
  out += blob;
  out += "</script>\n<script>\n";
  out += report_assets::kScript;
  out += "</script>\n</body>\n</html>\n";
  return out;
}

void write_report_html(const AnalysisResult& result, const std::string& path, const ReportOptions& options) {
  if (path.empty()) throw Error("report: empty output path");
  write_file_atomic(path, render_report_html(result, options));
}

// ---------------------------------------------------------------- alternatives

SentenceAlternatives alternatives_from_rollouts(const ProblemRollouts& rollouts, const Trace& trace) {
  SentenceAlternatives out;
  std::size_t next = 0, matched = 0;
  for (const Sentence& s : trace.sentences) {
    std::size_t j = next;
    while (j < rollouts.chunks.size() && rollouts.chunks[j] != s.text) ++j;
    if (j == rollouts.chunks.size()) continue;  // not analysed there: no alternatives
    ++matched;
    next = j + 1;
    if (j >= rollouts.resampled.size() || !rollouts.resampled[j].present) continue;
    std::vector<std::string> texts;
    for (const Rollout& r : rollouts.resampled[j].rollouts)
      if (!r.chunk_resampled.empty()) texts.push_back(r.chunk_resampled);
    if (!texts.empty()) out[s.index] = std::move(texts);
  }
  if (matched == 0 && !trace.sentences.empty())
    throw Error(fmt::format("{}: none of the trace's {} sentences is among the {} chunks of chunks.json "
                            "(rollouts of another trace?)",
                            rollouts.problem_dir, trace.sentences.size(), rollouts.chunks.size()));
  return out;
}

SentenceAlternatives read_rollout_alternatives(const std::string& problem_dir, const Trace& trace) {
  ReadRolloutsOptions options;
  options.read_forced = false;
  return alternatives_from_rollouts(read_problem_rollouts(problem_dir, options), trace);
}

SentenceAlternatives read_reference_alternatives(const std::string& path, const Trace& trace) {
  const std::string file =
      directory_exists(path) ? (fs::path(path) / "chunks_resampled.json").string() : path;
  if (!file_exists(file)) throw Error(fmt::format("{}: no such file", file));
  const json doc = json_fields::read_file(file, kDataFileLimit);
  if (!doc.is_object())
    throw Error(fmt::format("{}: expected an object {{\"chunk_idx\": [sentence, ...]}}, got {}", file, doc.type_name()));
  SentenceAlternatives out;
  for (const auto& [key, list] : doc.items()) {
    const bool digits = !key.empty() && key.size() < 10 &&
                        std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits) throw Error(fmt::format("{}: key \"{}\" is not a chunk index", file, key));
    const std::size_t index = std::stoul(key);
    if (index >= trace.sentences.size())
      throw Error(fmt::format("{}: chunk index {} is out of range for a trace of {} sentences", file, index,
                              trace.sentences.size()));
    if (!list.is_array()) throw Error(fmt::format("{}: entry \"{}\" must be a list of sentences, got {}", file, key,
                                                  list.type_name()));
    std::vector<std::string> texts;
    for (std::size_t k = 0; k < list.size(); ++k) {
      if (list[k].is_null()) continue;
      if (!list[k].is_string())
        throw Error(fmt::format("{}: entry \"{}\"[{}] must be a string, got {}", file, key, k, list[k].type_name()));
      if (!list[k].get_ref<const std::string&>().empty()) texts.push_back(list[k].get<std::string>());
    }
    if (!texts.empty()) out[index] = std::move(texts);
  }
  return out;
}

SentenceAlternatives read_alternatives(const std::string& path, const Trace& trace) {
  if (file_exists(path) && !directory_exists(path)) return read_reference_alternatives(path, trace);
  if (!directory_exists(path)) throw Error(fmt::format("{}: no such file or directory", path));
  const fs::path dir(path);
  if (file_exists((dir / "chunks_resampled.json").string())) return read_reference_alternatives(path, trace);
  if (file_exists((dir / "chunks.json").string())) return read_rollout_alternatives(path, trace);
  throw Error(fmt::format("{}: neither a reference folder (chunks_resampled.json) nor a rollout folder (chunks.json)",
                          path));
}

}  // namespace anchors
