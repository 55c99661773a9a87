#include "value_json.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "anchors/core/error.h"

namespace anchors {
using json = nlohmann::json;

json value_to_json(const Value& v) {
  struct Visitor {
    json operator()(std::monostate) const { return nullptr; }
    json operator()(bool b) const { return b; }
    json operator()(std::int64_t i) const { return i; }
    json operator()(double d) const {
      // JSON has no NaN/Inf; tag them so they load back as doubles. Finite
      // doubles are written with a fraction part ("1.0"), so they stay doubles.
      if (!std::isfinite(d)) return json{{"double", std::isnan(d) ? "nan" : (d > 0 ? "inf" : "-inf")}};
      return d;
    }
    json operator()(const std::string& s) const { return s; }
    json operator()(const IntList& l) const { return l; }
  };
  return std::visit(Visitor{}, v);
}

Value value_from_json(const json& j, const std::string& where) {
  if (j.is_null()) return std::monostate{};
  if (j.is_boolean()) return j.get<bool>();
  if (j.is_number_integer()) return j.get<std::int64_t>();
  if (j.is_number_float()) return j.get<double>();
  if (j.is_string()) return j.get<std::string>();
  if (j.is_array()) {
    IntList list;
    for (const json& item : j) {
      if (!item.is_number_integer()) throw Error(fmt::format("{}: lists may hold integers only, got {}", where, j.dump()));
      list.push_back(item.get<std::int64_t>());
    }
    return list;
  }
  if (j.is_object() && j.size() == 1 && j.contains("double")) {
    const json& d = j.at("double");
    if (d.is_number()) return d.get<double>();
    if (d == "nan") return std::numeric_limits<double>::quiet_NaN();
    if (d == "inf") return std::numeric_limits<double>::infinity();
    if (d == "-inf") return -std::numeric_limits<double>::infinity();
  }
  throw Error(fmt::format("{}: unsupported value {}", where, j.dump()));
}

json values_to_json(const ValueMap& m) {
  json out = json::object();
  for (const auto& [k, v] : m) out[k] = value_to_json(v);
  return out;
}

ValueMap values_from_json(const json& j, const std::string& where) {
  if (!j.is_object()) throw Error(fmt::format("{}: expected an object", where));
  ValueMap out;
  for (const auto& [k, v] : j.items()) out[k] = value_from_json(v, where + "." + k);
  return out;
}

}  // namespace anchors
