#include "receiver_selection.h"

#include <fmt/format.h>

#include <algorithm>

#include "anchors/core/error.h"
#include "anchors/methods/registry.h"
#include "anchors/methods/white_box.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/receiver_heads.h"

namespace anchors::rollout::detail {

ValueMap receiver_selection_options() {
  return {{"heads", IntList{}}, {"top_k", std::int64_t{16}}, {"proximity_ignore", std::int64_t{4}},
          {"exclude_layer0", true}};
}

std::map<std::string, std::string> receiver_selection_option_docs() {
  return {{"heads", "act on these heads instead of the trace's receiver heads: (layer, head) pairs written flat, "
                    "like [2, 3, 5, 0]"},
          {"top_k", "receiver heads acted on: the top-k of this trace by kurtosis (receiver_heads)"},
          {"proximity_ignore", "receiver heads: vertical scores average rows at least this far below the diagonal"},
          {"exclude_layer0", "receiver heads: never select a layer-0 head"}};
}

ReceiverSelection select_heads(const ValueMap& o, const Trace& trace, const Context& context, const std::string& who) {
  if (!context.model) throw Error(fmt::format("{}: the context has no model (the receiver heads need it)", who));
  const auto count = [&](const char* name) { return static_cast<std::size_t>(non_negative_option(o, name, who)); };
  model::ReceiverHeadsOptions ro;
  ro.top_k = count("top_k");
  ro.proximity_ignore = count("proximity_ignore");
  ro.exclude_layer0 = std::get<bool>(o.at("exclude_layer0"));
  ro.heads = model::heads_from_flat(std::get<IntList>(o.at("heads")), who);
  const model::ReceiverHeadsResult found =
      model::receiver_heads(*context.model, {white_box_input(trace, context, who.c_str())}, ro, context.control);
  ReceiverSelection out;
  for (const auto& h : found.heads) out.heads.push_back({h.layer, h.head});
  std::sort(out.heads.begin(), out.heads.end());
  out.sentence_scores = found.sentence_scores.front();
  return out;
}

}  // namespace anchors::rollout::detail
