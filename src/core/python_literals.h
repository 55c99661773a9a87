#pragma once
// Internal: values that a Python program wrote as text instead of JSON — the
// string-typed chunks_labeled.json of the authors' web app (and of any CSV
// round trip): numbers as str(float) ("0.25", "nan", "None") and lists as
// repr(list) ("['plan_generation']", "['0', '3']", "[1, 2]", "[]").
// Both readers are linear in the text and never throw.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace anchors::python_literals {

enum class FloatKind {
  kNumber,   // a finite number: `value` holds it
  kNoValue,  // "None", "null", "nan", "inf", "-inf" (any case) or only whitespace: no value
  kInvalid,  // anything else
};

struct FloatText {
  FloatKind kind = FloatKind::kInvalid;
  double value = 0.0;
};

// Python's float(text) for the forms a program writes: optional surrounding
// whitespace, an optional sign, digits with an optional point and exponent
// ("0.25", "-3e-05", "+1.", ".5"); the nearest double, as Python rounds it.
// Infinities, NaN and None (str(None)) have no value in a JSON metric, so
// they read as kNoValue; so do overflowing numbers ("1e999" is inf in Python).
FloatText parse_float(std::string_view text);

// A list literal as Python's repr() writes one: '[' items ']' with items
// separated by commas (a trailing comma allowed), each a string in single or
// double quotes (escapes \\ \' \" \n \r \t \xhh \uXXXX \UXXXXXXXX; no raw or
// byte strings, no implicit concatenation) or, when `allow_integers`, an
// integer literal (kept as its decimal text, "007" refused as Python does).
// nullopt with `why` set for anything else.
std::optional<std::vector<std::string>> parse_list(std::string_view text, bool allow_integers, std::string& why);

}  // namespace anchors::python_literals
