#pragma once
// Internal: reading JSON documents with errors that name the file (or source)
// and the place in it. Templated on the nlohmann type because the reference
// files are read with ordered_json (their key order matters when rewritten).
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/json_depth.h"

namespace anchors::json_fields {

// "<source>: malformed JSON (<what and where>)". Json::exception, not only
// parse_error: a number too large for a double (1e309) is an out_of_range
// thrown while parsing. Deeper nesting than kMaxJsonDepth is refused first
// (core/json_depth.h).
template <class Json = nlohmann::json>
Json parse(const std::string& text, const std::string& source) {
  check_json_depth(text, source);
  try {
    return Json::parse(text);
  } catch (const typename Json::exception& e) {
    throw Error(fmt::format("{}: malformed JSON ({})", source, e.what()));
  }
}

// The file read as a whole, within `limit` (file_io.h).
template <class Json = nlohmann::json>
Json read_file(const std::string& path, const ReadLimit& limit) {
  return parse<Json>(read_text_file(path, limit), path);
}

template <class Json>
const Json& require(const Json& object, const char* key, const std::string& where) {
  if (!object.is_object()) throw Error(fmt::format("{}: expected a JSON object, got {}", where, object.type_name()));
  const auto it = object.find(key);
  if (it == object.end()) throw Error(fmt::format("{}: missing field \"{}\"", where, key));
  return *it;
}

template <class Json>
std::string as_string(const Json& value, const std::string& where, const char* key) {
  if (!value.is_string())
    throw Error(fmt::format("{}: field \"{}\" must be a string, got {}", where, key, value.type_name()));
  return value.template get<std::string>();
}

template <class Json>
std::size_t as_index(const Json& value, const std::string& where, const char* key) {
  // nlohmann parses non-negative integers as unsigned, negative ones as signed.
  if (!value.is_number_unsigned())
    throw Error(fmt::format("{}: field \"{}\" must be a non-negative integer, got {}", where, key,
                            value.is_number() ? value.dump() : std::string(value.type_name())));
  return value.template get<std::size_t>();
}

template <class Json>
double as_number(const Json& value, const std::string& where, const char* key) {
  if (!value.is_number())
    throw Error(fmt::format("{}: field \"{}\" must be a number, got {}", where, key, value.type_name()));
  return value.template get<double>();
}

template <class Json>
std::string require_string(const Json& object, const char* key, const std::string& where) {
  return as_string(require(object, key, where), where, key);
}

template <class Json>
std::size_t require_index(const Json& object, const char* key, const std::string& where) {
  return as_index(require(object, key, where), where, key);
}

// Missing and null read as "".
template <class Json>
std::string optional_string(const Json& object, const char* key, const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return {};
  return as_string(*it, where, key);
}

}  // namespace anchors::json_fields
