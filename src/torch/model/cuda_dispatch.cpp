// LibTorch glue of the CUDA kernels (cuda_dispatch.h). Compiled in every
// build; without ANCHORS_WITH_CUDA the entry points throw "built without CUDA".
#include "cuda_dispatch.h"
#include "attention_shape.h"
#include "region_tensor.h"
#include "tensor_description.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "anchors/core/error.h"

#if ANCHORS_WITH_CUDA
#include <c10/core/DeviceGuard.h>
#include <c10/core/Stream.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <optional>
#include <tuple>
#endif

namespace anchors::model::cuda {

bool built_with_cuda() {
#if ANCHORS_WITH_CUDA
  return true;
#else
  return false;
#endif
}

int device_count() {
#if ANCHORS_WITH_CUDA
  return cuda_kernels::device_count();
#else
  return 0;
#endif
}

bool available() { return device_count() > 0; }

std::int64_t free_memory(const torch::Device& device) {
#if ANCHORS_WITH_CUDA
  const c10::DeviceGuard guard(device);
  std::int64_t free = 0, total = 0;
  if (const int code = cuda_kernels::memory_info(&free, &total); code != 0)
    throw Error(fmt::format("cudaMemGetInfo failed: {}", cuda_kernels::error_string(code)));
  return free;
#else
  (void)device;
  throw Error("free_memory: this build of the library has no CUDA (built without CUDA)");
#endif
}

std::vector<cuda_kernels::Region> resolve_regions(const AttentionControl* control, std::int64_t layer,
                                                  std::int64_t batch) {
  std::vector<cuda_kernels::Region> out;
  if (control == nullptr) return out;
  for (const AttentionRegion& region : control->regions) {
    // Ablation acts on the output, never on the scores the kernels compute.
    if (region.effect == RegionEffect::kAblate || !region.applies_to_layer(layer)) continue;
    cuda_kernels::Region record{};
    record.query_begin = region.queries.begin;
    record.query_end = region.queries.end;
    record.key_begin = region.keys.begin;
    record.key_end = region.keys.end;
    record.effect = region.effect == RegionEffect::kSuppress ? cuda_kernels::kSuppressEffect
                                                             : cuda_kernels::kBoostEffect;
    record.beta = region.effect == RegionEffect::kBoost ? region.beta : 0.0;
    // The records name one lane each: kEveryLane becomes one record per lane.
    const std::int64_t first_lane = region.lane == kEveryLane ? 0 : region.lane;
    const std::int64_t end_lane = region.lane == kEveryLane ? batch : region.lane + 1;
    for (std::int64_t lane = first_lane; lane < end_lane; ++lane) {
      record.lane = lane;
      if (region.heads.empty()) {
        record.head = -1;
        out.push_back(record);
      } else {
        for (const std::int64_t head : region.heads) {
          record.head = head;
          out.push_back(record);
        }
      }
    }
  }
  return out;
}

#if ANCHORS_WITH_CUDA

namespace {

using detail::AttentionShape;
using detail::describe;

void check_status(int status, const char* what) {
  if (status != 0)
    throw Error(fmt::format("{}: CUDA error {} ({})", what, status, cuda_kernels::error_string(status)));
}

void require_cuda(const torch::Tensor& t, const char* name, const char* what) {
  if (!t.is_cuda())
    throw Error(fmt::format("{}: {} must be a CUDA tensor (use the CPU twin for CPU tensors); got {}", what, name,
                            describe(t)));
}

// The current torch stream of `device` (the default stream unless the caller
// selected another), so the kernels order with the surrounding torch work.
cudaStream_t current_stream(const torch::Device& device) {
  const c10::impl::VirtualGuardImpl impl(device.type());
  return static_cast<cudaStream_t>(impl.getStream(device).native_handle());
}

cuda_kernels::DType dtype_of(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kBFloat16: return cuda_kernels::DType::kBFloat16;
    case torch::kFloat16: return cuda_kernels::DType::kFloat16;
    default: return cuda_kernels::DType::kFloat32;  // check_attention_inputs allowed only these three
  }
}

// Shapes, contiguous copies and the device copy of the regions of one call.
struct Problem {
  AttentionShape shape{};
  torch::Tensor q, k, regions;  // regions: the Region records as bytes on q's device (or undefined)
  cuda_kernels::AttentionProblem kernel;
};

Problem make_problem(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor* v,
                     std::optional<double> scale, const AttentionControl* control, std::int64_t layer,
                     const char* what) {
  Problem p;
  p.shape = detail::check_attention_inputs(what, q, k, v);
  require_cuda(q, "q", what);
  if (p.shape.head_dim > cuda_kernels::kMaxHeadDim)
    throw Error(fmt::format("{}: head_dim {} is above the kernels' maximum of {}", what, p.shape.head_dim,
                            cuda_kernels::kMaxHeadDim));
  if (scale && !std::isfinite(*scale)) throw Error(fmt::format("{}: scale must be finite, got {}", what, *scale));
  const bool controlled = control != nullptr && control->affects_layer(layer);
  if (controlled) control->validate(p.shape.batch, p.shape.query_heads);

  p.q = q.contiguous();
  p.k = k.contiguous();
  const std::vector<cuda_kernels::Region> regions = resolve_regions(controlled ? control : nullptr, layer, p.shape.batch);
  if (!regions.empty()) {
    const auto bytes = static_cast<std::int64_t>(regions.size() * sizeof(cuda_kernels::Region));
    // from_blob does not own the vector: .to() copies it before `regions` goes away.
    p.regions = torch::from_blob(const_cast<cuda_kernels::Region*>(regions.data()), {bytes}, torch::kUInt8)
                    .to(q.device());
  }
  cuda_kernels::AttentionProblem& kp = p.kernel;
  kp.dtype = dtype_of(q);
  kp.batch = p.shape.batch;
  kp.query_heads = p.shape.query_heads;
  kp.kv_heads = p.shape.kv_heads;
  kp.queries = p.shape.queries;
  kp.keys = p.shape.keys;
  kp.head_dim = p.shape.head_dim;
  kp.scale = scale.value_or(1.0 / std::sqrt(static_cast<double>(p.shape.head_dim)));
  kp.q = p.q.data_ptr();
  kp.k = p.k.data_ptr();
  kp.regions = p.regions.defined() ? static_cast<const cuda_kernels::Region*>(p.regions.data_ptr()) : nullptr;
  kp.num_regions = static_cast<std::int64_t>(regions.size());
  return p;
}

// lse [B, Hq, Tq] (checked) on q's device as contiguous float32.
torch::Tensor float_lse(const torch::Tensor& lse, const AttentionShape& shape, const torch::Tensor& q,
                        const char* what) {
  check_lse(what, lse, shape, q);
  return lse.to(torch::kFloat32).contiguous();
}

// The kernels know no sliding window yet; their CPU twins (LibTorch ops, which
// also run on CUDA tensors) do, and the model's methods call those.
void refuse_window(std::int64_t window, const char* what) {
  if (window != 0)
    throw Error(fmt::format("{}: sliding windows are not in the CUDA kernels yet (got {}); the LibTorch twin in "
                            "attention.h / sentence_pooling.h / band_statistics.h computes them",
                            what, window));
}

}  // namespace

