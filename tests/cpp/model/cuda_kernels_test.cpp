// The CUDA kernels of kernels/cuda (docs/design.md §4) against their CPU twins:
//   masked_attention_forward  <-> attention_with_lse   (attention.h)
//   sentence_block_sums       <-> sentence_block_sums  (sentence_pooling.h)
//   band_statistics           <-> band_statistics      (band_statistics.h)
// Inputs are CPU tensors whose bytes are copied to the device with
// cudaMemcpy; the kernels run through their raw-pointer host API
// (src/torch/model/cuda_kernels.h), because the CPU-only LibTorch wheel has no CUDA
// tensors. float32 results must match to 1e-4 (absolute and relative);
// bfloat16 / float16 attention outputs may be off by at most twice the CPU
// twin's own rounding error (the flash-attention rule of docs/design.md §4).
//
// Every test with "Cuda" in its name is labelled `gpu` (tests/cpp/CMakeLists.txt)
// and skips (GTEST_SKIP) where no device is present or the build has no CUDA.
// The KernelDispatch tests check the LibTorch glue (cuda_dispatch.h) on the
// host only and run everywhere.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "anchors/core/error.h"
#include "anchors/model/attention.h"
#include "anchors/model/band_statistics.h"
#include "anchors/model/sentence_pooling.h"
#include "anchors/model/torch_ops.h"
#include "model/cuda_dispatch.h"
#include "model/cuda_kernels.h"

#if ANCHORS_WITH_CUDA
#include <ATen/core/dispatch/Dispatcher.h>
#include <cuda_runtime.h>
#endif

