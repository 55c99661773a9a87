#include "anchors/core/reference_schema.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <numeric>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "json_fields.h"
#include "python_literals.h"

namespace anchors {
namespace fs = std::filesystem;
// ordered_json keeps keys in insertion order: the reference files list keys in
// a fixed, meaningful order that a sorted map would scramble.
using Json = nlohmann::ordered_json;

const std::vector<LabeledChunkMetric>& labeled_chunk_metrics() {
  static const std::vector<LabeledChunkMetric> fields = {
      {"accuracy", &LabeledChunk::accuracy},
      {"resampling_importance_accuracy", &LabeledChunk::resampling_importance_accuracy},
      {"resampling_importance_kl", &LabeledChunk::resampling_importance_kl},
      {"counterfactual_importance_accuracy", &LabeledChunk::counterfactual_importance_accuracy},
      {"counterfactual_importance_kl", &LabeledChunk::counterfactual_importance_kl},
      {"forced_importance_accuracy", &LabeledChunk::forced_importance_accuracy},
      {"forced_importance_kl", &LabeledChunk::forced_importance_kl},
      {"different_trajectories_fraction", &LabeledChunk::different_trajectories_fraction},
      {"overdeterminedness", &LabeledChunk::overdeterminedness},
  };
  return fields;
}

const std::vector<ScenarioMetricKey>& scenario_metric_keys() {
  static const std::vector<ScenarioMetricKey> keys = {
      {"blackmail_rate", "accuracy"},
      {"resampling_importance_blackmail_rate", "resampling_importance_accuracy"},
      {"counterfactual_importance_blackmail_rate", "counterfactual_importance_accuracy"},
      {"forced_importance_blackmail_rate", "forced_importance_accuracy"},
      {"counterfactual_plusplus_importance_blackmail_rate", "counterfactual_plusplus_importance"},
      {"whistleblowing_rate", "accuracy"},
      {"resampling_importance_whistleblowing_rate", "resampling_importance_accuracy"},
      {"counterfactual_importance_whistleblowing_rate", "counterfactual_importance_accuracy"},
      {"forced_importance_whistleblowing_rate", "forced_importance_accuracy"},
      {"counterfactual_plusplus_importance_whistleblowing_rate", "counterfactual_plusplus_importance"},
      {"counterfactual_plusplus_importance", "counterfactual_plusplus_importance"},
      {"counterfactual_importance_cfpp", "counterfactual_plusplus_importance"},
      {"cfpp_importance", "counterfactual_plusplus_importance"},
      {"semantic_entropy", "semantic_entropy"},
  };
  return keys;
}

namespace {

// ---------------------------------------------------------------------------
// Parsing helpers; `where` names the file and the place in it.
// ---------------------------------------------------------------------------

Json parse(const std::string& text, const std::string& source) { return json_fields::parse<Json>(text, source); }

[[noreturn]] void bad(const std::string& where, const std::string& problem) {
  throw Error(fmt::format("{}: {}", where, problem));
}

using json_fields::as_index;
using json_fields::as_string;
using json_fields::require;
double as_double(const Json& value, const std::string& where, const char* key) {
  return json_fields::as_number(value, where, key);
}

// JSON quoting for error messages, cut to a readable length.
std::string quoted(const std::string& text) {
  const std::string shown = text.size() > 80 ? text.substr(0, 77) + "..." : text;
  return Json(shown).dump(-1, ' ', true, Json::error_handler_t::replace);
}

// A metric of a chunks_labeled.json entry: a JSON number, or a string holding
// one (the web app's string-typed files). nullopt for a string without a
// value ("None", "nan", ...), which the caller keeps verbatim.
std::optional<double> metric_value(const Json& value, const std::string& where, const char* key) {
  if (!value.is_string()) return as_double(value, where, key);
  const auto parsed = python_literals::parse_float(value.get_ref<const std::string&>());
  switch (parsed.kind) {
    case python_literals::FloatKind::kNumber: return parsed.value;
    case python_literals::FloatKind::kNoValue: return std::nullopt;
    case python_literals::FloatKind::kInvalid: break;
  }
  bad(where, fmt::format("field \"{}\" must be a number (or a string holding one), got the string {}", key,
                         quoted(value.get<std::string>())));
}

// chunk_idx: a non-negative integer, or a string of decimal digits.
std::size_t chunk_index(const Json& value, const std::string& where) {
  if (!value.is_string()) return as_index(value, where, "chunk_idx");
  const std::string& text = value.get_ref<const std::string&>();
  std::size_t out = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size())
    bad(where, fmt::format("field \"chunk_idx\" must be a non-negative integer (or a string of digits), got the "
                           "string {}",
                           quoted(text)));
  return out;
}

void require_object(const Json& value, const std::string& where) {
  if (!value.is_object()) bad(where, fmt::format("expected a JSON object, got {}", value.type_name()));
}

void require_array(const Json& value, const std::string& where) {
  if (!value.is_array()) bad(where, fmt::format("expected a JSON list, got {}", value.type_name()));
}

std::vector<std::string> as_string_list(const Json& value, const std::string& where, const char* key,
                                        bool accept_integers) {
  if (value.is_string()) {
    // The web app's string-typed files: a Python list literal, or a bare
    // string standing for itself (the authors' labeller wraps a bare tag in a
    // list: analyze_rollouts.py).
    const std::string& text = value.get_ref<const std::string&>();
    const std::size_t first = text.find_first_not_of(" \t\n\r\f\v");
    if (first == std::string::npos) return {};
    if (text[first] != '[') return {text};
    std::string why;
    auto items = python_literals::parse_list(text, accept_integers, why);
    if (!items)
      bad(where, fmt::format("field \"{}\" holds the string {}, which is not a Python list of {}: {}", key,
                             quoted(text), accept_integers ? "strings or integers" : "strings", why));
    return std::move(*items);
  }
  if (!value.is_array()) {
    bad(where, fmt::format("field \"{}\" must be a list of strings, got {}", key, value.type_name()));
  }
  std::vector<std::string> out;
  for (const Json& item : value) {
    if (item.is_string()) {
      out.push_back(item.get<std::string>());
    } else if (accept_integers && item.is_number_integer()) {
      // Some labelers emit depends_on as numbers; the reference uses strings.
      out.push_back(item.dump());
    } else {
      bad(where, fmt::format("field \"{}\" must hold strings, got {}", key, item.type_name()));
    }
  }
  return out;
}

// The reference key order of a chunks_labeled.json entry.
const std::vector<std::string>& canonical_chunk_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k = {"chunk", "chunk_idx", "function_tags", "depends_on"};
    for (const auto& f : labeled_chunk_metrics()) k.emplace_back(f.key);
    k.emplace_back("summary");
    return k;
  }();
  return keys;
}

