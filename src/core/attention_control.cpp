#include "anchors/core/attention_control.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "json_fields.h"

namespace anchors {

// ---------------------------------------------------------------------------
// Regions
// ---------------------------------------------------------------------------

AttentionRegion AttentionRegion::suppress(std::int64_t lane, TokenSpan queries, TokenSpan keys) {
  AttentionRegion region;
  region.lane = lane;
  region.queries = queries;
  region.keys = keys;
  region.effect = RegionEffect::kSuppress;
  return region;
}

AttentionRegion AttentionRegion::boost(std::int64_t lane, TokenSpan queries, TokenSpan keys, double beta) {
  AttentionRegion region = suppress(lane, queries, keys);
  region.effect = RegionEffect::kBoost;
  region.beta = beta;
  return region;
}

AttentionRegion AttentionRegion::ablate(std::int64_t lane, TokenSpan queries, std::vector<std::int64_t> heads,
                                        std::vector<std::int64_t> layers) {
  AttentionRegion region;
  region.lane = lane;
  region.queries = queries;
  region.heads = std::move(heads);
  region.layers = std::move(layers);
  region.effect = RegionEffect::kAblate;
  return region;
}

bool AttentionRegion::applies_to_layer(std::int64_t layer) const {
  return layers.empty() || std::find(layers.begin(), layers.end(), layer) != layers.end();
}

bool AttentionRegion::operator==(const AttentionRegion& o) const {
  return lane == o.lane && queries == o.queries && keys == o.keys && heads == o.heads && layers == o.layers &&
         effect == o.effect && beta == o.beta;
}

// ---------------------------------------------------------------------------
// Control
// ---------------------------------------------------------------------------

bool AttentionControl::affects_layer(std::int64_t layer) const {
  return std::any_of(regions.begin(), regions.end(),
                     [layer](const AttentionRegion& r) { return r.applies_to_layer(layer); });
}

bool AttentionControl::changes_scores(std::int64_t layer) const {
  return std::any_of(regions.begin(), regions.end(), [layer](const AttentionRegion& r) {
    return r.effect != RegionEffect::kAblate && r.applies_to_layer(layer);
  });
}

std::int64_t AttentionControl::first_query() const {
  std::int64_t first = kToTheEnd;
  for (const AttentionRegion& r : regions) {
    // A boost or suppression over no keys changes nothing.
    const bool no_keys = r.effect != RegionEffect::kAblate && r.keys.empty();
    if (!r.queries.empty() && !no_keys) first = std::min(first, r.queries.begin);
  }
  return first;
}

bool AttentionControl::every_lane() const {
  return std::all_of(regions.begin(), regions.end(), [](const AttentionRegion& r) { return r.lane == kEveryLane; });
}

AttentionControl& AttentionControl::ablate_heads(std::int64_t layer, std::vector<std::int64_t> heads,
                                                 std::int64_t from) {
  regions.push_back(AttentionRegion::ablate(kEveryLane, {from, kToTheEnd}, std::move(heads), {layer}));
  return *this;
}

AttentionControl& AttentionControl::suppress_keys(TokenSpan keys, std::int64_t from, std::vector<std::int64_t> layers,
                                                  std::vector<std::int64_t> heads) {
  AttentionRegion region = AttentionRegion::suppress(kEveryLane, {from, kToTheEnd}, keys);
  region.layers = std::move(layers);
  region.heads = std::move(heads);
  regions.push_back(std::move(region));
  return *this;
}

AttentionControl& AttentionControl::boost_keys(TokenSpan keys, double beta, std::int64_t from,
                                               std::vector<std::int64_t> layers, std::vector<std::int64_t> heads) {
  AttentionRegion region = AttentionRegion::boost(kEveryLane, {from, kToTheEnd}, keys, beta);
  region.layers = std::move(layers);
  region.heads = std::move(heads);
  regions.push_back(std::move(region));
  return *this;
}

AttentionControl AttentionControl::ablating(const std::vector<std::pair<std::int64_t, std::int64_t>>& layer_heads,
                                            std::int64_t from) {
  std::map<std::int64_t, std::vector<std::int64_t>> by_layer;
  for (const auto& [layer, head] : layer_heads) by_layer[layer].push_back(head);
  AttentionControl control;
  for (auto& [layer, heads] : by_layer) control.ablate_heads(layer, std::move(heads), from);
  return control;
}

void AttentionControl::validate(std::int64_t batch, std::int64_t heads, std::int64_t layers) const {
  for (std::size_t i = 0; i < regions.size(); ++i) {
    const AttentionRegion& r = regions[i];
    const auto where = [&] { return fmt::format("attention control region {}", i); };
    if (r.lane != kEveryLane && (r.lane < 0 || r.lane >= batch))
      throw Error(fmt::format("{}: lane {} outside the batch of {} lanes (-1: every lane)", where(), r.lane, batch));
    if (r.queries.begin < 0 || r.queries.end < r.queries.begin)
      throw Error(fmt::format("{}: bad query span [{}, {})", where(), r.queries.begin, r.queries.end));
    if (r.effect != RegionEffect::kAblate && (r.keys.begin < 0 || r.keys.end < r.keys.begin))
      throw Error(fmt::format("{}: bad key span [{}, {})", where(), r.keys.begin, r.keys.end));
    for (const std::int64_t head : r.heads)
      if (head < 0 || (heads >= 0 && head >= heads))
        throw Error(heads >= 0 ? fmt::format("{}: head {} outside [0, {})", where(), head, heads)
                               : fmt::format("{}: negative head {}", where(), head));
    for (const std::int64_t layer : r.layers)
      if (layer < 0 || (layers >= 0 && layer >= layers))
        throw Error(layers >= 0 ? fmt::format("{}: layer {} outside [0, {})", where(), layer, layers)
                                : fmt::format("{}: negative layer {}", where(), layer));
    if (r.effect == RegionEffect::kBoost && !std::isfinite(r.beta))
      throw Error(fmt::format("{}: boost beta must be finite, got {}", where(), r.beta));
  }
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

namespace {

using Json = nlohmann::json;

const char* effect_name(RegionEffect effect) {
  switch (effect) {
    case RegionEffect::kSuppress: return "suppress";
    case RegionEffect::kBoost: return "boost";
    case RegionEffect::kAblate: return "ablate";
  }
  return "?";
}

Json span_json(TokenSpan span) {
  return Json::array({span.begin, span.end == kToTheEnd ? Json(nullptr) : Json(span.end)});
}

std::int64_t integer(const Json& value, const std::string& where) {
  if (!value.is_number_integer()) throw Error(fmt::format("{} must be an integer, got {}", where, value.dump()));
  return value.get<std::int64_t>();
}

TokenSpan read_span(const Json& value, const std::string& where) {
  if (!value.is_array() || value.size() != 2)
    throw Error(fmt::format("{} must be [begin, end] (end may be null), got {}", where, value.dump()));
  return {integer(value[0], where + "[0]"), value[1].is_null() ? kToTheEnd : integer(value[1], where + "[1]")};
}

std::vector<std::int64_t> read_indices(const Json& value, const std::string& where) {
  if (!value.is_array()) throw Error(fmt::format("{} must be a list of integers, got {}", where, value.dump()));
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < value.size(); ++i) out.push_back(integer(value[i], fmt::format("{}[{}]", where, i)));
  return out;
}

}  // namespace

std::string attention_control_json(const AttentionControl& control) {
  Json regions = Json::array();
  for (const AttentionRegion& r : control.regions) {
    Json j = {{"effect", effect_name(r.effect)}, {"lane", r.lane}, {"queries", span_json(r.queries)}};
    if (r.effect != RegionEffect::kAblate) j["keys"] = span_json(r.keys);
    if (!r.heads.empty()) j["heads"] = r.heads;
    if (!r.layers.empty()) j["layers"] = r.layers;
    if (r.effect == RegionEffect::kBoost) j["beta"] = r.beta;
    regions.push_back(std::move(j));
  }
  return Json{{"regions", std::move(regions)}}.dump();
}

AttentionControl parse_attention_control(const std::string& json, const std::string& where) {
  const Json doc = json_fields::parse(json, where);
  if (!doc.is_object()) throw Error(fmt::format("{}: an attention control must be a JSON object", where));
  for (const auto& [key, _] : doc.items())
    if (key != "regions") throw Error(fmt::format("{}: unknown field \"{}\" (only \"regions\")", where, key));
  AttentionControl control;
  if (!doc.contains("regions")) return control;
  const Json& regions = doc.at("regions");
  if (!regions.is_array()) throw Error(fmt::format("{}: \"regions\" must be a list", where));
  for (std::size_t i = 0; i < regions.size(); ++i) {
    const Json& j = regions[i];
    const std::string here = fmt::format("{}: regions[{}]", where, i);
    if (!j.is_object()) throw Error(fmt::format("{} must be an object", here));
    AttentionRegion r;
    r.lane = kEveryLane;
    r.queries = {0, kToTheEnd};
    bool has_effect = false;
    for (const auto& [key, value] : j.items()) {
      const std::string field = fmt::format("{}.{}", here, key);
      if (key == "effect") {
        const std::string name = value.is_string() ? value.get<std::string>() : value.dump();
        if (name == "suppress") r.effect = RegionEffect::kSuppress;
        else if (name == "boost") r.effect = RegionEffect::kBoost;
        else if (name == "ablate") r.effect = RegionEffect::kAblate;
        else throw Error(fmt::format("{} must be \"ablate\", \"suppress\" or \"boost\", got {}", field, name));
        has_effect = true;
      } else if (key == "lane") {
        r.lane = integer(value, field);
        if (r.lane < kEveryLane) throw Error(fmt::format("{} must be >= -1 (-1: every lane), got {}", field, r.lane));
      } else if (key == "queries") {
        r.queries = read_span(value, field);
      } else if (key == "keys") {
        r.keys = read_span(value, field);
      } else if (key == "heads") {
        r.heads = read_indices(value, field);
      } else if (key == "layers") {
        r.layers = read_indices(value, field);
      } else if (key == "beta") {
        if (!value.is_number()) throw Error(fmt::format("{} must be a number, got {}", field, value.dump()));
        r.beta = value.get<double>();
      } else {
        throw Error(fmt::format("{}: unknown field \"{}\"", here, key));
      }
    }
    if (!has_effect) throw Error(fmt::format("{}: missing \"effect\" (ablate, suppress or boost)", here));
    if (r.effect != RegionEffect::kAblate && !j.contains("keys"))
      throw Error(fmt::format("{}: a {} region needs \"keys\"", here, effect_name(r.effect)));
    if (r.effect == RegionEffect::kAblate && (j.contains("keys") || j.contains("beta")))
      throw Error(fmt::format("{}: an ablate region takes no \"keys\" or \"beta\"", here));
    if (r.effect != RegionEffect::kBoost && j.contains("beta"))
      throw Error(fmt::format("{}: only a boost region takes \"beta\"", here));
    if (r.effect == RegionEffect::kBoost && !j.contains("beta"))
      throw Error(fmt::format("{}: a boost region needs \"beta\"", here));
    control.regions.push_back(std::move(r));
  }
  try {
    control.validate(/*batch=*/kToTheEnd);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", where, e.what()));
  }
  return control;
}

}  // namespace anchors
