#include "anchors/rollout/openai_format.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/attention_control.h"
#include "anchors/core/error.h"
#include "anchors/core/json_depth.h"
#include "anchors/core/utf8.h"
#include "json_fields.h"

namespace anchors::rollout::openai {
namespace {
using Json = nlohmann::ordered_json;

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

// A field that is absent or null.
bool absent(const Json& body, const char* key) {
  const auto it = body.find(key);
  return it == body.end() || it->is_null();
}

std::int64_t get_int(const Json& body, const char* key, std::int64_t fallback) {
  if (absent(body, key)) return fallback;
  const Json& v = body.at(key);
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      throw Error(fmt::format("\"{}\" {} is too large", key, u));
    return static_cast<std::int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<std::int64_t>();
  throw Error(fmt::format("\"{}\" must be an integer, got {}", key, v.is_number() ? v.dump() : v.type_name()));
}

double get_number(const Json& body, const char* key, double fallback) {
  if (absent(body, key)) return fallback;
  const Json& v = body.at(key);
  if (!v.is_number()) throw Error(fmt::format("\"{}\" must be a number, got {}", key, v.type_name()));
  return v.get<double>();
}

bool get_bool(const Json& body, const char* key) {
  if (absent(body, key)) return false;
  const Json& v = body.at(key);
  if (!v.is_boolean()) throw Error(fmt::format("\"{}\" must be true or false, got {}", key, v.type_name()));
  return v.get<bool>();
}

std::vector<std::int64_t> id_list(const Json& list, const char* what) {
  std::vector<std::int64_t> ids;
  ids.reserve(list.size());
  for (std::size_t k = 0; k < list.size(); ++k) {
    const Json& v = list[k];
    if (!v.is_number_integer())
      throw Error(fmt::format("{}[{}] must be a token id (an integer), got {}", what, k,
                              v.is_number() ? v.dump() : v.type_name()));
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      throw Error(fmt::format("{}[{}] = {} is not a token id", what, k, v.dump()));
    ids.push_back(v.get<std::int64_t>());
  }
  return ids;
}

bool is_id_list(const Json& v) {
  if (!v.is_array() || v.empty()) return false;
  for (const auto& x : v)
    if (!x.is_number()) return false;
  return true;
}

// Sets r.prompt_ids (and r.prompt_text for a string prompt).
void read_prompt(const Json& prompt, const std::function<std::vector<std::int64_t>(const std::string&)>& tokenize,
                 CompletionRequest& r) {
  const Json* p = &prompt;
  // A list holding one prompt (a string or a list of ids).
  if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) p = &(*p)[0];
  if (p->is_string()) {
    if (!tokenize) throw Error("\"prompt\" is a string but this server has no tokenizer: send token ids");
    r.prompt_text = p->get<std::string>();
    if (r.prompt_text.empty()) throw Error("\"prompt\" is empty");
    r.prompt_ids = tokenize(r.prompt_text);
    return;
  }
  if (is_id_list(*p)) {
    r.prompt_ids = id_list(*p, "prompt");
    return;
  }
  if (p->is_array() && p->empty()) throw Error("\"prompt\" is empty");
  if (p->is_array())
    throw Error("\"prompt\" must be one prompt (a string or a list of token ids); batched prompts are not "
                "supported, send one request per prompt");
  throw Error(fmt::format("\"prompt\" must be a string or a list of token ids, got {}", p->type_name()));
}

// Our extension: "attention_control" only when there is one (a strict server
// that does not know it is then unaffected).
void put_attention_control(Json& j, const CompletionRequest& r) {
  if (!r.attention_control.empty()) j["attention_control"] = Json::parse(attention_control_json(r.attention_control));
}

// What an answer says about the attention control: a server that applied one
// confirms it with "attention_control": "applied"; a server that does not know
// the field (vLLM) says nothing, and its answer sampled the unchanged model.
void check_attention_control(const Json& body, bool expected, const std::string& source) {
  if (!expected) return;
  const auto it = body.find("attention_control");
  if (it == body.end() || *it != "applied")
    throw Error(fmt::format("{}: the server did not confirm the request's attention_control (only `anchors serve` "
                            "applies one; another OpenAI-compatible server ignores it and samples the unchanged "
                            "model)",
                            source));
}

// The sampling fields after the prompt; non-neutral extras only, so that
// strict servers that do not know them are unaffected.
void put_sampling(Json& j, const CompletionRequest& r) {
  j["n"] = r.n;
  j["temperature"] = r.temperature;
  j["top_p"] = r.top_p;
  if (r.top_k > 0) j["top_k"] = r.top_k;
  if (r.min_p > 0) j["min_p"] = r.min_p;
  if (r.repetition_penalty != 1.0) j["repetition_penalty"] = r.repetition_penalty;
  if (r.presence_penalty != 0.0) j["presence_penalty"] = r.presence_penalty;
  if (r.frequency_penalty != 0.0) j["frequency_penalty"] = r.frequency_penalty;
  j["max_tokens"] = r.max_tokens;
  if (!r.stop.empty()) j["stop"] = r.stop;
  j["seed"] = r.seed;
  put_attention_control(j, r);
}

Json parse_object(const std::string& text) {
  check_json_depth(text, "the body");
  Json body;
  try {
    body = Json::parse(text);
  } catch (const Json::exception& e) {
    // parse_error for bad syntax, but out_of_range for a number no double
    // holds ("temperature": 1e309): both are the client's error (HTTP 400).
    throw Error(fmt::format("malformed JSON body ({})", e.what()));
  }
  if (!body.is_object()) throw Error(fmt::format("the body must be a JSON object, got {}", body.type_name()));
  return body;
}

// Everything but the prompt, shared by both endpoints.
void read_sampling(const Json& body, ParsedRequest& out, bool echo_allowed) {
  CompletionRequest& r = out.request;
  if (!absent(body, "model")) {
    if (!body.at("model").is_string()) throw Error("\"model\" must be a string");
    out.model = body.at("model").get<std::string>();
  }
  r.n = get_int(body, "n", 1);
  r.temperature = get_number(body, "temperature", 1.0);
  r.top_p = get_number(body, "top_p", 1.0);
  r.top_k = get_int(body, "top_k", 0);
  if (r.top_k == -1) r.top_k = 0;  // vLLM's "off"
  r.max_tokens = get_int(body, "max_tokens", 16);
  r.min_p = get_number(body, "min_p", 0.0);
  r.repetition_penalty = get_number(body, "repetition_penalty", 1.0);
  r.presence_penalty = get_number(body, "presence_penalty", 0.0);
  r.frequency_penalty = get_number(body, "frequency_penalty", 0.0);
  if (!absent(body, "stop")) {
    const Json& stop = body.at("stop");
    if (stop.is_string()) {
      r.stop.push_back(stop.get<std::string>());
    } else if (stop.is_array()) {
      for (const auto& s : stop) {
        if (!s.is_string()) throw Error("\"stop\" must be a string or a list of strings");
        r.stop.push_back(s.get<std::string>());
      }
    } else {
      throw Error("\"stop\" must be a string or a list of strings");
    }
  }
  if (!absent(body, "seed")) {
    const Json& seed = body.at("seed");
    if (seed.is_number_unsigned()) {
      out.seed = seed.get<std::uint64_t>();
    } else if (seed.is_number_integer()) {  // negative: Python's ta.Error for seed=-1, a 400 here
      throw Error(fmt::format("\"seed\" must be a non-negative integer, got {}", seed.dump()));
    } else {
      throw Error(fmt::format("\"seed\" must be an integer, got {}", seed.is_number() ? seed.dump() : seed.type_name()));
    }
    r.seed = *out.seed;
  }
  // Options this engine cannot honour are refused rather than ignored.
  if (get_bool(body, "stream")) throw Error("\"stream\": true is not supported");
  // Prompt scoring: echo with integer logprobs (the prompt's log-probabilities).
  out.echo = get_bool(body, "echo");
  if (out.echo) {
    if (!echo_allowed) throw Error("\"echo\": true is not supported here (only by /v1/completions)");
    if (absent(body, "logprobs") || !body.at("logprobs").is_number_unsigned())
      throw Error("\"echo\": true is supported for prompt scoring only: send an integer \"logprobs\" >= 0 with it");
    if (r.n != 1) throw Error(fmt::format("\"echo\": true needs n = 1, got {}", r.n));
  } else if (!absent(body, "logprobs") &&
             !(body.at("logprobs").is_number_integer() && body.at("logprobs").get<std::int64_t>() == 0) &&
             !(body.at("logprobs").is_boolean() && !body.at("logprobs").get<bool>())) {
    throw Error("\"logprobs\" is supported only with \"echo\": true (prompt scoring); send null");
  }
  if (get_int(body, "best_of", r.n) != r.n) throw Error("\"best_of\" other than n is not supported");
  if (!absent(body, "suffix")) throw Error("\"suffix\" is not supported");
  if (!absent(body, "logit_bias") && !(body.at("logit_bias").is_object() && body.at("logit_bias").empty()))
    throw Error("\"logit_bias\" is not supported");
  if (!absent(body, "attention_control"))
    r.attention_control = parse_attention_control(body.at("attention_control").dump(), "\"attention_control\"");
}

// A message's content: a string, or a list of {"type": "text", "text"} parts (joined).
std::string message_content(const Json& content, std::size_t index) {
  if (content.is_string()) return content.get<std::string>();
  if (content.is_array()) {
    std::string text;
    for (const auto& part : content) {
      if (!part.is_object() || !part.contains("type") || part["type"] != "text" || !part.contains("text") ||
          !part["text"].is_string())
        throw Error(fmt::format("messages[{}].content: only text parts ({{\"type\": \"text\", \"text\": ...}}) are "
                                "supported",
                                index));
      text += part["text"].get<std::string>();
    }
    return text;
  }
  throw Error(fmt::format("messages[{}].content must be a string or a list of text parts", index));
}

}  // namespace