LabeledChunk labeled_chunk_from_json(const Json& object, const std::string& where) {
  require_object(object, where);
  LabeledChunk c;
  c.chunk = as_string(require(object, "chunk", where), where, "chunk");
  c.chunk_idx = chunk_index(require(object, "chunk_idx", where), where);
  for (const auto& item : object.items()) {
    // Named references, not a structured binding: the lambda below captures
    // `key`, which clang before 16 refuses for bindings (the fuzz build).
    const std::string& key = item.key();
    const Json& value = item.value();
    c.key_order.push_back(key);
    if (key == "chunk" || key == "chunk_idx") continue;
    // A known key holding null has no typed value: keep it verbatim.
    if (value.is_null()) {
      c.extra.emplace_back(key, value.dump());
      continue;
    }
    if (key == "function_tags") {
      c.function_tags = as_string_list(value, where, "function_tags", false);
    } else if (key == "depends_on") {
      c.depends_on = as_string_list(value, where, "depends_on", true);
    } else if (key == "summary") {
      c.summary = as_string(value, where, "summary");
    } else {
      const auto field = std::find_if(labeled_chunk_metrics().begin(), labeled_chunk_metrics().end(),
                                      [&](const LabeledChunkMetric& f) { return key == f.key; });
      const auto scenario = std::find_if(scenario_metric_keys().begin(), scenario_metric_keys().end(),
                                         [&](const ScenarioMetricKey& f) { return key == f.key; });
      std::optional<double> number;
      if (field != labeled_chunk_metrics().end()) {
        number = metric_value(value, where, field->key);
        if (number) c.*(field->member) = *number;
      } else if (scenario != scenario_metric_keys().end()) {
        number = metric_value(value, where, scenario->key);
        if (number) c.scenario_metrics.emplace_back(key, *number);
      }
      // Unknown keys, and strings that hold no value ("None", "nan"): verbatim.
      if (!number) c.extra.emplace_back(key, value.dump());
    }
  }
  return c;
}