namespace anchors::model {
namespace {

namespace ck = cuda_kernels;

// ---------------------------------------------------------------------------
// Host-only checks of the dispatch layer (no device needed).
// ---------------------------------------------------------------------------

TEST(KernelDispatch, ResolvesRegionsForTheLayerOnePerHead) {
  AttentionControl control;
  control.regions.push_back(AttentionRegion::suppress(1, {4, 9}, {2, 3}));
  AttentionRegion boost = AttentionRegion::boost(0, {0, 5}, {1, 4}, 0.75);
  boost.heads = {2, 5};
  control.regions.push_back(boost);
  AttentionRegion elsewhere = AttentionRegion::suppress(0, {0, 5}, {0, 5});
  elsewhere.layers = {3};
  control.regions.push_back(elsewhere);

  const std::vector<ck::Region> layer0 = cuda::resolve_regions(&control, 0, /*batch=*/2);
  ASSERT_EQ(layer0.size(), 3u);
  EXPECT_EQ(layer0[0].lane, 1);
  EXPECT_EQ(layer0[0].query_begin, 4);
  EXPECT_EQ(layer0[0].query_end, 9);
  EXPECT_EQ(layer0[0].key_begin, 2);
  EXPECT_EQ(layer0[0].key_end, 3);
  EXPECT_EQ(layer0[0].head, -1);
  EXPECT_EQ(layer0[0].effect, ck::kSuppressEffect);
  EXPECT_EQ(layer0[1].head, 2);
  EXPECT_EQ(layer0[2].head, 5);
  EXPECT_EQ(layer0[2].effect, ck::kBoostEffect);
  EXPECT_DOUBLE_EQ(layer0[2].beta, 0.75);
  EXPECT_EQ(cuda::resolve_regions(&control, 3, 2).size(), 4u);
  EXPECT_TRUE(cuda::resolve_regions(nullptr, 0, 2).empty());
}

TEST(KernelDispatch, ExpandsEveryLaneRegionsAndSkipsAblation) {
  AttentionControl control;
  control.suppress_keys({2, 4}, /*from=*/3, {}, {1});
  control.ablate_heads(0, {0});
  const std::vector<ck::Region> records = cuda::resolve_regions(&control, 0, /*batch=*/3);
  ASSERT_EQ(records.size(), 3u);  // one per lane; the ablation has none
  for (std::int64_t lane = 0; lane < 3; ++lane) {
    EXPECT_EQ(records[lane].lane, lane);
    EXPECT_EQ(records[lane].head, 1);
    EXPECT_EQ(records[lane].query_begin, 3);
    EXPECT_EQ(records[lane].query_end, kToTheEnd);
  }
}

TEST(KernelDispatch, RejectsHostTensors) {
  const torch::Tensor q = torch::randn({1, 2, 4, 8}), k = torch::randn({1, 2, 4, 8});
  // Without CUDA: "built without CUDA"; with it: "must be a CUDA tensor".
  EXPECT_THROW(cuda::masked_attention(q, k, k), Error);
  EXPECT_THROW(cuda::sentence_block_sums(q, k, torch::zeros({1, 2, 4}), {{0, 4}}), Error);
  EXPECT_THROW(cuda::band_statistics(q, k, torch::zeros({1, 2, 4})), Error);
  EXPECT_EQ(cuda::available(), cuda::built_with_cuda() && cuda::device_count() > 0);
}

#if ANCHORS_WITH_CUDA

// The torch ops have a CUDA-key kernel next to the CPU one (a CUDA build of
// LibTorch routes CUDA tensors to the kernels through it).
TEST(KernelDispatch, TorchOpsHaveDeviceKernels) {
  register_torch_ops();
  for (const char* name : {"anchors::masked_attention", "anchors::sentence_pooling", "anchors::band_statistics"}) {
    const auto op = c10::Dispatcher::singleton().findSchema({name, ""});
    ASSERT_TRUE(op.has_value()) << name;
    EXPECT_TRUE(op->hasKernelForDispatchKey(c10::DispatchKey::CPU)) << name;
    EXPECT_TRUE(op->hasKernelForDispatchKey(c10::DispatchKey::CUDA)) << name;
  }
}

// ---------------------------------------------------------------------------
// Device helpers
// ---------------------------------------------------------------------------

#define SKIP_WITHOUT_CUDA_DEVICE()                                                   \
  do {                                                                               \
    if (ck::device_count() == 0) GTEST_SKIP() << "no CUDA device visible";           \
  } while (0)

#define ASSERT_CUDA_OK(expr)                                                         \
  do {                                                                               \
    const int status_ = static_cast<int>(expr);                                      \
    ASSERT_EQ(status_, 0) << #expr << ": " << ck::error_string(status_);             \
  } while (0)

// Owns one cudaMalloc allocation.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
    if (bytes_ > 0 && cudaMalloc(&ptr_, bytes_) != cudaSuccess) {
      ptr_ = nullptr;
      throw Error("cudaMalloc failed");
    }
  }
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  DeviceBuffer(DeviceBuffer&& other) noexcept : ptr_(other.ptr_), bytes_(other.bytes_) {
    other.ptr_ = nullptr;
    other.bytes_ = 0;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(DeviceBuffer&&) = delete;

  void* get() const { return ptr_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  std::size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

// A device copy of a CPU tensor's bytes (contiguous).
DeviceBuffer upload(const torch::Tensor& t) {
  const torch::Tensor c = t.contiguous();
  DeviceBuffer buffer(c.nbytes());
  if (c.nbytes() > 0 && cudaMemcpy(buffer.get(), c.data_ptr(), c.nbytes(), cudaMemcpyHostToDevice) != cudaSuccess)
    throw Error("cudaMemcpy to the device failed");
  return buffer;
}

DeviceBuffer upload_regions(const std::vector<ck::Region>& regions) {
  DeviceBuffer buffer(regions.size() * sizeof(ck::Region));
  if (!regions.empty() &&
      cudaMemcpy(buffer.get(), regions.data(), buffer.bytes(), cudaMemcpyHostToDevice) != cudaSuccess)
    throw Error("cudaMemcpy of the regions failed");
  return buffer;
}

// A CPU tensor [sizes] of `dtype` holding the device buffer's bytes (after
// the device finished its work).
torch::Tensor download(const DeviceBuffer& buffer, torch::IntArrayRef sizes, torch::ScalarType dtype) {
  torch::Tensor t = torch::empty(sizes, dtype);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_EQ(t.nbytes(), buffer.bytes());
  if (cudaMemcpy(t.data_ptr(), buffer.get(), t.nbytes(), cudaMemcpyDeviceToHost) != cudaSuccess)
    throw Error("cudaMemcpy from the device failed");
  return t;
}

ck::DType dtype_of(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kBFloat16: return ck::DType::kBFloat16;
    case torch::kFloat16: return ck::DType::kFloat16;
    default: return ck::DType::kFloat32;
  }
}

// q, k (and v) on the device, the problem record pointing at them and the
// regions of one control for one layer.
struct DeviceProblem {
  DeviceBuffer q, k, v, regions;
  ck::AttentionProblem problem;

  DeviceProblem(const torch::Tensor& q_cpu, const torch::Tensor& k_cpu, const torch::Tensor& v_cpu, double scale,
                const AttentionControl* control, std::int64_t layer)
      : q(upload(q_cpu)),
        k(upload(k_cpu)),
        v(upload(v_cpu)),
        regions(upload_regions(cuda::resolve_regions(control, layer, q_cpu.size(0)))) {
    problem.dtype = dtype_of(q_cpu);
    problem.batch = q_cpu.size(0);
    problem.query_heads = q_cpu.size(1);
    problem.kv_heads = k_cpu.size(1);
    problem.queries = q_cpu.size(2);
    problem.keys = k_cpu.size(2);
    problem.head_dim = q_cpu.size(3);
    problem.scale = scale;
    problem.q = q.get();
    problem.k = k.get();
    problem.regions = regions.as<ck::Region>();
    problem.num_regions = static_cast<std::int64_t>(regions.bytes() / sizeof(ck::Region));
  }
};

struct Shape {
  std::int64_t batch, query_heads, kv_heads, queries, keys, head_dim;
};

struct Inputs {
  torch::Tensor q, k, v;
};

Inputs random_inputs(const Shape& s, torch::ScalarType dtype = torch::kFloat32, std::uint64_t seed = 7) {
  torch::manual_seed(seed);
  Inputs in;
  in.q = torch::randn({s.batch, s.query_heads, s.queries, s.head_dim}).to(dtype);
  in.k = torch::randn({s.batch, s.kv_heads, s.keys, s.head_dim}).to(dtype);
  in.v = torch::randn({s.batch, s.kv_heads, s.keys, s.head_dim}).to(dtype);
  return in;
}

double default_scale(const Shape& s) { return 1.0 / std::sqrt(static_cast<double>(s.head_dim)); }

// |got - want| <= 1e-4 + 1e-4·|want| everywhere, NaN where want is NaN.
void expect_close(const torch::Tensor& got, const torch::Tensor& want, const std::string& what) {
  ASSERT_TRUE(got.sizes().equals(want.sizes())) << what << ": " << got.sizes() << " vs " << want.sizes();
  const torch::Tensor g = got.to(torch::kFloat64), w = want.to(torch::kFloat64);
  EXPECT_TRUE(torch::equal(torch::isnan(g), torch::isnan(w))) << what << ": NaN positions differ";
  const torch::Tensor bad = ((g - w).abs() > (1e-4 + 1e-4 * w.abs())).logical_and(torch::isnan(w).logical_not());
  const std::int64_t count = bad.sum().item<std::int64_t>();
  EXPECT_EQ(count, 0) << what << ": " << count << " of " << w.numel()
                      << " values off; max abs diff = " << (g - w).abs().nan_to_num(0.0).max().item<double>();
}

// ---------------------------------------------------------------------------
// Kernel 1: masked attention forward
// ---------------------------------------------------------------------------

struct AttentionCase {
  std::string name;
  Shape shape;
  AttentionControl control;
  std::int64_t layer = 0;
};

// Controls exercising the rule of attention.h: suppression of a key span, a
// head-specific region, overlapping boosts (betas add), suppression winning
// over a boost, rows whose every visible key is suppressed (uniform), and a
// region of another layer (ignored).
AttentionControl mixed_control(const Shape& s) {
  const std::int64_t first = s.keys - s.queries;
  const auto slot = [&](std::int64_t offset) { return std::min(first + offset, s.keys); };
  AttentionControl control;
  control.regions.push_back(AttentionRegion::suppress(0, {first, s.keys}, {s.keys / 4, s.keys / 2}));
  AttentionRegion head_boost = AttentionRegion::boost(s.batch - 1, {first, s.keys}, {1, 9}, 1.5);
  head_boost.heads = {s.query_heads - 1};
  control.regions.push_back(head_boost);
  control.regions.push_back(AttentionRegion::boost(0, {slot(2), s.keys}, {5, 12}, 0.75));  // overlaps: adds
  control.regions.push_back(AttentionRegion::suppress(0, {slot(3), s.keys}, {8, 10}));    // wins over boosts
  // Rows at slots [first + 1, first + 3) see keys [0, first + 3): all suppressed.
  control.regions.push_back(AttentionRegion::suppress(s.batch - 1, {slot(1), slot(3)}, {0, first + 3}));
  AttentionRegion other_layer = AttentionRegion::suppress(0, {0, s.keys}, {0, s.keys});
  other_layer.layers = {7};
  control.regions.push_back(other_layer);
  return control;
}

std::vector<AttentionCase> attention_cases() {
  std::vector<AttentionCase> cases;
  const std::vector<std::pair<std::string, Shape>> shapes = {
      {"square_gqa_d64", {2, 4, 2, 37, 37, 64}},
      {"cached_prefix_d128", {1, 8, 2, 21, 53, 128}},
      {"single_query_d32", {2, 2, 1, 1, 40, 32}},
      {"odd_dim_d48_mha", {1, 3, 3, 70, 70, 48}},
      {"wide_dim_d256", {1, 2, 1, 19, 33, 256}},
  };
  for (const auto& [name, shape] : shapes) {
    cases.push_back({name + "_plain", shape, {}, 0});
    cases.push_back({name + "_controlled", shape, mixed_control(shape), 0});
  }
  // More regions than a block caches in shared memory: the kernel falls back
  // to reading the list from global memory.
  AttentionCase many{"many_regions", {1, 2, 1, 40, 48, 32}, {}, 0};
  for (std::int64_t r = 0; r < 45; ++r)
    many.control.regions.push_back(AttentionRegion::boost(0, {8, 48}, {r, r + 3}, 0.05 * static_cast<double>(r)));
  many.control.regions.push_back(AttentionRegion::suppress(0, {20, 30}, {0, 10}));
  cases.push_back(std::move(many));
  return cases;
}

TEST(CudaMaskedAttention, MatchesCpuTwinInFloat32) {
  SKIP_WITHOUT_CUDA_DEVICE();
  for (const AttentionCase& c : attention_cases()) {
    SCOPED_TRACE(c.name);
    const Inputs in = random_inputs(c.shape);
    const double scale = default_scale(c.shape);
    AttentionParams params;
    params.scale = scale;
    params.layer = c.layer;
    params.control = c.control.empty() ? nullptr : &c.control;
    const AttentionResult want = attention_with_lse(in.q, in.k, in.v, params);

    DeviceProblem dev(in.q, in.k, in.v, scale, params.control, c.layer);
    const Shape& s = c.shape;
    DeviceBuffer output(in.q.nbytes()), lse(sizeof(float) * s.batch * s.query_heads * s.queries);
    ASSERT_CUDA_OK(ck::masked_attention_forward(dev.problem, dev.v.get(), output.get(), lse.as<float>(), nullptr));
    expect_close(download(output, in.q.sizes(), torch::kFloat32), want.output, "output");
    expect_close(download(lse, {s.batch, s.query_heads, s.queries}, torch::kFloat32), want.log_sum_exp, "lse");
  }
}

TEST(CudaMaskedAttention, AllSuppressedRowsAreUniformAndFinite) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const Shape s{1, 2, 1, 6, 10, 16};
  const Inputs in = random_inputs(s);
  AttentionControl control;
  control.regions.push_back(AttentionRegion::suppress(0, {0, 10}, {0, 7}));  // slots 4..6 see only suppressed keys
  DeviceProblem dev(in.q, in.k, in.v, default_scale(s), &control, 0);
  DeviceBuffer output(in.q.nbytes()), lse(sizeof(float) * s.query_heads * s.queries);
  ASSERT_CUDA_OK(ck::masked_attention_forward(dev.problem, dev.v.get(), output.get(), lse.as<float>(), nullptr));
  const torch::Tensor out = download(output, in.q.sizes(), torch::kFloat32);
  const torch::Tensor row_lse = download(lse, {1, s.query_heads, s.queries}, torch::kFloat32);
  ASSERT_TRUE(torch::isfinite(out).all().item<bool>());
  for (std::int64_t r = 0; r < 3; ++r) {  // slot 4 + r: uniform over keys 0..4 + r
    const torch::Tensor mean = in.v[0][0].narrow(0, 0, 5 + r).mean(0);
    for (std::int64_t h = 0; h < s.query_heads; ++h) {
      expect_close(out[0][h][r], mean, "uniform row output");
      EXPECT_EQ(row_lse[0][h][r].item<float>(), std::numeric_limits<float>::lowest());
    }
  }
}

TEST(CudaMaskedAttention, LowPrecisionWithinTwiceTheCpuTwinsError) {
  SKIP_WITHOUT_CUDA_DEVICE();
  for (const torch::ScalarType dtype : {torch::kBFloat16, torch::kFloat16}) {
    SCOPED_TRACE(std::string(c10::toString(dtype)));
    const Shape s{2, 4, 2, 45, 60, 64};
    const Inputs in = random_inputs(s, dtype);
    const AttentionControl control = mixed_control(s);
    AttentionParams params;
    params.scale = default_scale(s);
    params.control = &control;
    const AttentionResult cpu = attention_with_lse(in.q, in.k, in.v, params);
    // The exact answer for these (rounded) inputs: the same op in float32.
    const AttentionResult exact =
        attention_with_lse(in.q.to(torch::kFloat32), in.k.to(torch::kFloat32), in.v.to(torch::kFloat32), params);

    DeviceProblem dev(in.q, in.k, in.v, *params.scale, &control, 0);
    DeviceBuffer output(in.q.nbytes()), lse(sizeof(float) * s.batch * s.query_heads * s.queries);
    ASSERT_CUDA_OK(ck::masked_attention_forward(dev.problem, dev.v.get(), output.get(), lse.as<float>(), nullptr));
    const torch::Tensor got = download(output, in.q.sizes(), dtype).to(torch::kFloat32);
    const double cpu_error = (cpu.output.to(torch::kFloat32) - exact.output).abs().max().item<double>();
    const double gpu_error = (got - exact.output).abs().max().item<double>();
    EXPECT_LE(gpu_error, 2.0 * cpu_error + 1e-6) << "cpu twin error " << cpu_error;
    // Scores are float32 from the same rounded inputs: the lse agrees to float32 rounding.
    expect_close(download(lse, {s.batch, s.query_heads, s.queries}, torch::kFloat32), cpu.log_sum_exp, "lse");
  }
}

TEST(CudaMaskedAttention, RejectsUnsupportedProblemsWithoutLaunching) {
  SKIP_WITHOUT_CUDA_DEVICE();
  ck::AttentionProblem problem;  // shapes 0: invalid
  EXPECT_EQ(ck::masked_attention_forward(problem, nullptr, nullptr, nullptr, nullptr),
            static_cast<int>(cudaErrorInvalidValue));
  const Shape s{1, 2, 1, 4, 4, 300};  // head_dim above kMaxHeadDim
  const Inputs in = random_inputs(s);
  DeviceProblem dev(in.q, in.k, in.v, 0.1, nullptr, 0);
  DeviceBuffer output(in.q.nbytes());
  EXPECT_EQ(ck::masked_attention_forward(dev.problem, dev.v.get(), output.get(), nullptr, nullptr),
            static_cast<int>(cudaErrorInvalidValue));
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

// ---------------------------------------------------------------------------
// Kernel 2: sentence pooling
// ---------------------------------------------------------------------------

std::vector<std::int64_t> sentence_ids(const std::vector<TokenSpan>& sentences, std::int64_t keys) {
  std::vector<std::int64_t> ids(static_cast<std::size_t>(keys), -1);
  for (std::size_t i = 0; i < sentences.size(); ++i)
    for (std::int64_t t = sentences[i].begin; t < sentences[i].end; ++t) ids[t] = static_cast<std::int64_t>(i);
  return ids;
}

TEST(CudaSentencePooling, MatchesCpuTwin) {
  struct PoolingCase {
    std::string name;
    Shape shape;
    std::vector<TokenSpan> sentences;
    bool controlled;
  };
  // Sentences longer than a 32-key tile (runs carried across tiles), several
  // short ones inside one tile, gaps between sentences, a sentence entirely in
  // a cached prefix, and one ending at the last slot.
  const std::vector<TokenSpan> long_text = {{0, 5}, {7, 40}, {40, 41}, {45, 100}, {100, 104}, {110, 150}};
  const std::vector<PoolingCase> cases = {
      {"square_plain", {2, 4, 2, 150, 150, 64}, long_text, false},
      {"square_controlled", {2, 4, 2, 150, 150, 64}, long_text, true},
      {"cached_prefix_controlled", {1, 4, 1, 120, 150, 32}, long_text, true},
      {"short_sentences_d80", {1, 2, 2, 33, 33, 80}, {{0, 2}, {2, 3}, {3, 9}, {10, 11}, {12, 33}}, true},
  };
  SKIP_WITHOUT_CUDA_DEVICE();
  for (const PoolingCase& c : cases) {
    SCOPED_TRACE(c.name);
    const Shape& s = c.shape;
    const Inputs in = random_inputs(s);
    const AttentionControl control = c.controlled ? mixed_control(s) : AttentionControl{};
    const AttentionControl* active = c.controlled ? &control : nullptr;
    AttentionParams attention_params;
    attention_params.scale = default_scale(s);
    attention_params.control = active;
    const torch::Tensor lse = attention_with_lse(in.q, in.k, in.v, attention_params).log_sum_exp;

    SentencePoolingParams params;
    params.scale = default_scale(s);
    params.query_tile = 16;
    params.key_tile = 24;
    params.control = active;
    const torch::Tensor want = sentence_block_sums(in.q, in.k, lse, c.sentences, params);

    DeviceProblem dev(in.q, in.k, in.v, default_scale(s), active, 0);
    const DeviceBuffer lse_dev = upload(lse);
    const std::vector<std::int64_t> ids = sentence_ids(c.sentences, s.keys);
    const DeviceBuffer ids_dev = upload(torch::tensor(ids, torch::kInt64));
    const auto S = static_cast<std::int64_t>(c.sentences.size());
    DeviceBuffer sums(sizeof(float) * s.batch * s.query_heads * S * S);
    ASSERT_CUDA_OK(ck::sentence_block_sums(dev.problem, lse_dev.as<float>(), ids_dev.as<std::int64_t>(), S,
                                           sums.as<float>(), nullptr));
    expect_close(download(sums, {s.batch, s.query_heads, S, S}, torch::kFloat32), want, "block sums");
  }
}

// ---------------------------------------------------------------------------
// Kernel 3: band statistics
// ---------------------------------------------------------------------------

TEST(CudaBandStatistics, MatchesCpuTwin) {
  struct BandCase {
    std::string name;
    Shape shape;
    BandStatisticsParams params;
  };
  BandStatisticsParams defaults;
  BandStatisticsParams narrow;
  narrow.waad_window = 3;
  narrow.fai_near = 2;
  narrow.fai_far = 7;
  narrow.span_first_slot = 20;
  BandStatisticsParams late;  // span rows start inside the queries; FAI windows past the end are NaN
  late.span_first_slot = 140;
  late.fai_near = 30;
  late.fai_far = 40;
  const std::vector<BandCase> cases = {
      {"square_defaults", {2, 4, 2, 150, 150, 64}, defaults},
      {"cached_prefix_narrow", {1, 4, 1, 100, 130, 32}, narrow},
      {"cached_prefix_late", {1, 2, 2, 90, 160, 48}, late},
      {"short_sequence", {1, 2, 1, 12, 12, 16}, defaults},  // FAI rows only for keys 0 and 1, NaN after
  };
  SKIP_WITHOUT_CUDA_DEVICE();
  for (const BandCase& c : cases) {
    SCOPED_TRACE(c.name);
    const Shape& s = c.shape;
    const Inputs in = random_inputs(s);
    AttentionParams attention_params;
    attention_params.scale = default_scale(s);
    const torch::Tensor lse = attention_with_lse(in.q, in.k, in.v, attention_params).log_sum_exp;
    BandStatisticsParams params = c.params;
    params.scale = default_scale(s);
    params.query_tile = 16;
    params.key_tile = 24;
    const BandStatistics want = band_statistics(in.q, in.k, lse, params);

    DeviceProblem dev(in.q, in.k, in.v, default_scale(s), nullptr, 0);
    const DeviceBuffer lse_dev = upload(lse);
    ck::BandWindows windows;
    windows.waad_window = params.waad_window;
    windows.fai_near = params.fai_near;
    windows.fai_far = params.fai_far;
    windows.span_first_slot = params.span_first_slot;
    DeviceBuffer span(sizeof(float) * s.batch * s.query_heads);
    DeviceBuffer waad(sizeof(float) * s.batch * s.query_heads * s.queries);
    DeviceBuffer fai(sizeof(float) * s.batch * s.query_heads * s.keys);
    ASSERT_CUDA_OK(ck::band_statistics(dev.problem, lse_dev.as<float>(), windows, span.as<float>(), waad.as<float>(),
                                       fai.as<float>(), nullptr));
    expect_close(download(span, {s.batch, s.query_heads}, torch::kFloat32), want.span, "span");
    expect_close(download(waad, {s.batch, s.query_heads, s.queries}, torch::kFloat32), want.waad, "waad");
    expect_close(download(fai, {s.batch, s.query_heads, s.keys}, torch::kFloat32), want.fai, "fai");
  }
}

// Suppression reaches the band statistics too (the CPU twin takes no control):
// against a float64 full-softmax reference of the controlled probabilities.
TEST(CudaBandStatistics, AppliesRegionsLikeTheAttention) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const Shape s{1, 2, 1, 40, 48, 32};
  const Inputs in = random_inputs(s);
  const AttentionControl control = mixed_control(s);
  AttentionParams attention_params;
  attention_params.scale = default_scale(s);
  attention_params.control = &control;
  const torch::Tensor lse = attention_with_lse(in.q, in.k, in.v, attention_params).log_sum_exp;
  // Probabilities of the controlled attention: its output with V = identity rows.
  const torch::Tensor eye = torch::eye(s.keys).expand({s.batch, s.kv_heads, s.keys, s.keys}).contiguous();
  // Zero-padding q and k to Tk dims leaves the scores unchanged (the scale is explicit).
  const torch::Tensor q_pad = torch::cat({in.q, torch::zeros({s.batch, s.query_heads, s.queries, s.keys - s.head_dim})}, -1);
  const torch::Tensor k_pad = torch::cat({in.k, torch::zeros({s.batch, s.kv_heads, s.keys, s.keys - s.head_dim})}, -1);
  const torch::Tensor P =
      attention_with_lse(q_pad, k_pad, eye, attention_params).output.to(torch::kFloat64);  // [B, Hq, Tq, Tk]

  const std::int64_t first = s.keys - s.queries, W = 4, near = 3, far = 9;
  torch::Tensor waad_ref = torch::zeros({s.batch, s.query_heads, s.queries}, torch::kFloat64);
  torch::Tensor fai_ref = torch::zeros({s.batch, s.query_heads, s.keys}, torch::kFloat64);
  torch::Tensor span_ref = torch::zeros({s.batch, s.query_heads}, torch::kFloat64);
  auto p = P.accessor<double, 4>();
  for (std::int64_t h = 0; h < s.query_heads; ++h) {
    for (std::int64_t r = 0; r < s.queries; ++r) {
      double waad = 0, span = 0;
      for (std::int64_t key = 0; key <= first + r; ++key) {
        const std::int64_t d = first + r - key;
        waad += p[0][h][r][key] * static_cast<double>(std::min(d, W));
        span += p[0][h][r][key] * static_cast<double>(d);
      }
      waad_ref[0][h][r] = waad;
      span_ref[0][h] = span_ref[0][h].item<double>() + span / static_cast<double>(s.queries);
    }
    for (std::int64_t key = 0; key < s.keys; ++key) {
      double sum = 0;
      std::int64_t rows = 0;
      for (std::int64_t t = std::max(key + near, first); t <= std::min(key + far, s.keys - 1); ++t, ++rows)
        sum += p[0][h][t - first][key];
      fai_ref[0][h][key] = rows > 0 ? sum / static_cast<double>(rows) : std::nan("");
    }
  }

  DeviceProblem dev(in.q, in.k, in.v, default_scale(s), &control, 0);
  const DeviceBuffer lse_dev = upload(lse);
  ck::BandWindows windows;
  windows.waad_window = W;
  windows.fai_near = near;
  windows.fai_far = far;
  DeviceBuffer span(sizeof(float) * s.query_heads), waad(sizeof(float) * s.query_heads * s.queries),
      fai(sizeof(float) * s.query_heads * s.keys);
  ASSERT_CUDA_OK(ck::band_statistics(dev.problem, lse_dev.as<float>(), windows, span.as<float>(), waad.as<float>(),
                                     fai.as<float>(), nullptr));
  expect_close(download(span, {1, s.query_heads}, torch::kFloat32), span_ref, "span");
  expect_close(download(waad, {1, s.query_heads, s.queries}, torch::kFloat32), waad_ref, "waad");
  expect_close(download(fai, {1, s.query_heads, s.keys}, torch::kFloat32), fai_ref, "fai");
}

#else  // !ANCHORS_WITH_CUDA

TEST(CudaKernels, SkippedWithoutCuda) { GTEST_SKIP() << "built without CUDA"; }

#endif  // ANCHORS_WITH_CUDA

}  // namespace
}  // namespace anchors::model