std::string request_body(const CompletionRequest& r, const std::string& model, bool return_token_ids,
                         PromptForm prompt) {
  Json j = Json::object();
  j["model"] = model;
  if (prompt == PromptForm::kText) {
    if (r.prompt_text.empty()) throw Error("request_body: prompt mode \"text\" needs the request's prompt_text");
    j["prompt"] = r.prompt_text;
  } else if (prompt == PromptForm::kIds) {
    if (r.prompt_ids.empty()) throw Error("request_body: prompt mode \"ids\" needs the request's prompt_ids");
    j["prompt"] = r.prompt_ids;
  } else {
    throw Error(fmt::format("request_body: the prompt goes to /v1/completions as ids or text, not as {}",
                            prompt_form_name(prompt)));
  }
  put_sampling(j, r);
  j["logprobs"] = nullptr;
  if (return_token_ids) j["return_token_ids"] = true;
  return dump(j);
}

std::string chat_request_body(const CompletionRequest& r, const std::string& model, bool return_token_ids) {
  if (r.messages.empty()) throw Error("chat_request_body: prompt mode \"chat\" needs the request's messages");
  Json j = Json::object();
  j["model"] = model;
  Json messages = Json::array();
  for (const auto& m : r.messages) messages.push_back({{"role", m.role}, {"content", m.content}});
  j["messages"] = std::move(messages);
  if (r.messages.back().role == "assistant") {
    j["continue_final_message"] = true;
    j["add_generation_prompt"] = false;
  }
  put_sampling(j, r);
  if (return_token_ids) j["return_token_ids"] = true;
  return dump(j);
}

