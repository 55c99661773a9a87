#include "region_tensor.h"
#include "tensor_description.h"

#include <fmt/format.h>

#include <cmath>

#include "anchors/core/error.h"

namespace anchors::model::detail {

AttentionControl control_from_tensors(const torch::Tensor& regions, const torch::Tensor& betas, const char* what) {
  if (!regions.defined() || regions.scalar_type() != torch::kInt64 || regions.dim() != 2 ||
      regions.size(1) != kRegionColumns)
    throw Error(fmt::format("{}: regions must be an int64 tensor [R, 7] of rows (lane, query_begin, query_end, "
                            "key_begin, key_end, head, effect); got {}",
                            what, describe(regions)));
  const std::int64_t R = regions.size(0);
  if (!betas.defined() || betas.scalar_type() != torch::kFloat64 || betas.dim() != 1 || betas.size(0) != R)
    throw Error(fmt::format("{}: betas must be a float64 tensor [R] = [{}] (one per region row); got {}", what, R,
                            describe(betas)));
  AttentionControl control;
  if (R == 0) return control;
  // Small host-side tables: read them on the CPU whatever device they came on.
  const torch::Tensor rows = regions.cpu().contiguous();
  const torch::Tensor beta_values = betas.cpu().contiguous();
  const auto r = rows.accessor<std::int64_t, 2>();
  const auto b = beta_values.accessor<double, 1>();
  control.regions.reserve(static_cast<std::size_t>(R));
  for (std::int64_t i = 0; i < R; ++i) {
    const auto where = [&] { return fmt::format("{}: region row {}", what, i); };
    const std::int64_t lane = r[i][0], head = r[i][5], effect = r[i][6];
    const TokenSpan queries{r[i][1], r[i][2]}, keys{r[i][3], r[i][4]};
    if (lane < 0) throw Error(fmt::format("{}: negative lane {}", where(), lane));
    if (queries.begin < 0 || queries.end < queries.begin)
      throw Error(fmt::format("{}: bad query span [{}, {})", where(), queries.begin, queries.end));
    if (keys.begin < 0 || keys.end < keys.begin)
      throw Error(fmt::format("{}: bad key span [{}, {})", where(), keys.begin, keys.end));
    if (head < -1) throw Error(fmt::format("{}: head {} (use -1 for every head)", where(), head));
    if (effect != 0 && effect != 1)
      throw Error(fmt::format("{}: effect {} (0 = suppress, 1 = boost)", where(), effect));
    AttentionRegion region = effect == 0 ? AttentionRegion::suppress(lane, queries, keys)
                                         : AttentionRegion::boost(lane, queries, keys, b[i]);
    if (effect == 1 && !std::isfinite(b[i])) throw Error(fmt::format("{}: boost beta {} is not finite", where(), b[i]));
    if (head >= 0) region.heads = {head};
    control.regions.push_back(std::move(region));
  }
  return control;
}

std::vector<TokenSpan> spans_from_tensor(const torch::Tensor& spans, const char* what) {
  if (!spans.defined() || spans.scalar_type() != torch::kInt64 || spans.dim() != 2 || spans.size(1) != 2)
    throw Error(fmt::format("{}: spans must be an int64 tensor [S, 2] of token spans [begin, end); got {}", what,
                            describe(spans)));
  const torch::Tensor values = spans.cpu().contiguous();
  const auto s = values.accessor<std::int64_t, 2>();
  std::vector<TokenSpan> out;
  out.reserve(static_cast<std::size_t>(values.size(0)));
  for (std::int64_t i = 0; i < values.size(0); ++i) out.push_back({s[i][0], s[i][1]});
  return out;
}

}  // namespace anchors::model::detail
