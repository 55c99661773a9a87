#pragma once
// Internal: Value / ValueMap <-> JSON, as results (attribution.cpp) and rollout
// manifests (rollout/rollout_store.cpp) write them. Values keep their variant
// alternative through a round trip: finite doubles are written with a fraction
// part ("1.0"), NaN and infinities as {"double": "nan" | "inf" | "-inf"}.
#include <string>

#include <nlohmann/json.hpp>

#include "anchors/core/value.h"

namespace anchors {

nlohmann::json value_to_json(const Value& v);
nlohmann::json values_to_json(const ValueMap& m);
// anchors::Error naming `where` for JSON that is no Value (objects, lists of
// non-integers).
Value value_from_json(const nlohmann::json& j, const std::string& where);
ValueMap values_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace anchors