ParsedRequest parse_request_body(const std::string& text,
                                 const std::function<std::vector<std::int64_t>(const std::string&)>& tokenize) {
  const Json body = parse_object(text);
  ParsedRequest out;
  if (absent(body, "prompt")) {
    throw Error(body.contains("messages") ? "missing \"prompt\" (\"messages\" go to /v1/chat/completions)"
                                          : "missing \"prompt\"");
  }
  read_prompt(body.at("prompt"), tokenize, out.request);
  read_sampling(body, out, /*echo_allowed=*/true);
  validate_request(out.request, "request", PromptForm::kIds);
  return out;
}

ParsedRequest parse_chat_request_body(const std::string& text, const ChatRenderer& render) {
  const Json body = parse_object(text);
  if (!render) throw Error("this server cannot render chat messages (no chat format): use /v1/completions");
  if (!absent(body, "prompt")) throw Error("\"prompt\" is not a chat field: send \"messages\" (or use /v1/completions)");
  if (absent(body, "messages")) throw Error("missing \"messages\"");
  const Json& list = body.at("messages");
  if (!list.is_array() || list.empty()) throw Error("\"messages\" must be a non-empty list");
  ParsedRequest out;
  CompletionRequest& r = out.request;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const Json& m = list[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      throw Error(fmt::format("messages[{}] must be an object with a string \"role\"", i));
    if (!m.contains("content") || m["content"].is_null())
      throw Error(fmt::format("messages[{}] has no \"content\"", i));
    r.messages.push_back({m["role"].get<std::string>(), message_content(m["content"], i)});
  }
  for (const char* key : {"tools", "response_format", "top_logprobs"})
    if (!absent(body, key)) throw Error(fmt::format("\"{}\" is not supported", key));
  if (get_bool(body, "logprobs")) throw Error("\"logprobs\" is not supported");
  const bool continue_final = get_bool(body, "continue_final_message");
  // vLLM's default for add_generation_prompt is true; it only matters when not continuing.
  const bool generation_prompt = absent(body, "add_generation_prompt") ? true : get_bool(body, "add_generation_prompt");
  if (continue_final && generation_prompt && !absent(body, "add_generation_prompt"))
    throw Error("\"continue_final_message\" and \"add_generation_prompt\" cannot both be true");
  if (!continue_final && !generation_prompt)
    throw Error("\"add_generation_prompt\": false without \"continue_final_message\": true leaves nothing to "
                "continue");
  if (continue_final && r.messages.back().role != "assistant")
    throw Error(fmt::format("\"continue_final_message\": true needs the last message to be the assistant's, not \"{}\"",
                            r.messages.back().role));
  // max_completion_tokens is OpenAI's newer name for max_tokens.
  Json sampling = body;
  if (absent(sampling, "max_tokens") && !absent(sampling, "max_completion_tokens"))
    sampling["max_tokens"] = sampling["max_completion_tokens"];
  sampling.erase("logprobs");
  read_sampling(sampling, out, /*echo_allowed=*/false);
  ChatPrompt prompt = render(r.messages, continue_final);
  r.prompt_text = std::move(prompt.text);
  r.prompt_ids = std::move(prompt.ids);
  validate_request(r, "request", PromptForm::kIds);
  return out;
}

