// The LibTorch- and network-free half of chat_labeler.h: the prompt, the
// request body and the reading of the model's answer. (The HTTP client is in
// chat_labeler.cpp, next to OpenAIProvider's.)
#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/core/function_tags.h"
#include "anchors/core/json_depth.h"
#include "anchors/rollout/chat_labeler.h"

namespace anchors::rollout {

namespace {

using json = nlohmann::json;

// One line per category, in function_tag_names() order (our wording of the
// docs/design.md §3 definitions).
std::string category_definition(const std::string& tag) {
  static const std::map<std::string, std::string> kDefinitions = {
      {"problem_setup", "reads, restates or interprets the problem"},
      {"plan_generation", "decides or announces what to do next, or how to approach the problem"},
      {"fact_retrieval", "recalls a fact, a formula, a definition or a detail of the problem without computing"},
      {"active_computation", "carries out algebra or arithmetic"},
      {"result_consolidation", "summarises intermediate results or draws them together"},
      {"uncertainty_management", "expresses doubt or confusion, reconsiders, or backtracks"},
      {"self_checking", "verifies an earlier step or result"},
      {"final_answer_emission", "states the final answer"},
      {"unknown", "fits none of the above (e.g. a purely stylistic sentence)"}};
  const auto it = kDefinitions.find(tag);
  return it == kDefinitions.end() ? std::string() : it->second;
}

std::string problem_of(const Trace& trace, const std::string& problem) {
  if (!problem.empty()) return problem;
  const auto it = trace.metadata.find("problem");
  return it == trace.metadata.end() ? std::string() : it->second;
}

// The beginning of the answer, on one line, for error messages.
std::string excerpt(const std::string& content) {
  std::string flat;
  for (char c : content) {
    if (flat.size() >= 200) break;
    flat += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  }
  // Do not cut a UTF-8 sequence in half.
  while (!flat.empty() && (static_cast<unsigned char>(flat.back()) & 0xC0) == 0x80) flat.pop_back();
  if (!flat.empty() && (static_cast<unsigned char>(flat.back()) & 0x80) != 0) flat.pop_back();
  return content.size() > flat.size() ? "\"" + flat + "...\"" : "\"" + flat + "\"";
}

// "Self Checking", "self-checking" -> "self_checking".
std::string canonical_tag(std::string name) {
  std::string out;
  std::size_t b = 0, e = name.size();
  while (b < e && std::isspace(static_cast<unsigned char>(name[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(name[e - 1]))) --e;
  for (std::size_t i = b; i < e; ++i) {
    const char c = name[i];
    out += (c == ' ' || c == '-') ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

// A non-negative integer from a JSON number or a numeric string.
std::optional<std::size_t> index_of(const json& v) {
  if (v.is_number_unsigned()) return v.get<std::size_t>();
  if (v.is_number_integer()) {
    const auto i = v.get<std::int64_t>();
    if (i >= 0) return static_cast<std::size_t>(i);
    return std::nullopt;
  }
  if (v.is_number_float()) {
    // A whole number below 2^64 ("3.0"); converting a larger double to size_t is undefined.
    const double d = v.get<double>();
    if (d >= 0 && d < 0x1p64 && std::trunc(d) == d) return static_cast<std::size_t>(d);
    return std::nullopt;
  }
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    std::size_t b = 0, e = s.size();
    while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
    if (b == e || e - b > 18) return std::nullopt;
    std::size_t value = 0;
    for (std::size_t i = b; i < e; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      value = value * 10 + static_cast<std::size_t>(s[i] - '0');
    }
    return value;
  }
  return std::nullopt;
}

// The end (one past) of the JSON value that starts with '{' or '[' at
// `begin`, matching brackets outside strings; npos when it never closes.
std::size_t matching_close(const std::string& text, std::size_t begin) {
  std::vector<char> stack;
  bool in_string = false, escaped = false;
  for (std::size_t i = begin; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') stack.push_back(c == '{' ? '}' : ']');
    else if (c == '}' || c == ']') {
      if (stack.empty() || stack.back() != c) return std::string::npos;
      stack.pop_back();
      if (stack.empty()) return i + 1;
    }
  }
  return std::string::npos;
}

// Labels keyed by index: {"3": {...}} or [{"chunk_idx": 3, ...}]. Anything
// else (a JSON value that is not a labelling) is nullopt, so the next
// candidate in the answer is tried.
std::optional<std::vector<std::pair<json, json>>> entries_of(const json& doc) {
  std::vector<std::pair<json, json>> entries;
  if (doc.is_object()) {
    bool any_index = false;
    for (auto it = doc.begin(); it != doc.end(); ++it) {
      any_index = any_index || index_of(json(it.key())).has_value();
      entries.emplace_back(json(it.key()), it.value());
    }
    if (!any_index) return std::nullopt;
    return entries;
  }
  if (doc.is_array()) {
    bool any = false;
    for (const json& item : doc) {
      if (!item.is_object()) continue;
      const json* key = item.contains("chunk_idx") ? &item["chunk_idx"]
                        : item.contains("index")   ? &item["index"]
                        : item.contains("sentence") ? &item["sentence"]
                                                    : nullptr;
      if (key == nullptr) continue;
      any = true;
      entries.emplace_back(*key, item);
    }
    if (!any) return std::nullopt;
    return entries;
  }
  return std::nullopt;
}

}  // namespace

std::vector<ChatMessage> chat_label_messages(const Trace& trace, const std::string& problem_text) {
  const std::string problem = problem_of(trace, problem_text);
  std::string system =
      "You annotate the chain of thought of a language model that solves a math problem. The reasoning has been "
      "split into numbered sentences. For every sentence you say what it does in the reasoning and which earlier "
      "sentences it builds on. You answer with JSON only.";
  std::string user = "Label every numbered sentence of the reasoning below.\n\nFor each sentence give:\n";
  user += "- \"function_tags\": the category that says what the sentence does (two only when it clearly does both), "
          "from:\n";
  for (const std::string& tag : function_tag_names()) user += fmt::format("    - {}: {}\n", tag, category_definition(tag));
  user +=
      "- \"depends_on\": the indices of the earlier sentences whose results or ideas this sentence uses directly "
      "([] when none).\n\n"
      "Answer with one JSON object keyed by sentence index and nothing else, for example:\n"
      "{\"0\": {\"function_tags\": [\"problem_setup\"], \"depends_on\": []}, "
      "\"1\": {\"function_tags\": [\"plan_generation\"], \"depends_on\": [0]}}\n";
  if (!problem.empty()) user += "\nProblem:\n" + problem + "\n";
  user += fmt::format("\nReasoning ({} sentences):\n", trace.sentences.size());
  for (std::size_t i = 0; i < trace.sentences.size(); ++i) user += fmt::format("[{}] {}\n", i, trace.sentences[i].text);
  return {{"system", std::move(system)}, {"user", std::move(user)}};
}

std::string chat_label_request_body(const Trace& trace, const ChatLabelerOptions& options) {
  if (trace.sentences.empty()) throw Error("chat labelling: the trace has no sentences (segment it first)");
  json messages = json::array();
  for (const ChatMessage& m : chat_label_messages(trace, options.problem))
    messages.push_back({{"role", m.role}, {"content", m.content}});
  json body = json::object();
  if (!options.model.empty()) body["model"] = options.model;
  body["messages"] = std::move(messages);
  body["temperature"] = options.temperature;
  if (options.max_tokens > 0) body["max_tokens"] = options.max_tokens;
  if (options.json_mode) body["response_format"] = {{"type", "json_object"}};
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string chat_answer_content(const std::string& body, const std::string& source, std::string* model) {
  check_json_depth(body, source);
  json doc;
  try {
    doc = json::parse(body);
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: malformed JSON answer ({})", source, e.what()));
  }
  if (model != nullptr) *model = doc.is_object() && doc.contains("model") && doc["model"].is_string()
                                     ? doc["model"].get<std::string>()
                                     : std::string();
  if (!doc.is_object() || !doc.contains("choices") || !doc["choices"].is_array() || doc["choices"].empty() ||
      !doc["choices"][0].is_object() || !doc["choices"][0].contains("message") ||
      !doc["choices"][0]["message"].is_object() || !doc["choices"][0]["message"].contains("content") ||
      !doc["choices"][0]["message"]["content"].is_string())
    throw Error(fmt::format("{}: the answer has no choices[0].message.content string", source));
  return doc["choices"][0]["message"]["content"].get<std::string>();
}

ChatLabels parse_chat_labels(const std::string& content, std::size_t sentence_count, bool strict,
                             const std::string& source) {
  const auto fail = [&](const std::string& problem) {
    return Error(fmt::format("{}: {} (answer: {})", source, problem, excerpt(content)));
  };
  // A reasoning model may think out loud first.
  std::string text = content;
  if (const std::size_t think = text.rfind("</think>"); think != std::string::npos) text = text.substr(think + 8);

  // Candidates, best first: fenced blocks, then every bracketed span.
  std::vector<std::string> candidates;
  for (std::size_t open = text.find("```"); open != std::string::npos;) {
    const std::size_t line = text.find('\n', open + 3);
    if (line == std::string::npos) break;
    const std::size_t close = text.find("```", line + 1);
    if (close == std::string::npos) break;
    candidates.push_back(text.substr(line + 1, close - line - 1));
    open = text.find("```", close + 3);
  }
  for (std::size_t i = 0; i < text.size() && candidates.size() < 64; ++i) {
    if (text[i] != '{' && text[i] != '[') continue;
    const std::size_t end = matching_close(text, i);
    if (end == std::string::npos) continue;
    candidates.push_back(text.substr(i, end - i));
    i = end - 1;  // the next candidate starts after this one
  }
  std::optional<std::vector<std::pair<json, json>>> entries;
  for (const std::string& candidate : candidates) {
    if (json_nests_deeper_than(candidate)) continue;  // no labelling nests that deep; copying it would recurse
    const json doc = json::parse(candidate, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) continue;
    entries = entries_of(doc);
    if (entries) break;
  }
  if (!entries) throw fail("no JSON object of per-sentence labels in the answer");

  ChatLabels labels;
  labels.content = content;
  labels.sentences.resize(sentence_count);
  std::vector<bool> seen(sentence_count, false);
  for (const auto& [key, value] : *entries) {
    const std::optional<std::size_t> index = index_of(key);
    if (!index || *index >= sentence_count) {
      if (!strict) continue;
      throw fail(fmt::format("key {} is not a sentence index 0..{}", key.dump(), sentence_count - 1));
    }
    const std::size_t i = *index;
    if (seen[i] && strict) throw fail(fmt::format("sentence {} is labelled twice", i));
    if (!value.is_object()) {
      if (!strict) continue;
      throw fail(fmt::format("the labels of sentence {} are not an object", i));
    }
    SentenceLabels entry;
    json tags = value.contains("function_tags") ? value["function_tags"] : json();
    if (tags.is_string()) tags = json::array({tags});
    if (tags.is_array()) {
      for (const json& t : tags) {
        std::string name = t.is_string() ? canonical_tag(t.get<std::string>()) : std::string();
        if (!is_function_tag(name)) {
          if (strict)
            throw fail(fmt::format("sentence {}: {} is not a function tag ({})", i, t.dump(),
                                   fmt::join(function_tag_names(), ", ")));
          name = "unknown";
        }
        if (std::find(entry.function_tags.begin(), entry.function_tags.end(), name) == entry.function_tags.end())
          entry.function_tags.push_back(name);
      }
    } else if (!tags.is_null() && strict) {
      throw fail(fmt::format("sentence {}: function_tags is not a list of names", i));
    }
    if (entry.function_tags.empty()) {
      if (strict) throw fail(fmt::format("sentence {} has no function_tags", i));
      entry.function_tags = {"unknown"};
    }
    json deps = value.contains("depends_on") ? value["depends_on"] : json::array();
    if (!deps.is_array() && !deps.is_null()) deps = json::array({deps});
    if (deps.is_array()) {
      for (const json& d : deps) {
        const std::optional<std::size_t> j = index_of(d);
        if (!j || *j >= sentence_count) {
          if (!strict) continue;
          throw fail(fmt::format("sentence {} depends on {}, not a sentence index 0..{}", i, d.dump(),
                                 sentence_count - 1));
        }
        if (std::find(entry.depends_on.begin(), entry.depends_on.end(), *j) == entry.depends_on.end())
          entry.depends_on.push_back(*j);
      }
    }
    labels.sentences[i] = std::move(entry);
    seen[i] = true;
  }
  std::vector<std::size_t> missing;
  for (std::size_t i = 0; i < sentence_count; ++i)
    if (!seen[i]) missing.push_back(i);
  if (!missing.empty()) {
    if (strict) {
      const std::size_t shown = std::min<std::size_t>(missing.size(), 10);
      throw fail(fmt::format("no labels for sentence{} {}{}", missing.size() == 1 ? "" : "s",
                             fmt::join(missing.begin(), missing.begin() + static_cast<std::ptrdiff_t>(shown), ", "),
                             missing.size() > shown ? fmt::format(" and {} more", missing.size() - shown) : ""));
    }
    for (std::size_t i : missing) labels.sentences[i].function_tags = {"unknown"};
  }
  return labels;
}

}  // namespace anchors::rollout