AttentionResult masked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 const AttentionParams& params) {
  const char* what = "cuda::masked_attention";
  refuse_window(params.sliding_window, what);
  Problem p = make_problem(q, k, &v, params.scale, params.control, params.layer, what);
  const c10::DeviceGuard guard(q.device());
  const torch::Tensor values = v.contiguous();
  AttentionResult result;
  result.output = torch::empty({p.shape.batch, p.shape.query_heads, p.shape.queries, p.shape.head_dim}, q.options());
  result.log_sum_exp = torch::empty({p.shape.batch, p.shape.query_heads, p.shape.queries},
                                    q.options().dtype(torch::kFloat32));
  check_status(cuda_kernels::masked_attention_forward(p.kernel, values.data_ptr(), result.output.data_ptr(),
                                                      result.log_sum_exp.data_ptr<float>(),
                                                      current_stream(q.device())),
               what);
  return result;
}

torch::Tensor sentence_block_sums(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& lse,
                                  const std::vector<TokenSpan>& sentences, const SentencePoolingParams& params) {
  const char* what = "cuda::sentence_block_sums";
  refuse_window(params.sliding_window, what);
  if (params.query_tile < 1 || params.key_tile < 1)
    throw Error(fmt::format("{}: tile sizes must be >= 1, got {} x {}", what, params.query_tile, params.key_tile));
  Problem p = make_problem(q, k, nullptr, params.scale, params.control, params.layer, what);
  const torch::Tensor row_lse = float_lse(lse, p.shape, q, what);
  validate_sentence_spans(sentences, p.shape.keys, what);
  const c10::DeviceGuard guard(q.device());

  const auto S = static_cast<std::int64_t>(sentences.size());
  torch::Tensor sentence_of = torch::full({p.shape.keys}, -1, torch::kInt64);
  for (std::int64_t i = 0; i < S; ++i) sentence_of.narrow(0, sentences[i].begin, sentences[i].size()).fill_(i);
  sentence_of = sentence_of.to(q.device());

  torch::Tensor sums = torch::empty({p.shape.batch, p.shape.query_heads, S, S}, q.options().dtype(torch::kFloat32));
  check_status(cuda_kernels::sentence_block_sums(p.kernel, row_lse.data_ptr<float>(),
                                                 sentence_of.data_ptr<std::int64_t>(), S, sums.data_ptr<float>(),
                                                 current_stream(q.device())),
               what);
  return sums;
}

