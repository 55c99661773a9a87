// PyTorch operator registration (torch_ops.h): schemas in TORCH_LIBRARY, one
// set of op kernels for both dispatch keys. Each kernel decodes the tensor
// encodings (region_tensor.h) and calls a backend -- the CPU twins, or the CUDA
// kernels through cuda_dispatch.h -- so the ops and the C++ API cannot drift
// apart and the two keys share every line but the call.
#include "anchors/model/torch_ops.h"
#include "cuda_dispatch.h"
#include "region_tensor.h"

#include <torch/library.h>

#include <optional>
#include <tuple>

#include "anchors/model/attention.h"
#include "anchors/model/band_statistics.h"
#include "anchors/model/sentence_pooling.h"

namespace anchors::model {

// Nothing to do at run time: referencing this object file from the Python
// module and the CLI is what keeps its static registrars when the static
// library is linked.
void register_torch_ops() {}

namespace {

struct CpuBackend {
  static AttentionResult masked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                          const AttentionParams& params) {
    return attention_with_lse(q, k, v, params);
  }
  static torch::Tensor sentence_block_sums(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& lse,
                                           const std::vector<TokenSpan>& spans, const SentencePoolingParams& params) {
    return model::sentence_block_sums(q, k, lse, spans, params);
  }
  static BandStatistics band_statistics(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& lse,
                                        const BandStatisticsParams& params) {
    return model::band_statistics(q, k, lse, params);
  }
};

struct CudaBackend {
  static AttentionResult masked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                          const AttentionParams& params) {
    return cuda::masked_attention(q, k, v, params);
  }
  static torch::Tensor sentence_block_sums(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& lse,
                                           const std::vector<TokenSpan>& spans, const SentencePoolingParams& params) {
    return cuda::sentence_block_sums(q, k, lse, spans, params);
  }
  static BandStatistics band_statistics(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& lse,
                                        const BandStatisticsParams& params) {
    return cuda::band_statistics(q, k, lse, params);
  }
};

template <typename Backend>
std::tuple<at::Tensor, at::Tensor> masked_attention_op(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                       const at::Tensor& regions, const at::Tensor& betas,
                                                       std::optional<double> scale, std::int64_t layer) {
  const AttentionControl control = detail::control_from_tensors(regions, betas, "anchors::masked_attention");
  AttentionParams params;
  params.scale = scale;
  params.layer = layer;
  params.control = control.empty() ? nullptr : &control;
  AttentionResult result = Backend::masked_attention(q, k, v, params);
  return {std::move(result.output), std::move(result.log_sum_exp)};
}

template <typename Backend>
at::Tensor sentence_pooling_op(const at::Tensor& q, const at::Tensor& k, const at::Tensor& lse,
                               const at::Tensor& spans, const at::Tensor& regions, const at::Tensor& betas,
                               std::optional<double> scale, std::int64_t layer) {
  const char* what = "anchors::sentence_pooling";
  const AttentionControl control = detail::control_from_tensors(regions, betas, what);
  SentencePoolingParams params;
  params.scale = scale;
  params.layer = layer;
  params.control = control.empty() ? nullptr : &control;
  return Backend::sentence_block_sums(q, k, lse, detail::spans_from_tensor(spans, what), params);
}

template <typename Backend>
std::tuple<at::Tensor, at::Tensor, at::Tensor> band_statistics_op(const at::Tensor& q, const at::Tensor& k,
                                                                  const at::Tensor& lse, std::int64_t waad_window,
                                                                  std::int64_t fai_near, std::int64_t fai_far,
                                                                  std::int64_t span_first_slot,
                                                                  std::optional<double> scale) {
  BandStatisticsParams params;
  params.scale = scale;
  params.waad_window = waad_window;
  params.fai_near = fai_near;
  params.fai_far = fai_far;
  params.span_first_slot = span_first_slot;
  BandStatistics stats = Backend::band_statistics(q, k, lse, params);
  return {std::move(stats.span), std::move(stats.waad), std::move(stats.fai)};
}

}  // namespace

}  // namespace anchors::model

TORCH_LIBRARY(anchors, m) {
  m.def(
      "masked_attention(Tensor q, Tensor k, Tensor v, Tensor regions, Tensor betas, float? scale=None, "
      "int layer=0) -> (Tensor, Tensor)");
  m.def(
      "sentence_pooling(Tensor q, Tensor k, Tensor lse, Tensor spans, Tensor regions, Tensor betas, "
      "float? scale=None, int layer=0) -> Tensor");
  m.def(
      "band_statistics(Tensor q, Tensor k, Tensor lse, int waad_window=10, int fai_near=10, int fai_far=100, "
      "int span_first_slot=0, float? scale=None) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(anchors, CPU, m) {
  using Backend = anchors::model::CpuBackend;
  m.impl("masked_attention", TORCH_FN(anchors::model::masked_attention_op<Backend>));
  m.impl("sentence_pooling", TORCH_FN(anchors::model::sentence_pooling_op<Backend>));
  m.impl("band_statistics", TORCH_FN(anchors::model::band_statistics_op<Backend>));
}

// A CUDA build of LibTorch sends CUDA tensors here; with the CPU wheel no
// tensor is ever on CUDA and these never run.
#if ANCHORS_WITH_CUDA
TORCH_LIBRARY_IMPL(anchors, CUDA, m) {
  using Backend = anchors::model::CudaBackend;
  m.impl("masked_attention", TORCH_FN(anchors::model::masked_attention_op<Backend>));
  m.impl("sentence_pooling", TORCH_FN(anchors::model::sentence_pooling_op<Backend>));
  m.impl("band_statistics", TORCH_FN(anchors::model::band_statistics_op<Backend>));
}
#endif
