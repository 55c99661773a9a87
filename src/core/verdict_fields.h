#pragma once
// Internal: the judge's verdict of the authors' agentic files (Thought
// Branches): base_solution.json and chunk_i/solutions.json records carry
// contains_blackmail or contains_whistleblowing (true, false or null) where
// the math files carry answer / is_correct. One reader for rollouts.cpp and
// reference_import.cpp, so both read the same fields the same way.
#include <optional>
#include <string>

#include <fmt/format.h>

#include "anchors/core/error.h"

namespace anchors::verdict_fields {

// The behaviours whose "contains_<behaviour>" field is a verdict.
inline constexpr const char* kBehaviors[] = {"blackmail", "whistleblowing"};

struct Verdict {
  std::string behavior;       // "" when the object has no verdict field
  std::optional<bool> value;  // nullopt for null (the judge gave none)
  bool present() const { return !behavior.empty(); }
  // The outcome label of a verdict: "yes" (the behaviour happened), "no", or
  // "" (no label).
  std::string answer() const { return value ? (*value ? "yes" : "no") : ""; }
};

// anchors::Error "<where>: field "contains_blackmail" must be true, false or
// null, got <type>" for another type, and for an object with both fields.
template <class Json>
Verdict read(const Json& object, const std::string& where) {
  Verdict out;
  for (const char* behavior : kBehaviors) {
    const std::string key = std::string("contains_") + behavior;
    const auto it = object.find(key);
    if (it == object.end()) continue;
    if (out.present())
      throw Error(fmt::format("{}: both contains_{} and {} (one verdict per record)", where, out.behavior, key));
    if (!it->is_null() && !it->is_boolean())
      throw Error(fmt::format("{}: field \"{}\" must be true, false or null, got {}", where, key, it->type_name()));
    out.behavior = behavior;
    if (it->is_boolean()) out.value = it->template get<bool>();
  }
  return out;
}

}  // namespace anchors::verdict_fields