Json labeled_chunk_to_json(const LabeledChunk& c) {
  // Value of one known key, or nullopt when the chunk has none to write.
  const auto known = [&](const std::string& key) -> std::optional<Json> {
    if (key == "chunk") return Json(c.chunk);
    if (key == "chunk_idx") return Json(c.chunk_idx);
    if (key == "function_tags") return Json(c.function_tags);
    if (key == "depends_on") return Json(c.depends_on);
    if (key == "summary") return Json(c.summary);
    for (const auto& f : labeled_chunk_metrics()) {
      if (key == f.key) {
        const auto& value = c.*(f.member);
        if (value) return Json(*value);
        return std::nullopt;
      }
    }
    for (const auto& [k, value] : c.scenario_metrics) {
      if (k == key) return Json(value);
    }
    return std::nullopt;
  };
  const auto extra_value = [&](const std::string& key) -> std::optional<Json> {
    for (const auto& [k, text] : c.extra) {
      if (k == key) return Json::parse(text);
    }
    return std::nullopt;
  };
  Json out = Json::object();
  const auto emit = [&](const std::string& key) {
    if (out.contains(key)) return;
    if (auto v = extra_value(key)) {
      out[key] = std::move(*v);
    } else if (auto k = known(key)) {
      out[key] = std::move(*k);
    }
  };
  for (const auto& key : c.key_order) emit(key);
  // Keys not in key_order: the reference's fields first, then extras. A chunk
  // that was read keeps its set of fields; a new one gets all of them.
  for (const auto& key : canonical_chunk_keys()) {
    const bool is_metric = std::any_of(labeled_chunk_metrics().begin(), labeled_chunk_metrics().end(),
                                       [&](const LabeledChunkMetric& f) { return key == f.key; });
    const bool has_content = (key == "function_tags" && !c.function_tags.empty()) ||
                             (key == "depends_on" && !c.depends_on.empty()) ||
                             (key == "summary" && !c.summary.empty());
    if (c.key_order.empty() || is_metric || has_content || key == "chunk" || key == "chunk_idx") {
      emit(key);
    }
  }
  for (const auto& [key, value] : c.scenario_metrics) emit(key);
  for (const auto& [key, text] : c.extra) emit(key);
  return out;
}

// repr() of a Python float: the shortest digits that round-trip, fixed
// notation for decimal exponents in (-4, 16], else d.ddde±XX. (nlohmann's
// Grisu2 output is not always the shortest, e.g. -0.016288659793814442 for
// Python's -0.01628865979381444.) Non-finite values have no JSON form: null.
std::string python_float_repr(double x) {
  if (!std::isfinite(x)) return "null";
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), x, std::chars_format::scientific);
  const std::string sci(buffer, result.ptr);  // e.g. "-1.628865979381444e-02"
  const std::size_t e = sci.find('e');
  std::string mantissa = sci.substr(0, e);
  const int exponent = std::stoi(sci.substr(e + 1));
  std::string sign;
  if (!mantissa.empty() && mantissa[0] == '-') {
    sign = "-";
    mantissa.erase(0, 1);
  }
  std::string digits;
  for (const char c : mantissa) {
    if (c != '.') digits.push_back(c);
  }
  const int decpt = exponent + 1;  // digits d1d2... mean 0.d1d2... x 10^decpt
  const int n = static_cast<int>(digits.size());
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) return sign + "0." + std::string(static_cast<std::size_t>(-decpt), '0') + digits;
    if (decpt >= n) return sign + digits + std::string(static_cast<std::size_t>(decpt - n), '0') + ".0";
    return sign + digits.substr(0, static_cast<std::size_t>(decpt)) + "." + digits.substr(static_cast<std::size_t>(decpt));
  }
  std::string out = sign + digits.substr(0, 1);
  if (n > 1) out += "." + digits.substr(1);
  const int magnitude = std::abs(exponent);
  out += exponent < 0 ? "e-" : "e+";
  if (magnitude < 10) out += "0";
  return out + std::to_string(magnitude);
}

// Python's json.dump(obj, indent=2) with its default ensure_ascii=True, so the
// files we write are byte-identical to the reference's for the same content.
void dump_python(const Json& value, std::size_t depth, std::string& out) {
  const auto newline = [&](std::size_t level) {
    out.push_back('\n');
    out.append(2 * level, ' ');
  };
  switch (value.type()) {
    case Json::value_t::number_float:
      out += python_float_repr(value.get<double>());
      return;
    case Json::value_t::string:
      // Same escapes as Python: \" \\ \n \r \t \b \f, \u00XX for other control
      // characters and DEL, \uXXXX (surrogate pairs) for non-ASCII.
      out += value.dump(-1, ' ', true, Json::error_handler_t::replace);
      return;
    case Json::value_t::array: {
      if (value.empty()) {
        out += "[]";
        return;
      }
      out.push_back('[');
      bool first = true;
      for (const Json& item : value) {
        if (!first) out.push_back(',');
        first = false;
        newline(depth + 1);
        dump_python(item, depth + 1, out);
      }
      newline(depth);
      out.push_back(']');
      return;
    }
    case Json::value_t::object: {
      if (value.empty()) {
        out += "{}";
        return;
      }
      out.push_back('{');
      bool first = true;
      for (const auto& [key, item] : value.items()) {
        if (!first) out.push_back(',');
        first = false;
        newline(depth + 1);
        out += Json(key).dump(-1, ' ', true, Json::error_handler_t::replace);
        out += ": ";
        dump_python(item, depth + 1, out);
      }
      newline(depth);
      out.push_back('}');
      return;
    }
    default:  // null, booleans, integers: the same text in both
      out += value.dump();
      return;
  }
}