BandStatistics band_statistics(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& lse,
                               const BandStatisticsParams& params) {
  const char* what = "cuda::band_statistics";
  refuse_window(params.sliding_window, what);
  if (params.query_tile < 1 || params.key_tile < 1)
    throw Error(fmt::format("{}: tile sizes must be >= 1, got {} x {}", what, params.query_tile, params.key_tile));
  if (params.waad_window < 1)
    throw Error(fmt::format("{}: waad_window must be >= 1, got {}", what, params.waad_window));
  if (params.fai_near < 0 || params.fai_far < params.fai_near)
    throw Error(fmt::format("{}: the FAI window [fai_near, fai_far] = [{}, {}] must satisfy 0 <= near <= far", what,
                            params.fai_near, params.fai_far));
  if (params.span_first_slot < 0)
    throw Error(fmt::format("{}: span_first_slot must be >= 0, got {}", what, params.span_first_slot));
  Problem p = make_problem(q, k, nullptr, params.scale, nullptr, 0, what);
  const torch::Tensor row_lse = float_lse(lse, p.shape, q, what);
  const c10::DeviceGuard guard(q.device());

  cuda_kernels::BandWindows windows;
  windows.waad_window = params.waad_window;
  windows.fai_near = params.fai_near;
  windows.fai_far = params.fai_far;
  windows.span_first_slot = params.span_first_slot;
  const auto f32 = q.options().dtype(torch::kFloat32);
  BandStatistics stats;
  stats.span = torch::empty({p.shape.batch, p.shape.query_heads}, f32);
  stats.waad = torch::empty({p.shape.batch, p.shape.query_heads, p.shape.queries}, f32);
  stats.fai = torch::empty({p.shape.batch, p.shape.query_heads, p.shape.keys}, f32);
  check_status(cuda_kernels::band_statistics(p.kernel, row_lse.data_ptr<float>(), windows,
                                             stats.span.data_ptr<float>(), stats.waad.data_ptr<float>(),
                                             stats.fai.data_ptr<float>(), current_stream(q.device())),
               what);
  return stats;
}

#else  // !ANCHORS_WITH_CUDA

namespace {
[[noreturn]] void without_cuda(const char* what) {
  throw Error(fmt::format("{}: anchors was built without CUDA (no nvcc, or ANCHORS_ENABLE_CUDA=OFF)", what));
}
}  // namespace

AttentionResult masked_attention(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                                 const AttentionParams&) {
  without_cuda("cuda::masked_attention");
}

torch::Tensor sentence_block_sums(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                                  const std::vector<TokenSpan>&, const SentencePoolingParams&) {
  without_cuda("cuda::sentence_block_sums");
}

BandStatistics band_statistics(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                               const BandStatisticsParams&) {
  without_cuda("cuda::band_statistics");
}

#endif  // ANCHORS_WITH_CUDA


}  // namespace anchors::model::cuda