std::string score_request_body(const CompletionRequest& r, const std::string& model) {
  if (r.prompt_ids.empty()) throw Error("score_request_body: scoring needs the request's prompt_ids");
  Json j = Json::object();
  j["model"] = model;
  j["prompt"] = r.prompt_ids;
  j["max_tokens"] = 1;
  j["temperature"] = 0;
  j["echo"] = true;
  j["logprobs"] = 1;
  put_attention_control(j, r);
  return dump(j);
}

std::vector<double> parse_score_response(const std::string& text, std::size_t prompt_tokens, const std::string& source,
                                         bool attention_control_expected) {
  const Json body = json_fields::parse(text, source);
  if (body.is_object()) check_attention_control(body, attention_control_expected, source);
  const Json* values = nullptr;
  if (body.is_object() && body.contains("choices") && body["choices"].is_array() && !body["choices"].empty()) {
    const Json& choice = body["choices"][0];
    if (choice.is_object() && choice.contains("logprobs") && choice["logprobs"].is_object() &&
        choice["logprobs"].contains("token_logprobs") && choice["logprobs"]["token_logprobs"].is_array())
      values = &choice["logprobs"]["token_logprobs"];
  }
  if (!values)
    throw Error(fmt::format("{}: no choices[0].logprobs.token_logprobs in the answer (does the server score prompts "
                            "with \"echo\": true?)",
                            source));
  if (values->size() < prompt_tokens)
    throw Error(fmt::format("{}: {} token log-probabilities for a prompt of {} tokens", source, values->size(),
                            prompt_tokens));
  std::vector<double> out;
  for (std::size_t k = 0; k < prompt_tokens; ++k) {
    const Json& v = (*values)[k];
    if (v.is_number()) {
      out.push_back(v.get<double>());
    } else if (v.is_null() && k == 0) {
      out.push_back(std::nan(""));
    } else {
      throw Error(fmt::format("{}: token_logprobs[{}] is {}, not a number", source, k, v.dump()));
    }
  }
  return out;
}

