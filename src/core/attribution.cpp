#include "anchors/core/attribution.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/utf8.h"
#include "anchors/version.h"
#include "json_fields.h"
#include "value_json.h"

namespace anchors {
using json = nlohmann::json;

namespace {

constexpr const char* kFormat = "thought-anchors/result";
constexpr int kFormatVersion = 1;

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

double number_from(const json& j, const std::string& where) {
  if (j.is_null()) return std::numeric_limits<double>::quiet_NaN();
  if (!j.is_number()) throw Error(fmt::format("{}: expected a number or null, got {}", where, j.type_name()));
  return j.get<double>();
}

json matrix_to_json(const Matrix& m) {
  json rows = json::array();
  for (std::size_t r = 0; r < m.rows; ++r) {
    json row = json::array();
    for (std::size_t c = 0; c < m.cols; ++c) row.push_back(number_or_null(m(r, c)));
    rows.push_back(std::move(row));
  }
  return json{{"rows", m.rows}, {"cols", m.cols}, {"data", std::move(rows)}};
}

Matrix matrix_from_json(const json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("rows") || !j.contains("cols") || !j.contains("data"))
    throw Error(fmt::format("{}: expected a matrix object with rows, cols and data", where));
  if (!j["rows"].is_number_unsigned() || !j["cols"].is_number_unsigned())
    throw Error(fmt::format("{}: rows and cols must be non-negative integers", where));
  const auto rows = j["rows"].get<std::size_t>(), cols = j["cols"].get<std::size_t>();
  const json& data = j["data"];
  if (!data.is_array() || data.size() != rows)
    throw Error(fmt::format("{}: data must be an array of {} rows", where, rows));
  // Every row is checked before the matrix is allocated: rows x cols is then
  // at most the number of values in the file, never a size the file merely claims.
  for (std::size_t r = 0; r < rows; ++r)
    if (!data[r].is_array() || data[r].size() != cols)
      throw Error(fmt::format("{}: row {} must have {} values", where, r, cols));
  Matrix m(rows, cols);
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t c = 0; c < cols; ++c)
      m(r, c) = number_from(data[r][c], fmt::format("{}[{}][{}]", where, r, c));
  }
  return m;
}

using json_fields::require;
using json_fields::require_index;
using json_fields::require_string;

// `offsets` is a cursor over the trace text, shared by all sentences so that
// converting the spans of a whole trace is one pass over the text.
json sentence_to_json(const Sentence& s, utf8::Cursor& offsets) {
  json j{{"index", s.index},
         {"text", s.text},
         {"char_start", offsets.codepoint_offset(s.chars.begin)},
         {"char_end", offsets.codepoint_offset(s.chars.end)},
         {"tags", s.tags}};
  if (s.tokens) {
    j["token_start"] = s.tokens->begin;
    j["token_end"] = s.tokens->end;
  }
  return j;
}

Sentence sentence_from_json(const json& j, utf8::Cursor& offsets, const std::string& where) {
  Sentence s;
  s.index = require_index(j, "index", where);
  s.text = require_string(j, "text", where);
  const std::size_t cp_start = require_index(j, "char_start", where);
  const std::size_t cp_end = require_index(j, "char_end", where);
  if (cp_end < cp_start) throw Error(fmt::format("{}: char_end {} < char_start {}", where, cp_end, cp_start));
  try {
    s.chars = {offsets.byte_offset(cp_start), offsets.byte_offset(cp_end)};
  } catch (const Error& e) {
    throw Error(fmt::format("{}: char span [{}, {}) is outside the trace text ({})", where, cp_start, cp_end, e.what()));
  }
  if (j.contains("token_start") || j.contains("token_end")) {
    const json& a = require(j, "token_start", where);
    const json& b = require(j, "token_end", where);
    if (!a.is_number_integer() || !b.is_number_integer())
      throw Error(fmt::format("{}: token_start/token_end must be integers", where));
    s.tokens = TokenSpan{a.get<std::int64_t>(), b.get<std::int64_t>()};
  }
  if (j.contains("tags")) {
    const json& tags = j["tags"];
    if (!tags.is_array()) throw Error(fmt::format("{}.tags: expected an array of strings", where));
    for (const json& t : tags) {
      if (!t.is_string()) throw Error(fmt::format("{}.tags: expected an array of strings", where));
      s.tags.push_back(t.get<std::string>());
    }
  }
  return s;
}