std::string dump(const Json& doc) {
  std::string out;
  dump_python(doc, 0, out);
  return out;
}

// numpy's pairwise summation (pairwise_sum in numpy/_core/src/umath/loops_utils.h):
// exact summation order of np.sum / np.mean on float64, so summaries computed
// here equal the reference's to the last bit.
double pairwise_sum(const double* a, std::size_t n, std::size_t stride) {
  if (n < 8) {
    double res = 0.0;
    for (std::size_t i = 0; i < n; ++i) res += a[i * stride];
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (std::size_t j = 0; j < 8; ++j) r[j] = a[j * stride];
    std::size_t i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (std::size_t j = 0; j < 8; ++j) r[j] += a[(i + j) * stride];
    }
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i * stride];
    return res;
  }
  std::size_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2, stride) + pairwise_sum(a + n2 * stride, n - n2, stride);
}

// np.sum of a 1-D view: numpy's iterator hands the loop at most 8192 elements
// (its buffer size) at a time and accumulates the blocks in order.
double numpy_sum(const double* a, std::size_t n, std::size_t stride) {
  constexpr std::size_t kBlock = 8192;
  double sum = 0.0;
  for (std::size_t start = 0; start < n; start += kBlock) {
    sum += pairwise_sum(a + start * stride, std::min(kBlock, n - start), stride);
  }
  return sum;
}

std::vector<InfluentialStep> top_steps(const std::vector<double>& values, const StepImportance& rows,
                                       const std::map<std::size_t, const LabeledChunk*>& by_idx,
                                       std::size_t count) {
  // np.argsort(values)[::-1]: largest first; equal values, later step first.
  std::vector<std::size_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return values[a] < values[b]; });
  std::reverse(order.begin(), order.end());
  std::vector<InfluentialStep> out;
  for (std::size_t k = 0; k < order.size() && k < count; ++k) {
    const std::size_t p = order[k];
    if (!(values[p] > 0.0)) continue;
    const std::size_t idx = rows[p].source_chunk_idx;
    const auto it = by_idx.find(idx);
    if (it == by_idx.end()) {
      throw Error(fmt::format("summary: no labeled chunk with chunk_idx {} for step {}", idx, idx));
    }
    out.push_back(InfluentialStep{idx, *it->second, values[p]});
  }
  return out;
}

Json influential_to_json(const InfluentialStep& s, const char* value_key) {
  Json out = Json::object();
  out["step_idx"] = s.step_idx;
  out["step_text"] = labeled_chunk_to_json(s.step_text);
  out[value_key] = s.avg_importance;
  return out;
}

std::vector<InfluentialStep> influential_from_json(const Json& list, const char* value_key,
                                                   const std::string& where) {
  require_array(list, where);
  std::vector<InfluentialStep> out;
  for (std::size_t k = 0; k < list.size(); ++k) {
    const std::string here = fmt::format("{}[{}]", where, k);
    const Json& item = list[k];
    require_object(item, here);
    InfluentialStep s;
    s.step_idx = as_index(require(item, "step_idx", here), here, "step_idx");
    s.step_text = labeled_chunk_from_json(require(item, "step_text", here), here + ".step_text");
    s.avg_importance = as_double(require(item, value_key, here), here, value_key);
    out.push_back(std::move(s));
  }
  return out;
}

double schema_value(double v) { return std::isnan(v) ? 0.0 : v; }

