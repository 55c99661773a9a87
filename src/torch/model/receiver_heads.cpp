#include "anchors/model/receiver_heads.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "anchors/core/error.h"
#include "anchors/model/sentence_attention.h"

namespace anchors::model {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr const char* kWhat = "receiver_heads";

void check_options(const ReceiverHeadsOptions& options, std::int64_t layers, std::int64_t heads) {
  if (options.top_k == 0) throw Error(fmt::format("{}: top_k must be >= 1", kWhat));
  for (std::size_t n = 0; n < options.heads.size(); ++n) {
    const HeadIndex& h = options.heads[n];
    if (h.layer < 0 || h.layer >= layers || h.head < 0 || h.head >= heads)
      throw Error(fmt::format("{}: receiver head {} (layer {}, head {}) is outside the model's {} layers x {} heads",
                              kWhat, n, h.layer, h.head, layers, heads));
    for (std::size_t m = 0; m < n; ++m)
      if (options.heads[m] == h)
        throw Error(fmt::format("{}: receiver head (layer {}, head {}) is given twice", kWhat, h.layer, h.head));
  }
}

// Mean of the non-NaN values; NaN when there are none.
double nan_mean(double sum, std::size_t count) { return count == 0 ? kNaN : sum / static_cast<double>(count); }

}  // namespace

ReceiverHeadsResult receiver_heads(const CausalLM& model, const std::vector<TokenTrace>& traces,
                                   const ReceiverHeadsOptions& options, const RunControl& control) {
  const std::int64_t L = model.config().num_hidden_layers;
  const std::int64_t H = model.config().num_attention_heads;
  if (traces.empty()) throw Error(fmt::format("{}: no traces", kWhat));
  check_options(options, L, H);
  // Every trace is checked before the first forward pass.
  for (std::size_t n = 0; n < traces.size(); ++n)
    validate_token_trace(traces[n], model, fmt::format("{}: trace {}", kWhat, n).c_str());

  const auto Lu = static_cast<std::size_t>(L), Hu = static_cast<std::size_t>(H);
  ReceiverHeadsResult result;
  Matrix kurtosis_sum(Lu, Hu, 0.0);
  std::vector<std::size_t> kurtosis_count(Lu * Hu, 0);
  result.vertical.reserve(traces.size());
  for (std::size_t n = 0; n < traces.size(); ++n) {
    const TokenTrace& trace = traces[n];
    const std::size_t S = trace.sentences.size();
    // [L, H, S, S] float32 block means, one forward pass.
    // Cancellation only: the progress unit here is the trace.
    RunControl cancel_only;
    cancel_only.cancel = control.cancel;
    const torch::Tensor means =
        sentence_attention(model, trace.ids, trace.sentences, std::nullopt, {}, cancel_only).to(torch::kFloat64).contiguous();
    const double* data = means.data_ptr<double>();
    Matrix vertical(Lu * Hu, S);
    Matrix block(S, S);
    for (std::size_t row = 0; row < Lu * Hu; ++row) {
      std::copy(data + row * S * S, data + (row + 1) * S * S, block.data.begin());
      const std::vector<double> v = vertical_scores(block, options.proximity_ignore);
      std::copy(v.begin(), v.end(), vertical.data.begin() + static_cast<std::ptrdiff_t>(row * S));
      const double k = fisher_kurtosis(v);
      if (!std::isnan(k)) {
        kurtosis_sum.data[row] += k;
        ++kurtosis_count[row];
      }
    }
    result.vertical.push_back(std::move(vertical));
    control.report(n + 1, traces.size(), "traces");
  }

  result.kurtosis = Matrix(Lu, Hu);
  for (std::size_t row = 0; row < Lu * Hu; ++row)
    result.kurtosis.data[row] = nan_mean(kurtosis_sum.data[row], kurtosis_count[row]);

  if (options.heads.empty()) {
    result.heads = top_receiver_heads(result.kurtosis, options.top_k, options.exclude_layer0);
    if (result.heads.empty())
      throw Error(fmt::format(
          "{}: no {}head has a finite kurtosis (each trace needs at least proximity_ignore + 2 = {} sentences "
          "whose vertical scores are not all equal)",
          kWhat, options.exclude_layer0 ? "non-layer-0 " : "", options.proximity_ignore + 2));
  } else {
    for (const HeadIndex& h : options.heads)
      result.heads.push_back({h.layer, h.head, result.kurtosis(static_cast<std::size_t>(h.layer),
                                                               static_cast<std::size_t>(h.head))});
  }

  result.sentence_scores.reserve(traces.size());
  for (const Matrix& vertical : result.vertical) {
    std::vector<double> scores(vertical.cols, kNaN);
    for (std::size_t j = 0; j < vertical.cols; ++j) {
      double sum = 0;
      std::size_t count = 0;
      for (const ReceiverHead& h : result.heads) {
        const double v = vertical(static_cast<std::size_t>(h.layer) * Hu + static_cast<std::size_t>(h.head), j);
        if (std::isnan(v)) continue;
        sum += v;
        ++count;
      }
      scores[j] = nan_mean(sum, count);
    }
    result.sentence_scores.push_back(std::move(scores));
  }
  return result;
}

}  // namespace anchors::model