bool same_number(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }

bool same_values(const ValueMap& a, const ValueMap& b) {
  if (a.size() != b.size()) return false;
  for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib) {
    if (ia->first != ib->first || ia->second.index() != ib->second.index()) return false;
    if (std::holds_alternative<double>(ia->second)) {
      if (!same_number(std::get<double>(ia->second), std::get<double>(ib->second))) return false;
    } else if (ia->second != ib->second) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool Attribution::operator==(const Attribution& o) const {
  if (method != o.method || matrices != o.matrices || scores.size() != o.scores.size()) return false;
  for (auto ia = scores.begin(), ib = o.scores.begin(); ia != scores.end(); ++ia, ++ib) {
    if (ia->first != ib->first || ia->second.size() != ib->second.size()) return false;
    for (std::size_t k = 0; k < ia->second.size(); ++k)
      if (!same_number(ia->second[k], ib->second[k])) return false;
  }
  return same_values(options, o.options) && same_values(metadata, o.metadata);
}

const std::vector<double>& Attribution::score(const std::string& name) const {
  auto it = scores.find(name);
  if (it != scores.end()) return it->second;
  std::string available;
  for (const auto& [k, _] : scores) available += (available.empty() ? "" : ", ") + k;
  throw Error(fmt::format("attribution \"{}\" has no score \"{}\" (available: {})", method, name, available));
}

const Matrix& Attribution::matrix(const std::string& name) const {
  auto it = matrices.find(name);
  if (it != matrices.end()) return it->second;
  std::string available;
  for (const auto& [k, _] : matrices) available += (available.empty() ? "" : ", ") + k;
  throw Error(fmt::format("attribution \"{}\" has no matrix \"{}\" (available: {})", method, name, available));
}

const Attribution& AnalysisResult::attribution(const std::string& method) const {
  for (const auto& a : attributions)
    if (a.method == method) return a;
  throw Error(fmt::format("result has no attribution for method \"{}\"", method));
}

void AnalysisResult::set_attribution(Attribution a) {
  for (auto& existing : attributions) {
    if (existing.method == a.method) {
      existing = std::move(a);
      return;
    }
  }
  attributions.push_back(std::move(a));
}

void AnalysisResult::validate() const {
  trace.validate();
  const std::size_t n = trace.sentences.size();
  for (const auto& a : attributions) {
    for (const auto& [name, series] : a.scores) {
      if (series.size() != n)
        throw Error(fmt::format("attribution \"{}\": score \"{}\" has {} values for {} sentences",
                                a.method, name, series.size(), n));
    }
    for (const auto& [name, m] : a.matrices) {
      if (m.data.size() != m.rows * m.cols)
        throw Error(fmt::format("attribution \"{}\": matrix \"{}\" holds {} values, expected {}x{}",
                                a.method, name, m.data.size(), m.rows, m.cols));
    }
  }
}

std::string result_to_json(const AnalysisResult& result, int indent) {
  result.validate();
  const Trace& t = result.trace;
  json sentences = json::array();
  utf8::Cursor offsets(t.text);
  for (const auto& s : t.sentences) sentences.push_back(sentence_to_json(s, offsets));
  json metadata = json::object();
  for (const auto& [k, v] : t.metadata) metadata[k] = v;
  json attributions = json::array();
  for (const auto& a : result.attributions) {
    json scores = json::object();
    for (const auto& [name, series] : a.scores) {
      json values = json::array();
      for (double v : series) values.push_back(number_or_null(v));
      scores[name] = std::move(values);
    }
    json matrices = json::object();
    for (const auto& [name, m] : a.matrices) matrices[name] = matrix_to_json(m);
    attributions.push_back(json{{"method", a.method},
                                {"scores", std::move(scores)},
                                {"matrices", std::move(matrices)},
                                {"options", values_to_json(a.options)},
                                {"metadata", values_to_json(a.metadata)}});
  }
  json doc{{"format", kFormat},
           {"version", kFormatVersion},
           {"library_version", ANCHORS_VERSION},
           {"trace",
            {{"prompt", t.prompt},
             {"text", t.text},
             {"answer", t.answer},
             {"metadata", std::move(metadata)},
             {"sentences", std::move(sentences)}}},
           {"attributions", std::move(attributions)}};
  // Invalid UTF-8 in the trace is replaced rather than aborting the save.
  return doc.dump(indent, ' ', false, json::error_handler_t::replace);
}

AnalysisResult result_from_json(const std::string& json_text, const std::string& source) {
  const json doc = json_fields::parse(json_text, source);
  // find, not value("format", ""): value() throws nlohmann's type_error when
  // "format" holds something other than a string.
  const auto format = doc.is_object() ? doc.find("format") : doc.end();
  if (format == doc.end() || *format != kFormat)
    throw Error(fmt::format("{}: not a thought-anchors result (missing \"format\": \"{}\")", source, kFormat));
  const json& version = require(doc, "version", source);
  if (!version.is_number_integer() || version.get<int>() > kFormatVersion)
    throw Error(fmt::format("{}: unsupported result version {} (this library reads up to {})", source,
                            version.dump(), kFormatVersion));
  AnalysisResult result;
  const std::string tw = source + ": trace";
  const json& tj = require(doc, "trace", source);
  Trace& t = result.trace;
  t.prompt = require_string(tj, "prompt", tw);
  t.text = require_string(tj, "text", tw);
  t.answer = require_string(tj, "answer", tw);
  if (tj.contains("metadata")) {
    const json& m = tj["metadata"];
    if (!m.is_object()) throw Error(fmt::format("{}.metadata: expected an object", tw));
    for (const auto& [k, v] : m.items()) {
      if (!v.is_string()) throw Error(fmt::format("{}.metadata.{}: expected a string", tw, k));
      t.metadata[k] = v.get<std::string>();
    }
  }
  const json& sj = require(tj, "sentences", tw);
  if (!sj.is_array()) throw Error(fmt::format("{}.sentences: expected an array", tw));
  utf8::Cursor offsets(t.text);
  for (std::size_t i = 0; i < sj.size(); ++i)
    t.sentences.push_back(sentence_from_json(sj[i], offsets, fmt::format("{}.sentences[{}]", tw, i)));

  const json& aj = require(doc, "attributions", source);
  if (!aj.is_array()) throw Error(fmt::format("{}: attributions: expected an array", source));
  for (std::size_t i = 0; i < aj.size(); ++i) {
    const std::string where = fmt::format("{}: attributions[{}]", source, i);
    Attribution a;
    a.method = require_string(aj[i], "method", where);
    const json& scores = require(aj[i], "scores", where);
    if (!scores.is_object()) throw Error(fmt::format("{}.scores: expected an object", where));
    for (const auto& [name, values] : scores.items()) {
      if (!values.is_array()) throw Error(fmt::format("{}.scores.{}: expected an array", where, name));
      std::vector<double> series;
      for (std::size_t k = 0; k < values.size(); ++k)
        series.push_back(number_from(values[k], fmt::format("{}.scores.{}[{}]", where, name, k)));
      a.scores[name] = std::move(series);
    }
    if (aj[i].contains("matrices")) {
      const json& ms = aj[i]["matrices"];
      if (!ms.is_object()) throw Error(fmt::format("{}.matrices: expected an object", where));
      for (const auto& [name, m] : ms.items()) a.matrices[name] = matrix_from_json(m, where + ".matrices." + name);
    }
    if (aj[i].contains("options")) a.options = values_from_json(aj[i]["options"], where + ".options");
    if (aj[i].contains("metadata")) a.metadata = values_from_json(aj[i]["metadata"], where + ".metadata");
    result.attributions.push_back(std::move(a));
  }
  try {
    result.validate();
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", source, e.what()));
  }
  return result;
}

void save_result(const AnalysisResult& result, const std::string& path) {
  write_file_atomic(path, result_to_json(result));
}

AnalysisResult load_result(const std::string& path) {
  return result_from_json(read_text_file(path, kDataFileLimit), path);
}

}  // namespace anchors