// depends_on names sentences by chunk_idx; in a chunks_labeled.json list each
// entry must name one of the list's own chunks, or the dependency graph has
// an edge to nowhere. (The step_text copies in summary.json stand alone and
// cannot be checked.)
void check_depends_on(const std::vector<LabeledChunk>& chunks, const std::string& source) {
  std::set<std::string> names;
  for (const auto& c : chunks) names.insert(std::to_string(c.chunk_idx));
  for (std::size_t k = 0; k < chunks.size(); ++k) {
    for (const std::string& d : chunks[k].depends_on) {
      if (names.count(d) == 0) {
        bad(fmt::format("{}: entry {} (chunk_idx {})", source, k, chunks[k].chunk_idx),
            fmt::format("depends_on entry {} names no sentence (no entry has that chunk_idx)",
                        Json(d).dump(-1, ' ', true, Json::error_handler_t::replace)));
      }
    }
  }
}

}  // namespace

bool LabeledChunk::operator==(const LabeledChunk& o) const {
  return chunk == o.chunk && chunk_idx == o.chunk_idx && function_tags == o.function_tags &&
         depends_on == o.depends_on && accuracy == o.accuracy &&
         resampling_importance_accuracy == o.resampling_importance_accuracy &&
         resampling_importance_kl == o.resampling_importance_kl &&
         counterfactual_importance_accuracy == o.counterfactual_importance_accuracy &&
         counterfactual_importance_kl == o.counterfactual_importance_kl &&
         forced_importance_accuracy == o.forced_importance_accuracy &&
         forced_importance_kl == o.forced_importance_kl &&
         different_trajectories_fraction == o.different_trajectories_fraction &&
         overdeterminedness == o.overdeterminedness && summary == o.summary &&
         scenario_metrics == o.scenario_metrics && extra == o.extra;
}

// ---------------------------------------------------------------------------
// Readers
// ---------------------------------------------------------------------------

std::vector<LabeledChunk> parse_chunks_labeled(const std::string& json_text, const std::string& source) {
  const Json doc = parse(json_text, source);
  require_array(doc, source);
  std::vector<LabeledChunk> out;
  out.reserve(doc.size());
  for (std::size_t k = 0; k < doc.size(); ++k) {
    out.push_back(labeled_chunk_from_json(doc[k], fmt::format("{}: entry {}", source, k)));
  }
  check_depends_on(out, source);
  return out;
}

StepImportance parse_step_importance(const std::string& json_text, const std::string& source) {
  const Json doc = parse(json_text, source);
  require_array(doc, source);
  StepImportance out;
  out.reserve(doc.size());
  for (std::size_t k = 0; k < doc.size(); ++k) {
    const std::string where = fmt::format("{}: entry {}", source, k);
    const Json& item = doc[k];
    require_object(item, where);
    StepImportanceRow row;
    row.source_chunk_idx = as_index(require(item, "source_chunk_idx", where), where, "source_chunk_idx");
    row.source_chunk_text = as_string(require(item, "source_chunk_text", where), where, "source_chunk_text");
    const Json& impacts = require(item, "target_impacts", where);
    require_array(impacts, where + ": target_impacts");
    for (std::size_t t = 0; t < impacts.size(); ++t) {
      const std::string here = fmt::format("{}: target_impacts[{}]", where, t);
      require_object(impacts[t], here);
      TargetImpact impact;
      impact.target_chunk_idx =
          as_index(require(impacts[t], "target_chunk_idx", here), here, "target_chunk_idx");
      impact.importance_score =
          as_double(require(impacts[t], "importance_score", here), here, "importance_score");
      row.target_impacts.push_back(impact);
    }
    out.push_back(std::move(row));
  }
  return out;
}

StepImportanceSummary parse_summary(const std::string& json_text, const std::string& source) {
  const Json doc = parse(json_text, source);
  require_object(doc, source);
  StepImportanceSummary s;
  const Json& problem_idx = require(doc, "problem_idx", source);
  if (problem_idx.is_number_integer()) {
    s.problem_idx = problem_idx.get<std::int64_t>();
  } else if (!problem_idx.is_null()) {
    bad(source, fmt::format("field \"problem_idx\" must be an integer or null, got {}", problem_idx.type_name()));
  }
  s.num_chunks = as_index(require(doc, "num_chunks", source), source, "num_chunks");
  s.avg_importance = as_double(require(doc, "avg_importance", source), source, "avg_importance");
  s.max_importance = as_double(require(doc, "max_importance", source), source, "max_importance");
  s.min_importance = as_double(require(doc, "min_importance", source), source, "min_importance");
  s.top_influential_steps = influential_from_json(require(doc, "top_influential_steps", source),
                                                  "avg_outgoing_importance", source + ": top_influential_steps");
  s.top_dependent_steps = influential_from_json(require(doc, "top_dependent_steps", source),
                                                "avg_incoming_importance", source + ": top_dependent_steps");
  return s;
}