std::string echo_response_body(const Completion& c, const std::string& prompt_text,
                               const std::vector<std::string>& token_texts, const std::vector<double>& logprobs,
                               const std::string& model, const std::string& id, std::int64_t created,
                               std::int64_t prompt_tokens, bool attention_control_applied) {
  if (token_texts.size() != logprobs.size())
    throw Error(fmt::format("echo_response_body: {} token texts for {} log-probabilities", token_texts.size(),
                            logprobs.size()));
  Json tokens = Json::array(), values = Json::array(), offsets = Json::array();
  std::size_t offset = 0;
  for (std::size_t k = 0; k < token_texts.size(); ++k) {
    tokens.push_back(token_texts[k]);
    values.push_back(std::isfinite(logprobs[k]) ? Json(logprobs[k]) : Json(nullptr));
    offsets.push_back(offset);
    offset += utf8::length(token_texts[k]);
  }
  Json choice = Json::object();
  choice["index"] = 0;
  choice["text"] = prompt_text + c.text;
  choice["finish_reason"] = c.finish_reason.empty() ? Json(nullptr) : Json(c.finish_reason);
  choice["logprobs"] = {{"tokens", tokens}, {"token_logprobs", values}, {"text_offset", offsets}, {"top_logprobs", nullptr}};
  choice["token_ids"] = c.ids;
  Json j = Json::object();
  j["id"] = id;
  j["object"] = "text_completion";
  j["created"] = created;
  j["model"] = model;
  j["choices"] = Json::array({choice});
  const auto completion_tokens = static_cast<std::int64_t>(c.ids.size());
  j["usage"] = {{"prompt_tokens", prompt_tokens},
                {"completion_tokens", completion_tokens},
                {"total_tokens", prompt_tokens + completion_tokens}};
  if (attention_control_applied) j["attention_control"] = "applied";
  return dump(j);
}

namespace {
std::string any_response_body(const std::vector<Completion>& completions, const std::string& model,
                              const std::string& id, std::int64_t created, std::int64_t prompt_tokens, bool chat,
                              bool attention_control_applied) {
  Json choices = Json::array();
  std::int64_t completion_tokens = 0;
  for (std::size_t k = 0; k < completions.size(); ++k) {
    const Completion& c = completions[k];
    Json choice = Json::object();
    choice["index"] = k;
    if (chat) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
    } else {
      choice["text"] = c.text;
    }
    choice["finish_reason"] = c.finish_reason.empty() ? Json(nullptr) : Json(c.finish_reason);
    choice["logprobs"] = nullptr;
    choice["token_ids"] = c.ids;
    choices.push_back(std::move(choice));
    completion_tokens += static_cast<std::int64_t>(c.ids.size());
  }
  Json j = Json::object();
  j["id"] = id;
  j["object"] = chat ? "chat.completion" : "text_completion";
  j["created"] = created;
  j["model"] = model;
  j["choices"] = std::move(choices);
  j["usage"] = {{"prompt_tokens", prompt_tokens},
                {"completion_tokens", completion_tokens},
                {"total_tokens", prompt_tokens + completion_tokens}};
  if (attention_control_applied) j["attention_control"] = "applied";
  return dump(j);
}
}  // namespace

std::string response_body(const std::vector<Completion>& completions, const std::string& model, const std::string& id,
                          std::int64_t created, std::int64_t prompt_tokens, bool attention_control_applied) {
  return any_response_body(completions, model, id, created, prompt_tokens, false, attention_control_applied);
}

std::string chat_response_body(const std::vector<Completion>& completions, const std::string& model,
                               const std::string& id, std::int64_t created, std::int64_t prompt_tokens,
                               bool attention_control_applied) {
  return any_response_body(completions, model, id, created, prompt_tokens, true, attention_control_applied);
}

