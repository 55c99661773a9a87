#include "anchors/model/attention_suppression.h"
#include "tensor_description.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "anchors/core/error.h"
#include "anchors/model/attention.h"
#include "anchors/model/kv_cache.h"

namespace anchors::model {
namespace {

constexpr const char* kWhat = "suppression_matrix";
constexpr double kEpsilon = 1e-9;      // value(t) = log(KL + kEpsilon)
constexpr double kUnkeptLogit = -1e9;  // a side's logit for a union token it did not keep
constexpr std::int64_t kLogKlRows = 64;  // rows per step of suppression_log_kl

void check_rule(const char* what, double temperature, double top_p, std::int64_t max_kept) {
  if (!std::isfinite(temperature) || temperature <= 0)
    throw Error(fmt::format("{}: temperature {} must be finite and > 0", what, temperature));
  if (!(top_p > 0.0 && top_p <= 1.0)) throw Error(fmt::format("{}: top_p {} outside (0, 1]", what, top_p));
  if (max_kept < 1) throw Error(fmt::format("{}: max_kept {} < 1", what, max_kept));
}

void check_cancel(const SuppressionOptions& options) {
  options.control.check(kWhat);
}

// One side's kept tokens at N positions: the W = min(max_kept, V) largest
// logits in descending order (W >= every k, so the kept set is always a prefix
// of them) and k, the number kept.
struct Kept {
  torch::Tensor logits;  // [N, W] float64 (raw logits, not divided by the temperature)
  torch::Tensor ids;     // [N, W] int64
  torch::Tensor count;   // [N] int64, 1 <= count <= W
};

// The per-side rule of docs/design.md §3 for logit rows [N, V]: probabilities
// softmax(l / T) over the whole vocabulary (log-sum-exp in float64), sorted
// descending; k = (first index whose cumulative sum >= p) + 1, at most W.
// Since k <= W, the top-W logits and the cumulative sum of their probabilities
// decide k exactly; no sort of the vocabulary. Rows where the top W never reach
// p get k = W (the cap).
Kept keep_nucleus(const torch::Tensor& logits, double temperature, double top_p, std::int64_t max_kept) {
  const std::int64_t width = std::min(max_kept, logits.size(1));
  auto [values, ids] = logits.topk(width, /*dim=*/-1, /*largest=*/true, /*sorted=*/true);
  const torch::Tensor values64 = values.to(torch::kFloat64);
  // A float64 copy (copy = true: never the caller's tensor), divided in place.
  const torch::Tensor scaled = logits.to(torch::kFloat64, /*non_blocking=*/false, /*copy=*/true).div_(temperature);
  const torch::Tensor lse = torch::logsumexp(scaled, -1, /*keepdim=*/true);
  const torch::Tensor cumulative = torch::exp(values64 / temperature - lse).cumsum(-1);
  const torch::Tensor count = (cumulative < top_p).sum(-1).add(1).clamp_max(width);
  return {values64, ids, count};
}

// value(t) = log(KL(base ‖ suppressed) + 1e-9) [N] float64 for N aligned rows
// of kept sets (same device).
torch::Tensor union_log_kl(const Kept& base, const Kept& supp, double temperature) {
  const auto options = base.logits.options();
  const std::int64_t wb = base.ids.size(1), ws = supp.ids.size(1);
  const torch::Tensor keep_b = torch::arange(wb, base.count.options()).unsqueeze(0) < base.count.unsqueeze(1);
  const torch::Tensor keep_s = torch::arange(ws, supp.count.options()).unsqueeze(0) < supp.count.unsqueeze(1);
  // same[n, a, b]: suppressed candidate a and base candidate b are the same token.
  const torch::Tensor same = supp.ids.unsqueeze(2) == base.ids.unsqueeze(1);  // [N, Ws, Wb]
  // The union = base's kept tokens, then suppressed-kept tokens base did not keep.
  const torch::Tensor supp_match = same & keep_s.unsqueeze(2);                // kept by supp, per base candidate
  const torch::Tensor supp_on_base =
      torch::where(supp_match.any(1), torch::where(supp_match, supp.logits.unsqueeze(2), 0.0).sum(1),
                   torch::full({}, kUnkeptLogit, options));                   // [N, Wb]
  const torch::Tensor extra = keep_s & ~(same & keep_b.unsqueeze(1)).any(2);  // [N, Ws]
  const torch::Tensor member = torch::cat({keep_b, extra}, 1);
  const double inf = std::numeric_limits<double>::infinity();
  const torch::Tensor base_union =
      torch::cat({base.logits, torch::full_like(supp.logits, kUnkeptLogit)}, 1).masked_fill(~member, -inf);
  const torch::Tensor supp_union = torch::cat({supp_on_base, supp.logits}, 1).masked_fill(~member, -inf);
  const torch::Tensor log_p = torch::log_softmax(base_union / temperature, -1);
  const torch::Tensor log_q = torch::log_softmax(supp_union / temperature, -1);
  const torch::Tensor p = log_p.exp();
  const torch::Tensor terms = torch::where(member & (p > 0), p * (log_p - log_q), torch::zeros({}, options));
  return torch::log(terms.sum(-1).clamp_min(0.0) + kEpsilon);
}

// A `lanes`-lane cache holding the first `length` slots of the batch-1 cache
// `base` in every lane, with room for `capacity` slots. Only the prefix is
// copied (a clone + truncate + repeat_lanes would copy all of base's slots).
KVCache fan_out_prefix(const KVCache& base, std::int64_t length, std::int64_t lanes, std::int64_t capacity) {
  KVCache out;
  out.reserve(capacity);
  for (std::int64_t layer = 0; layer < base.num_layers(); ++layer) {
    const auto [keys, values] = base.layer(layer);
    out.extend(layer, keys.narrow(2, 0, length).expand({lanes, -1, -1, -1}),
               values.narrow(2, 0, length).expand({lanes, -1, -1, -1}));
  }
  out.commit(length);
  return out;
}

}  // namespace

torch::Tensor suppression_log_kl(const torch::Tensor& base_logits, const torch::Tensor& suppressed_logits,
                                 double temperature, double top_p, std::int64_t max_kept) {
  constexpr const char* what = "suppression_log_kl";
  check_rule(what, temperature, top_p, max_kept);
  if (!base_logits.defined() || !suppressed_logits.defined() || base_logits.dim() != 2 ||
      !base_logits.sizes().equals(suppressed_logits.sizes()) || base_logits.size(1) < 1 ||
      !torch::isFloatingType(base_logits.scalar_type()) || !torch::isFloatingType(suppressed_logits.scalar_type()) ||
      base_logits.device() != suppressed_logits.device())
    throw Error(fmt::format("{}: needs two floating-point logit tensors [T, V] of one shape and device, got {} and {}",
                            what, detail::describe(base_logits), detail::describe(suppressed_logits)));
  const at::NoGradGuard no_grad;
  const std::int64_t rows = base_logits.size(0);
  torch::Tensor out = torch::empty({rows}, torch::kFloat64);
  for (std::int64_t at = 0; at < rows; at += kLogKlRows) {
    const std::int64_t n = std::min(kLogKlRows, rows - at);
    const Kept base = keep_nucleus(base_logits.narrow(0, at, n), temperature, top_p, max_kept);
    const Kept supp = keep_nucleus(suppressed_logits.narrow(0, at, n), temperature, top_p, max_kept);
    out.narrow(0, at, n).copy_(union_log_kl(base, supp, temperature).cpu());
  }
  return out;
}

torch::Tensor centre_suppression_matrix(const torch::Tensor& raw) {
  if (!raw.defined() || raw.dim() != 2 || raw.size(0) != raw.size(1) || !torch::isFloatingType(raw.scalar_type()))
    throw Error("centre_suppression_matrix: needs a square floating-point matrix [S, S]");
  const std::int64_t S = raw.size(0);
  torch::Tensor out = raw.detach().to(torch::kCPU, torch::kFloat64).clone();
  const torch::Tensor upper = torch::ones({S, S}, torch::kBool).triu();  // j <= i (row j, column i)
  out.masked_fill_(upper, std::numeric_limits<double>::quiet_NaN());
  const torch::Tensor present = ~out.isnan();
  const torch::Tensor counts = present.sum(1, /*keepdim=*/true);
  const torch::Tensor means = torch::where(present, out, torch::zeros({}, out.options())).sum(1, true) / counts;
  return out - means;  // rows with no entry: NaN - NaN (0/0) = NaN
}

// Memory, live at once (P = sentence tokens, W = min(max_kept, V), B = lanes):
//  * the base KV cache (T slots, batch 1) -- kept for the whole run;
//  * the base pass's kept logits / ids / counts: P x W float64 + int64 + P int64;
//  * per group: a B-lane KV cache of T slots (only the prefix copied from the
//    base), the hidden states [B, T - start, hidden] of its one pass (the base
//    pass's hidden states are released before the first group);
//  * per vocabulary chunk: [vocab_chunk, V] float32 logits and their float64
//    copy for the log-sum-exp, [vocab_chunk, W] kept sets and a
//    [vocab_chunk, W, W] id-equality mask for the union.
// Nothing scales with T x V or B x T x V.
torch::Tensor suppression_matrix(const CausalLM& model, const TokenTrace& trace, const SuppressionOptions& options) {
  check_rule(kWhat, options.temperature, options.top_p, options.max_kept);
  if (options.batch_lanes < 1) throw Error(fmt::format("{}: batch_lanes {} < 1", kWhat, options.batch_lanes));
  if (options.vocab_chunk < 1) throw Error(fmt::format("{}: vocab_chunk {} < 1", kWhat, options.vocab_chunk));
  validate_token_trace(trace, model, kWhat);
  check_cancel(options);

  const at::NoGradGuard no_grad;
  const auto T = static_cast<std::int64_t>(trace.ids.size());
  const auto S = static_cast<std::int64_t>(trace.sentences.size());
  const torch::Device device = model.device();
  const auto long_on_device = torch::dtype(torch::kInt64).device(device);
  const torch::Tensor ids = torch::tensor(trace.ids, torch::kInt64).view({1, T}).to(device);
  const double temperature = options.temperature;

  // The positions whose predictions are compared: every sentence token, in
  // order. Sentence j owns rows [row_begin[j], row_begin[j] + |j|) of them.
  std::vector<std::int64_t> positions;
  std::vector<std::int64_t> row_begin;
  for (const TokenSpan& span : trace.sentences) {
    row_begin.push_back(static_cast<std::int64_t>(positions.size()));
    for (std::int64_t t = span.begin; t < span.end; ++t) positions.push_back(t);
  }
  const auto P = static_cast<std::int64_t>(positions.size());
  const torch::Tensor positions_on_device = torch::tensor(positions, torch::kInt64).to(device);

  // Base pass: the whole trace once (keeping its KV cache for the suffix
  // passes), then per compared position only its top-W logits, ids and k.
  KVCache base_cache;
  base_cache.reserve(T);
  Kept base;
  {
    const torch::Tensor hidden =
        model.hidden_states(ids, torch::arange(T, long_on_device), options.reuse_prefix ? &base_cache : nullptr)[0];
    std::vector<torch::Tensor> logits, kept_ids, counts;
    for (std::int64_t at = 0; at < P; at += options.vocab_chunk) {
      check_cancel(options);
      const std::int64_t n = std::min(options.vocab_chunk, P - at);
      const torch::Tensor rows = model.project_to_vocab(hidden.index_select(0, positions_on_device.narrow(0, at, n)));
      Kept chunk = keep_nucleus(rows, temperature, options.top_p, options.max_kept);
      logits.push_back(std::move(chunk.logits));
      kept_ids.push_back(std::move(chunk.ids));
      counts.push_back(std::move(chunk.count));
    }
    base = {torch::cat(logits), torch::cat(kept_ids), torch::cat(counts)};
  }

  torch::Tensor raw = torch::full({S, S}, std::log(kEpsilon), torch::kFloat64);
  auto raw_a = raw.accessor<double, 2>();
  for (std::int64_t first = 0; first < S; first += options.batch_lanes) {
    check_cancel(options);
    const std::int64_t lanes = std::min(options.batch_lanes, S - first);
    // Suffix from the group's earliest sentence; the prefix is the base pass's.
    const std::int64_t start = options.reuse_prefix ? trace.sentences[first].begin : 0;
    const std::int64_t run = T - start;
    KVCache cache;
    const bool cached = start > 0;
    if (cached) cache = fan_out_prefix(base_cache, start, lanes, T);
    AttentionControl control;
    for (std::int64_t lane = 0; lane < lanes; ++lane)
      control.regions.push_back(AttentionRegion::suppress(lane, {0, T}, trace.sentences[first + lane]));
    const torch::Tensor hidden =
        model
            .hidden_states(ids.narrow(1, start, run).expand({lanes, run}).contiguous(),
                           torch::arange(start, T, long_on_device), cached ? &cache : nullptr, &control)
            .flatten(0, 1);  // [lanes * run, hidden], row = lane * run + (t - start)

    // Lane `lane` (sentence i = first + lane) is compared at the positions of
    // sentences j >= i: rows [row_begin[i], P) of the compared positions.
    std::vector<std::int64_t> hidden_rows, base_rows;
    for (std::int64_t lane = 0; lane < lanes; ++lane)
      for (std::int64_t r = row_begin[first + lane]; r < P; ++r) {
        hidden_rows.push_back(lane * run + positions[r] - start);
        base_rows.push_back(r);
      }
    std::vector<double> values(hidden_rows.size());
    const auto count = static_cast<std::int64_t>(hidden_rows.size());
    const torch::Tensor hidden_index = torch::tensor(hidden_rows, torch::kInt64).to(device);
    const torch::Tensor base_index = torch::tensor(base_rows, torch::kInt64).to(device);
    for (std::int64_t at = 0; at < count; at += options.vocab_chunk) {
      check_cancel(options);
      const std::int64_t n = std::min(options.vocab_chunk, count - at);
      const torch::Tensor rows = model.project_to_vocab(hidden.index_select(0, hidden_index.narrow(0, at, n)));
      const Kept supp = keep_nucleus(rows, temperature, options.top_p, options.max_kept);
      const torch::Tensor b = base_index.narrow(0, at, n);
      const Kept base_rows_kept{base.logits.index_select(0, b), base.ids.index_select(0, b),
                                base.count.index_select(0, b)};
      const torch::Tensor chunk = union_log_kl(base_rows_kept, supp, temperature).cpu().contiguous();
      std::copy(chunk.data_ptr<double>(), chunk.data_ptr<double>() + n, values.begin() + at);
    }

    // S[j, i] = mean of value(t) over sentence j's tokens.
    std::size_t next = 0;
    for (std::int64_t lane = 0; lane < lanes; ++lane) {
      const std::int64_t i = first + lane;
      for (std::int64_t j = i; j < S; ++j) {
        const std::int64_t size = trace.sentences[j].size();
        double sum = 0;
        for (std::int64_t k = 0; k < size; ++k) sum += values[next++];
        raw_a[j][i] = sum / static_cast<double>(size);
      }
    }
    options.control.report(static_cast<std::size_t>(first + lanes), static_cast<std::size_t>(S), "sentences");
  }
  return raw;
}

}  // namespace anchors::model