std::vector<LabeledChunk> read_chunks_labeled(const std::string& path) {
  return parse_chunks_labeled(read_text_file(path, kDataFileLimit), path);
}
StepImportance read_step_importance(const std::string& path) {
  return parse_step_importance(read_text_file(path, kDataFileLimit), path);
}
StepImportanceSummary read_summary(const std::string& path) { return parse_summary(read_text_file(path, kDataFileLimit), path); }

// ---------------------------------------------------------------------------
// Writers
// ---------------------------------------------------------------------------

std::string chunks_labeled_to_json(const std::vector<LabeledChunk>& chunks) {
  check_depends_on(chunks, "chunks_labeled");  // what is written must read back
  Json doc = Json::array();
  for (const auto& c : chunks) doc.push_back(labeled_chunk_to_json(c));
  return dump(doc);
}

std::string step_importance_to_json(const StepImportance& rows) {
  Json doc = Json::array();
  for (const auto& row : rows) {
    Json item = Json::object();
    item["source_chunk_idx"] = row.source_chunk_idx;
    item["source_chunk_text"] = row.source_chunk_text;
    Json impacts = Json::array();
    for (const auto& t : row.target_impacts) {
      Json impact = Json::object();
      impact["target_chunk_idx"] = t.target_chunk_idx;
      impact["importance_score"] = t.importance_score;
      impacts.push_back(std::move(impact));
    }
    item["target_impacts"] = std::move(impacts);
    doc.push_back(std::move(item));
  }
  return dump(doc);
}

std::string summary_to_json(const StepImportanceSummary& s) {
  Json doc = Json::object();
  doc["problem_idx"] = s.problem_idx ? Json(*s.problem_idx) : Json(nullptr);
  doc["num_chunks"] = s.num_chunks;
  doc["avg_importance"] = s.avg_importance;
  doc["max_importance"] = s.max_importance;
  doc["min_importance"] = s.min_importance;
  Json influential = Json::array();
  for (const auto& step : s.top_influential_steps) {
    influential.push_back(influential_to_json(step, "avg_outgoing_importance"));
  }
  doc["top_influential_steps"] = std::move(influential);
  Json dependent = Json::array();
  for (const auto& step : s.top_dependent_steps) {
    dependent.push_back(influential_to_json(step, "avg_incoming_importance"));
  }
  doc["top_dependent_steps"] = std::move(dependent);
  return dump(doc);
}

void write_chunks_labeled(const std::vector<LabeledChunk>& chunks, const std::string& path) {
  check_depends_on(chunks, path);  // the error names the file that was to be written
  write_file_atomic(path, chunks_labeled_to_json(chunks));
}
void write_step_importance(const StepImportance& rows, const std::string& path) {
  write_file_atomic(path, step_importance_to_json(rows));
}
void write_summary(const StepImportanceSummary& summary, const std::string& path) {
  write_file_atomic(path, summary_to_json(summary));
}

// ---------------------------------------------------------------------------
// From metrics
// ---------------------------------------------------------------------------

std::vector<LabeledChunk> labeled_chunks(const ResamplingMetrics& metrics,
                                         const std::vector<LabeledChunk>* existing_labels) {
  const auto& sentences = metrics.sentences;
  // Labels are only trusted for exactly the same sentence list: after a
  // re-segmentation, position k may be a different sentence.
  bool labels_match = existing_labels != nullptr && existing_labels->size() == sentences.size();
  for (std::size_t k = 0; labels_match && k < sentences.size(); ++k) {
    labels_match = (*existing_labels)[k].chunk_idx == sentences[k].chunk_idx &&
                   (*existing_labels)[k].chunk == sentences[k].text;
  }
  std::vector<LabeledChunk> out;
  out.reserve(sentences.size());
  for (std::size_t k = 0; k < sentences.size(); ++k) {
    const SentenceMetrics& s = sentences[k];
    LabeledChunk c;
    c.chunk = s.text;
    c.chunk_idx = s.chunk_idx;
    if (labels_match) {
      c.function_tags = (*existing_labels)[k].function_tags;
      c.depends_on = (*existing_labels)[k].depends_on;
      c.summary = (*existing_labels)[k].summary;
    } else {
      c.function_tags = {"unknown"};
    }
    // The schema has no "no value": the reference writes 0.0.
    c.accuracy = schema_value(s.accuracy);
    c.resampling_importance_accuracy = schema_value(s.resampling_importance_accuracy);
    c.resampling_importance_kl = schema_value(s.resampling_importance_kl);
    c.counterfactual_importance_accuracy = schema_value(s.counterfactual_importance_accuracy);
    c.counterfactual_importance_kl = schema_value(s.counterfactual_importance_kl);
    c.forced_importance_accuracy = schema_value(s.forced_importance_accuracy);
    c.forced_importance_kl = schema_value(s.forced_importance_kl);
    c.different_trajectories_fraction = schema_value(s.different_trajectories_fraction);
    c.overdeterminedness = schema_value(s.overdeterminedness);
    out.push_back(std::move(c));
  }
  return out;
}