std::vector<Completion> parse_response_body(const std::string& text, std::int64_t n, const std::string& source,
                                            bool attention_control_expected) {
  const Json body = json_fields::parse<Json>(text, source);
  if (!body.is_object()) throw Error(fmt::format("{}: expected a JSON object, got {}", source, body.type_name()));
  check_attention_control(body, attention_control_expected, source);
  const auto choices = body.find("choices");
  if (choices == body.end() || !choices->is_array())
    throw Error(fmt::format("{}: no \"choices\" list in the answer", source));
  if (static_cast<std::int64_t>(choices->size()) != n)
    throw Error(fmt::format("{}: {} choices for n = {}", source, choices->size(), n));
  std::vector<Completion> out(static_cast<std::size_t>(n));
  std::vector<bool> seen(static_cast<std::size_t>(n), false);
  for (std::size_t k = 0; k < choices->size(); ++k) {
    const Json& c = (*choices)[k];
    const std::string where = fmt::format("{}: choices[{}]", source, k);
    if (!c.is_object()) throw Error(fmt::format("{} must be an object", where));
    std::size_t index = k;
    if (!absent(c, "index")) {
      if (!c["index"].is_number_unsigned() || c["index"].get<std::uint64_t>() >= static_cast<std::uint64_t>(n))
        throw Error(fmt::format("{}: \"index\" {} outside [0, {})", where, c["index"].dump(), n));
      index = c["index"].get<std::size_t>();
    }
    if (seen[index]) throw Error(fmt::format("{}: index {} given twice", where, index));
    seen[index] = true;
    Completion& out_c = out[index];
    if (!absent(c, "message")) {
      const Json& m = c["message"];
      if (!m.is_object()) throw Error(fmt::format("{}: \"message\" must be an object", where));
      for (const char* key : {"reasoning_content", "reasoning"})
        if (m.contains(key) && m[key].is_string() && !m[key].get<std::string>().empty())
          throw Error(fmt::format("{}: the server split the answer into \"{}\" and \"content\" (a reasoning parser): "
                                  "the content alone is not the continuation; run the server without one",
                                  where, key));
      if (absent(m, "content") || !m["content"].is_string())
        throw Error(fmt::format("{}: \"message.content\" must be a string", where));
      out_c.text = m["content"].get<std::string>();
    } else {
      if (absent(c, "text") || !c["text"].is_string()) throw Error(fmt::format("{}: \"text\" must be a string", where));
      out_c.text = c["text"].get<std::string>();
    }
    if (!absent(c, "finish_reason")) {
      if (!c["finish_reason"].is_string()) throw Error(fmt::format("{}: \"finish_reason\" must be a string", where));
      out_c.finish_reason = c["finish_reason"].get<std::string>();
    }
    if (!absent(c, "token_ids")) {
      if (!c["token_ids"].is_array()) throw Error(fmt::format("{}: \"token_ids\" must be a list", where));
      try {
        out_c.ids = id_list(c["token_ids"], "token_ids");
      } catch (const Error& e) {
        throw Error(fmt::format("{}: {}", where, e.what()));
      }
    }
  }
  return out;
}

std::string error_body(const std::string& message, const std::string& type) {
  Json j = Json::object();
  j["error"] = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  return dump(j);
}

std::string error_message(const std::string& text) {
  // A body too deep to print is shown as text (below).
  if (!json_nests_deeper_than(text)) {
    try {
      const Json body = Json::parse(text);
      if (body.is_object()) {
        const auto error = body.find("error");
        if (error != body.end()) {
          if (error->is_string()) return error->get<std::string>();
          if (error->is_object() && error->contains("message") && (*error)["message"].is_string())
            return (*error)["message"].get<std::string>();
        }
        const auto detail = body.find("detail");
        if (detail != body.end()) return detail->is_string() ? detail->get<std::string>() : dump(*detail);
        const auto message = body.find("message");
        if (message != body.end() && message->is_string()) return message->get<std::string>();
      }
    } catch (const Json::exception&) {
    }
  }
  constexpr std::size_t kMax = 500;
  if (text.size() <= kMax) return text;
  return text.substr(0, kMax) + "...";
}

}  // namespace anchors::rollout::openai