StepImportance step_importance(const ResamplingMetrics& metrics) {
  const std::size_t n = metrics.sentences.size();
  const Matrix& m = metrics.sentence_to_sentence;
  if (n > 0 && (m.rows != n || m.cols != n)) {
    throw Error(fmt::format("step_importance: {}: the sentence-to-sentence matrix is {}x{} for {} sentences "
                            "(was compute_matrix off?)",
                            metrics.problem_id, m.rows, m.cols, n));
  }
  StepImportance rows;
  rows.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    StepImportanceRow row;
    row.source_chunk_idx = metrics.sentences[i].chunk_idx;
    row.source_chunk_text = metrics.sentences[i].text;
    for (std::size_t j = i + 1; j < n; ++j) {
      row.target_impacts.push_back(TargetImpact{metrics.sentences[j].chunk_idx, schema_value(m(i, j))});
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

StepImportanceSummary summarize_step_importance(const StepImportance& rows,
                                                const std::vector<LabeledChunk>& chunks,
                                                std::optional<std::int64_t> problem_idx,
                                                std::size_t top_count) {
  const std::size_t n = rows.size();
  std::map<std::size_t, std::size_t> position;  // chunk_idx -> row
  for (std::size_t p = 0; p < n; ++p) {
    if (!position.emplace(rows[p].source_chunk_idx, p).second) {
      throw Error(fmt::format("step importance: source_chunk_idx {} appears twice", rows[p].source_chunk_idx));
    }
  }
  // Dense n×n matrix, 0 where no score is given (on and below the diagonal).
  std::vector<double> matrix(n * n, 0.0);
  for (std::size_t p = 0; p < n; ++p) {
    for (const auto& t : rows[p].target_impacts) {
      const auto it = position.find(t.target_chunk_idx);
      if (it == position.end()) {
        throw Error(fmt::format("step importance: row {} targets chunk {}, which has no row",
                                rows[p].source_chunk_idx, t.target_chunk_idx));
      }
      matrix[p * n + it->second] = t.importance_score;
    }
  }
  StepImportanceSummary s;
  s.problem_idx = problem_idx;
  s.num_chunks = n;
  if (n > 0) {
    s.avg_importance = numpy_sum(matrix.data(), n * n, 1) / static_cast<double>(n * n);
    s.max_importance = *std::max_element(matrix.begin(), matrix.end());
    s.min_importance = *std::min_element(matrix.begin(), matrix.end());
  }
  std::vector<double> outgoing(n, 0.0), incoming(n, 0.0);
  for (std::size_t p = 0; p + 1 < n; ++p) {
    outgoing[p] = numpy_sum(&matrix[p * n + p + 1], n - p - 1, 1) / static_cast<double>(n - p - 1);
  }
  for (std::size_t q = 1; q < n; ++q) {
    incoming[q] = numpy_sum(&matrix[q], q, n) / static_cast<double>(q);
  }
  std::map<std::size_t, const LabeledChunk*> by_idx;
  for (const auto& c : chunks) by_idx.emplace(c.chunk_idx, &c);
  s.top_influential_steps = top_steps(outgoing, rows, by_idx, top_count);
  s.top_dependent_steps = top_steps(incoming, rows, by_idx, top_count);
  return s;
}

namespace {

// The authors' agentic names for the rates (analyze_rollouts.py of
// thought-branches), in their key order: accuracy becomes <b>_rate, and so on
// (scenario_metric_keys() maps them back).
void use_scenario_keys(LabeledChunk& c, const std::string& b) {
  const auto move = [&](std::optional<double> LabeledChunk::*member, const std::string& key) {
    if (c.*member) c.scenario_metrics.emplace_back(key, *(c.*member));
    (c.*member).reset();
  };
  move(&LabeledChunk::accuracy, b + "_rate");
  move(&LabeledChunk::resampling_importance_accuracy, "resampling_importance_" + b + "_rate");
  move(&LabeledChunk::counterfactual_importance_accuracy, "counterfactual_importance_" + b + "_rate");
  move(&LabeledChunk::forced_importance_accuracy, "forced_importance_" + b + "_rate");
  c.key_order = {"chunk",
                 "chunk_idx",
                 "function_tags",
                 "depends_on",
                 b + "_rate",
                 "resampling_importance_" + b + "_rate",
                 "resampling_importance_kl",
                 "counterfactual_importance_" + b + "_rate",
                 "counterfactual_importance_kl",
                 "forced_importance_" + b + "_rate",
                 "forced_importance_kl",
                 "different_trajectories_fraction",
                 "overdeterminedness",
                 "summary"};
}

}  // namespace

StepImportance suppression_step_importance(const AnalysisResult& result) {
  const Attribution& a = result.attribution("attention_suppression");
  const auto it = a.matrices.find("suppression");
  const std::size_t S = result.trace.sentences.size();
  if (it == a.matrices.end())
    throw Error("step_importance_supp: the attention_suppression attribution has no \"suppression\" matrix (an "
                "imported one cannot be written back this way)");
  const Matrix& m = it->second;
  if (m.rows != S || m.cols != S)
    throw Error(fmt::format("step_importance_supp: the suppression matrix is {}x{}, the trace has {} sentences", m.rows,
                            m.cols, S));
  StepImportance rows(S);
  for (std::size_t i = 0; i < S; ++i) {
    rows[i].source_chunk_idx = i;
    rows[i].source_chunk_text = result.trace.sentences[i].text;
    for (std::size_t j = i + 1; j < S; ++j)
      rows[i].target_impacts.push_back({j, std::isnan(m(j, i)) ? 0.0 : m(j, i)});
  }
  return rows;
}

std::string write_step_importance_supp(const AnalysisResult& result, const std::string& dir) {
  const std::string text = step_importance_to_json(suppression_step_importance(result));
  std::error_code ec;
  fs::create_directories(dir, ec);
  const std::string path = (fs::path(dir) / "step_importance_supp.json").string();
  write_file_atomic(path, text);
  return path;
}

ReferenceOutputs write_reference_outputs(const ProblemRollouts& rollouts, const ResamplingMetrics& metrics,
                                         const std::string& out_dir, const ReferenceOutputOptions& options) {
  std::optional<std::vector<LabeledChunk>> existing;
  if (options.keep_labels) {
    std::string labels_path = options.labels_path;
    if (labels_path.empty()) {
      const std::string candidate = (fs::path(rollouts.problem_dir) / "chunks_labeled.json").string();
      if (file_exists(candidate)) labels_path = candidate;
    }
    if (!labels_path.empty()) existing = read_chunks_labeled(labels_path);
  }
  ReferenceOutputs out;
  out.chunks_labeled = labeled_chunks(metrics, existing ? &*existing : nullptr);
  if (!rollouts.behavior.empty())
    for (auto& c : out.chunks_labeled) use_scenario_keys(c, rollouts.behavior);
  const bool with_matrix = !metrics.sentence_to_sentence.empty() || metrics.sentences.empty();
  if (with_matrix) {
    out.step_importance = step_importance(metrics);
    out.summary = summarize_step_importance(out.step_importance, out.chunks_labeled,
                                            rollouts.problem_index(), options.top_steps);
  }
  // Render everything before writing anything, so a failure leaves no partial set.
  const std::string labeled_text = chunks_labeled_to_json(out.chunks_labeled);
  const std::string importance_text = with_matrix ? step_importance_to_json(out.step_importance) : "";
  const std::string summary_text = with_matrix ? summary_to_json(*out.summary) : "";
  // The resampled sentences per chunk, as the authors' chunks_resampled.json
  // (what the web app and `anchors report` show as a sentence's alternatives),
  // sorted: the records' order depends on which batches finished first, and a
  // resumed run must write the same file as an uninterrupted one.
  nlohmann::json resampled = nlohmann::json::object();
  for (const SentenceRollouts& s : rollouts.resampled) {
    if (!s.present) continue;
    std::vector<std::string> texts;
    for (const Rollout& r : s.rollouts) texts.push_back(r.chunk_resampled);
    std::sort(texts.begin(), texts.end());
    resampled[std::to_string(s.chunk_idx)] = texts;
  }
  const std::string resampled_text = resampled.dump(1, ' ', false, nlohmann::json::error_handler_t::replace);
  const fs::path dir(out_dir);
  write_file_atomic((dir / "chunks_labeled.json").string(), labeled_text);
  write_file_atomic((dir / "chunks_resampled.json").string(), resampled_text);
  if (with_matrix) {
    write_file_atomic((dir / "step_importance.json").string(), importance_text);
    write_file_atomic((dir / "summary.json").string(), summary_text);
  }
  return out;
}

}  // namespace anchors
