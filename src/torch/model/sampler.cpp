#include "anchors/model/sampler.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/DistributionsHelper.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <optional>
#include <set>
#include <string_view>

#include "anchors/core/error.h"
#include "anchors/core/hash.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/tokenizer.h"
#include "cuda_dispatch.h"

namespace anchors::model {
namespace {

// Without top-k, the nucleus is looked for among the 256 most likely tokens
// first (a partial selection instead of a full sort of the vocabulary); rows
// whose top 256 do not reach top_p are sorted in full.
constexpr std::int64_t kPrefilter = 256;

// Candidate tokens of one row, on the CPU: probabilities (float64, summing to
// 1 over the whole vocabulary, or over the top-k with top_k) in descending
// order -- or in vocabulary order when nothing truncates -- and their ids.
// Views into the buffers of the step's Candidates: per lane and step the
// sampler touches raw memory only, no tensor is made (the demo's 100 lanes
// per sentence would otherwise pay a few tensor ops each, every token).
struct RowCandidates {
  const double* probs = nullptr;      // [width]
  const std::int64_t* ids = nullptr;  // [width]
  std::int64_t width = 0;
  bool sorted = true;
  // min-p: candidates below this probability are not kept (0: off).
  double floor = 0;
};

// The candidates of every row of one step, and the CPU buffers they point into.
struct Candidates {
  std::vector<RowCandidates> rows;
  std::vector<torch::Tensor> buffers;  // keep the rows' memory alive
};

Candidates candidates(const torch::Tensor& logits, double temperature, double top_p, std::int64_t top_k) {
  const std::int64_t rows = logits.size(0);
  const std::int64_t vocab = logits.size(1);
  const torch::Tensor probs = torch::softmax(logits.to(torch::kFloat64) / temperature, -1);
  Candidates out;
  out.rows.resize(static_cast<std::size_t>(rows));
  const auto cpu_contig = [](const torch::Tensor& t) { return t.to(torch::kCPU).contiguous(); };
  // Rows of a [rows, width] pair of CPU buffers.
  const auto view_rows = [&](torch::Tensor values, torch::Tensor indices, bool sorted) {
    const std::int64_t width = values.size(1);
    const double* v = values.data_ptr<double>();
    const std::int64_t* ids = indices.data_ptr<std::int64_t>();
    const std::int64_t id_stride = indices.size(0) == 1 ? 0 : width;  // one shared id row
    for (std::int64_t r = 0; r < rows; ++r) out.rows[r] = {v + r * width, ids + r * id_stride, width, sorted};
    out.buffers.push_back(std::move(values));
    out.buffers.push_back(std::move(indices));
  };
  if (top_k > 0) {
    auto [values, indices] = probs.topk(std::min(top_k, vocab), -1, /*largest=*/true, /*sorted=*/true);
    view_rows(cpu_contig(values), cpu_contig(indices), true);
  } else if (top_p < 1.0) {
    auto [values, indices] = probs.topk(std::min(kPrefilter, vocab), -1, true, true);
    view_rows(cpu_contig(values), cpu_contig(indices), true);
    for (std::int64_t r = 0; r < rows; ++r) {
      RowCandidates& row = out.rows[r];
      double cum = 0;
      for (std::int64_t i = 0; i < row.width; ++i) cum += row.probs[i];
      if (cum >= top_p || row.width == vocab) continue;
      // The top 256 do not reach top_p: this row's nucleus needs the full sort.
      auto [sv, si] = probs[r].sort(/*stable=*/true, /*dim=*/-1, /*descending=*/true);
      torch::Tensor sorted_values = cpu_contig(sv), sorted_ids = cpu_contig(si);
      row = {sorted_values.data_ptr<double>(), sorted_ids.data_ptr<std::int64_t>(), vocab, true};
      out.buffers.push_back(std::move(sorted_values));
      out.buffers.push_back(std::move(sorted_ids));
    }
  } else {
    view_rows(cpu_contig(probs), torch::arange(vocab, torch::kInt64).unsqueeze(0), false);
  }
  return out;
}

// How many leading candidates are kept: the smallest prefix whose cumulative
// probability (relative to the candidates' total, i.e. renormalised after
// top-k) reaches top_p, at least one.
std::int64_t kept_count(const RowCandidates& c, double top_p) {
  const std::int64_t width = c.width;
  if (top_p >= 1.0 || !c.sorted) return width;
  const double* p = c.probs;
  double total = 0;
  for (std::int64_t i = 0; i < width; ++i) total += p[i];
  const double threshold = top_p * total;
  double cum = 0;
  for (std::int64_t i = 0; i < width; ++i) {
    cum += p[i];
    if (cum >= threshold) return i + 1;
  }
  return width;
}

// min-p after top-k and top-p (transformers' order): sets c.floor to min_p
// times the largest candidate probability and returns how many of the `keep`
// leading candidates remain. The largest candidate is always kept, and
// renormalisation does not change ratios, so this equals transformers'
// MinPLogitsWarper applied to the top-k / top-p survivors.
std::int64_t apply_min_p(RowCandidates& c, std::int64_t keep, double min_p) {
  if (min_p <= 0.0 || keep == 0) return keep;
  const double* p = c.probs;
  double top = p[0];
  if (!c.sorted)
    for (std::int64_t i = 1; i < keep; ++i) top = std::max(top, p[i]);
  c.floor = min_p * top;
  if (!c.sorted) return keep;  // choose() skips the candidates below the floor
  std::int64_t kept = 1;
  while (kept < keep && p[kept] >= c.floor) ++kept;
  return kept;
}

// Inverse CDF over the kept candidates for a uniform u in [0, 1).
std::int64_t choose(const RowCandidates& c, std::int64_t keep, double u) {
  const double* p = c.probs;
  const std::int64_t* ids = c.ids;
  double mass = 0;
  for (std::int64_t i = 0; i < keep; ++i)
    if (p[i] >= c.floor) mass += p[i];
  const double target = u * mass;
  double cum = 0;
  std::int64_t last_positive = 0;
  for (std::int64_t i = 0; i < keep; ++i) {
    if (p[i] <= 0 || p[i] < c.floor) continue;
    last_positive = i;
    cum += p[i];
    if (cum > target) return ids[i];
  }
  return ids[last_positive];  // u * mass rounded up to the total
}

// The uniform draw torch::rand({1}, generator, kFloat64) makes -- the same
// distribution object on the same generator stream, under its lock -- without
// allocating a tensor per lane and step.
double uniform(torch::Generator& generator) {
  auto* cpu = at::check_generator<at::CPUGeneratorImpl>(generator);
  const std::lock_guard<std::mutex> lock(generator.mutex());
  at::uniform_real_distribution<double> distribution(0.0, 1.0);
  return distribution(cpu);
}

// One token per row of logits [A, V], row r drawing with generators[r].
// logits may also be a single row [1, V] shared by all generators.
std::vector<std::int64_t> draw_rows(const torch::Tensor& logits, const SamplingOptions& o,
                                    const std::vector<torch::Generator*>& generators) {
  std::vector<std::int64_t> tokens(generators.size());
  if (o.temperature == 0.0) {
    const torch::Tensor best = logits.argmax(-1).to(torch::kCPU).contiguous();
    const bool shared = best.size(0) == 1;
    for (std::size_t r = 0; r < tokens.size(); ++r)
      tokens[r] = best.data_ptr<std::int64_t>()[shared ? 0 : r];
    return tokens;
  }
  if (logits.size(0) == 1 && tokens.size() > 1) {
    // One row shared by all lanes (the first step after the prefill): truncate it once.
    Candidates shared = candidates(logits, o.temperature, o.top_p, o.top_k);
    RowCandidates& row = shared.rows[0];
    const std::int64_t keep = apply_min_p(row, kept_count(row, o.top_p), o.min_p);
    for (std::size_t r = 0; r < tokens.size(); ++r) tokens[r] = choose(row, keep, uniform(*generators[r]));
    return tokens;
  }
  Candidates step = candidates(logits, o.temperature, o.top_p, o.top_k);
  for (std::size_t r = 0; r < tokens.size(); ++r) {
    RowCandidates& row = step.rows[r];
    const std::int64_t keep = apply_min_p(row, kept_count(row, o.top_p), o.min_p);
    tokens[r] = choose(row, keep, uniform(*generators[r]));
  }
  return tokens;
}

void check_options(const char* where, const CausalLM& model, const SamplingOptions& o) {
  if (!std::isfinite(o.temperature) || o.temperature < 0)
    throw Error(fmt::format("{}: temperature {} must be finite and >= 0", where, o.temperature));
  if (!(o.top_p > 0.0 && o.top_p <= 1.0)) throw Error(fmt::format("{}: top_p {} outside (0, 1]", where, o.top_p));
  if (o.top_k < 0) throw Error(fmt::format("{}: top_k {} < 0", where, o.top_k));
  if (o.max_new_tokens < 0) throw Error(fmt::format("{}: max_new_tokens {} < 0", where, o.max_new_tokens));
  if (!(o.min_p >= 0.0 && o.min_p <= 1.0)) throw Error(fmt::format("{}: min_p {} outside [0, 1]", where, o.min_p));
  if (!std::isfinite(o.repetition_penalty) || o.repetition_penalty <= 0)
    throw Error(fmt::format("{}: repetition_penalty {} must be finite and > 0", where, o.repetition_penalty));
  const std::int64_t vocab = model.config().vocab_size;
  for (const std::int64_t id : o.stop_ids)
    if (id < 0 || id >= vocab) throw Error(fmt::format("{}: stop id {} outside [0, {})", where, id, vocab));
  for (const auto& s : o.stop_strings)
    if (s.empty()) throw Error(fmt::format("{}: empty stop string", where));
  if (!o.control.every_lane())
    throw Error(fmt::format("{}: attention control regions must apply to every lane (lane -1): the call makes "
                            "its own lanes",
                            where));
  try {
    o.control.validate(/*batch=*/1, model.config().num_attention_heads, model.config().num_hidden_layers);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", where, e.what()));
  }
}

void check_ids(const char* where, const CausalLM& model, const std::vector<std::int64_t>& ids) {
  const std::int64_t vocab = model.config().vocab_size;
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= vocab)
      throw Error(fmt::format("{}: prompt id {} at index {} outside [0, {})", where, ids[i], i, vocab));
}

// Text of one lane, decoded incrementally: tokens [start, ids.size()) are still
// pending because their decoding ends inside a character (U+FFFD); once it does
// not, they are appended and all get the appended bytes as their span.
struct LaneText {
  std::string text;
  std::vector<CharSpan> offsets;
  std::size_t start = 0;
};

bool ends_with_replacement(const std::string& s) {
  constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  return s.size() >= kReplacement.size() && std::string_view(s).substr(s.size() - kReplacement.size()) == kReplacement;
}

// Returns the text size before the new bytes (for the stop-string search), or
// nullopt when nothing was appended.
std::optional<std::size_t> push_text(LaneText& lane, const Tokenizer& tokenizer, const std::vector<std::int64_t>& ids,
                                     bool final) {
  if (lane.start >= ids.size()) return std::nullopt;
  const std::vector<std::int64_t> window(ids.begin() + static_cast<std::ptrdiff_t>(lane.start), ids.end());
  const std::string piece = tokenizer.decode(window);
  if (!final && ends_with_replacement(piece)) return std::nullopt;
  const std::size_t before = lane.text.size();
  lane.text += piece;
  for (std::size_t j = lane.start; j < ids.size(); ++j) lane.offsets.push_back({before, lane.text.size()});
  lane.start = ids.size();
  return before;
}

// The final text: the incremental one when it equals decode(ids) (always for
// byte-level BPE); otherwise decode(ids) with spans from prefix decodings.
void finish_text(Sample& s, LaneText& lane, const Tokenizer& tokenizer) {
  push_text(lane, tokenizer, s.ids, true);
  std::string full = tokenizer.decode(s.ids);
  if (full != lane.text) {
    lane.offsets.clear();
    std::size_t begin = 0;
    for (std::size_t k = 0; k < s.ids.size(); ++k) {
      const std::string prefix = tokenizer.decode(std::vector<std::int64_t>(s.ids.begin(), s.ids.begin() + k + 1));
      std::size_t common = 0;
      while (common < prefix.size() && common < full.size() && prefix[common] == full[common]) ++common;
      const std::size_t end = std::max(begin, common);
      lane.offsets.push_back({begin, end});
      begin = end;
    }
    lane.text = std::move(full);
  }
  s.text = std::move(lane.text);
  s.offsets = std::move(lane.offsets);
}

// logits [R, V] as float64 with row r's logits at the ids histories[r]
// divided by `penalty` where positive and multiplied where negative
// (transformers' RepetitionPenaltyLogitsProcessor). One gather and one scatter
// over all rows; the ids of a row must be distinct.
torch::Tensor penalize_rows(const torch::Tensor& logits, const std::vector<const std::vector<std::int64_t>*>& histories,
                            double penalty) {
  torch::Tensor out = logits.to(torch::kFloat64, /*non_blocking=*/false, /*copy=*/true);
  std::vector<std::int64_t> rows, cols;
  for (std::size_t r = 0; r < histories.size(); ++r) {
    rows.insert(rows.end(), histories[r]->size(), static_cast<std::int64_t>(r));
    cols.insert(cols.end(), histories[r]->begin(), histories[r]->end());
  }
  if (cols.empty()) return out;
  const torch::Tensor row_index = torch::tensor(rows, torch::kInt64).to(out.device());
  const torch::Tensor col_index = torch::tensor(cols, torch::kInt64).to(out.device());
  const torch::Tensor values = out.index({row_index, col_index});
  out.index_put_({row_index, col_index}, torch::where(values < 0, values * penalty, values / penalty));
  return out;
}

// The distinct ids of a prompt or a lane's tokens, for the repetition penalty:
// the prompt's ids once, plus per lane the generated ids the prompt lacks.
class TokenHistory {
 public:
  TokenHistory(const std::vector<std::int64_t>& prompt, std::int64_t vocab, std::int64_t lanes)
      : in_prompt_(static_cast<std::size_t>(vocab), false), lanes_(static_cast<std::size_t>(lanes)) {
    for (const std::int64_t id : prompt) {
      if (!in_prompt_[static_cast<std::size_t>(id)]) prompt_ids_.push_back(id);
      in_prompt_[static_cast<std::size_t>(id)] = true;
    }
    for (auto& lane : lanes_) lane.ids = prompt_ids_;
  }
  void add(std::int64_t lane, std::int64_t id) {
    Lane& l = lanes_[static_cast<std::size_t>(lane)];
    if (!in_prompt_[static_cast<std::size_t>(id)] && l.extra.insert(id).second) l.ids.push_back(id);
  }
  const std::vector<std::int64_t>& prompt() const { return prompt_ids_; }
  const std::vector<std::int64_t>& lane(std::int64_t k) const { return lanes_[static_cast<std::size_t>(k)].ids; }

 private:
  struct Lane {
    std::vector<std::int64_t> ids;  // distinct: the prompt's, then the new ones
    std::set<std::int64_t> extra;
  };
  std::vector<bool> in_prompt_;
  std::vector<std::int64_t> prompt_ids_;
  std::vector<Lane> lanes_;
};

// A cache holding only the lanes `keep` (indices into cache's batch).
std::string memory_text(std::int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1 << 30) return fmt::format("{:.2f} GiB", b / (1 << 30));
  if (b >= 1 << 20) return fmt::format("{:.1f} MiB", b / (1 << 20));
  return fmt::format("{} bytes", bytes);
}

}  // namespace

namespace sampler_detail {

torch::Tensor truncated_distribution(const torch::Tensor& logits, double temperature, double top_p,
                                     std::int64_t top_k, double min_p) {
  if (logits.dim() != 1) throw Error("truncated_distribution: logits must be [V]");
  const std::int64_t vocab = logits.size(0);
  torch::Tensor out = torch::zeros({vocab}, torch::kFloat64);
  if (temperature == 0.0) {
    out[logits.argmax().item<std::int64_t>()] = 1.0;
    return out;
  }
  Candidates row = candidates(logits.unsqueeze(0), temperature, top_p, top_k);
  RowCandidates& c = row.rows[0];
  const std::int64_t keep = apply_min_p(c, kept_count(c, top_p), min_p);
  double mass = 0;
  for (std::int64_t i = 0; i < keep; ++i)
    if (c.probs[i] >= c.floor) mass += c.probs[i];
  double* o = out.data_ptr<double>();
  for (std::int64_t i = 0; i < keep; ++i)
    if (c.probs[i] >= c.floor) o[c.ids[i]] = c.probs[i] / mass;
  return out;
}

torch::Tensor apply_repetition_penalty(const torch::Tensor& logits, const std::vector<std::int64_t>& history,
                                       double penalty) {
  if (logits.dim() != 1 && logits.dim() != 2) throw Error("apply_repetition_penalty: logits must be [V] or [R, V]");
  if (!std::isfinite(penalty) || penalty <= 0)
    throw Error(fmt::format("apply_repetition_penalty: penalty {} must be finite and > 0", penalty));
  const std::int64_t vocab = logits.size(-1);
  std::vector<std::int64_t> distinct;
  std::vector<bool> seen(static_cast<std::size_t>(vocab), false);
  for (const std::int64_t id : history) {
    if (id < 0 || id >= vocab) throw Error(fmt::format("apply_repetition_penalty: id {} outside [0, {})", id, vocab));
    if (!seen[static_cast<std::size_t>(id)]) distinct.push_back(id);
    seen[static_cast<std::size_t>(id)] = true;
  }
  const torch::Tensor rows = logits.dim() == 1 ? logits.unsqueeze(0) : logits;
  const std::vector<const std::vector<std::int64_t>*> histories(static_cast<std::size_t>(rows.size(0)), &distinct);
  const torch::Tensor out = penalty == 1.0 ? rows.to(torch::kFloat64) : penalize_rows(rows, histories, penalty);
  return logits.dim() == 1 ? out[0] : out;
}

torch::Generator lane_generator(std::uint64_t seed, std::int64_t lane) {
  const std::uint64_t mixed = splitmix64(splitmix64(seed) ^ splitmix64(0xA5A5A5A5ULL + static_cast<std::uint64_t>(lane)));
  return at::detail::createCPUGenerator(mixed);
}

std::int64_t draw(const torch::Tensor& logits, double temperature, double top_p, std::int64_t top_k,
                  torch::Generator& generator, double min_p) {
  SamplingOptions o;
  o.temperature = temperature;
  o.top_p = top_p;
  o.top_k = top_k;
  o.min_p = min_p;
  return draw_rows(logits.reshape({1, -1}), o, {&generator})[0];
}

std::int64_t lane_bytes(const CausalLM& model, std::int64_t slots) {
  const ModelConfig& c = model.config();
  const auto element = static_cast<std::int64_t>(torch::elementSize(model.dtype()));
  const std::int64_t kv = 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * slots * element;
  // The cache and its compacted copy when lanes finish; float32 logits and the
  // float64 probabilities, sorted copy and cumulative sums of one row; the
  // lane's generator (a Mersenne twister's state).
  return 2 * kv + 28 * c.vocab_size + static_cast<std::int64_t>(sizeof(at::CPUGeneratorImpl));
}

std::int64_t default_batch_budget(const torch::Device& device) {
  if (device.is_cuda()) return cuda::free_memory(device) / 2;
  // MemAvailable: what the kernel can hand out without swapping.
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::int64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024 / 2;
  }
  return std::int64_t{4} << 30;  // no /proc/meminfo (not Linux): 4 GiB
}

}  // namespace sampler_detail

torch::Tensor extend_prefix(const CausalLM& model, KVCache& cache, const std::vector<std::int64_t>& ids,
                            const AttentionControl* control) {
  if (ids.empty()) throw Error("extend_prefix: no ids");
  if (!cache.empty() && cache.batch() != 1)
    throw Error(fmt::format("extend_prefix: needs a batch-1 cache, this one has {} lanes", cache.batch()));
  check_ids("extend_prefix", model, ids);
  const auto count = static_cast<std::int64_t>(ids.size());
  const torch::Tensor step_ids = torch::tensor(ids, torch::kInt64).unsqueeze(0);
  const torch::Tensor positions = torch::arange(cache.length(), cache.length() + count, torch::kInt64);
  const torch::Tensor hidden = model.hidden_states(step_ids, positions, &cache, control);
  return model.project_to_vocab(hidden.select(1, hidden.size(1) - 1))[0];
}

namespace {

// The memory one sample() call may use (SamplingOptions::max_batch_bytes, else
// half the memory available now), and how errors name it.
struct MemoryBudget {
  std::int64_t bytes = 0;
  std::string limit;  // "max_batch_bytes = 2.00 GiB" or "5.10 GiB, half the memory available now"
};

MemoryBudget memory_budget(const CausalLM& model, std::int64_t max_batch_bytes) {
  if (max_batch_bytes > 0)
    return {max_batch_bytes, fmt::format("max_batch_bytes = {}", memory_text(max_batch_bytes))};
  const std::int64_t bytes = sampler_detail::default_batch_budget(model.device());
  return {bytes, fmt::format("{}, half the memory available now", memory_text(bytes))};
}

constexpr const char* kRaiseBudget =
    "lower max_new_tokens or n, or set max_batch_bytes (SamplingOptions, Model.sample(..., max_batch_bytes=)) "
    "where more memory is really free";

// Every sample is kept until the call returns: per token its id, byte span and text.
void check_results_fit(const MemoryBudget& budget, std::int64_t n, std::int64_t max_new_tokens) {
  const std::int64_t per_result = static_cast<std::int64_t>(sizeof(Sample)) + 28 * max_new_tokens;
  if (n > budget.bytes / per_result)
    throw Error(fmt::format("sample: {} samples of up to {} tokens need about {} to hold, more than the memory "
                            "budget ({}); {}",
                            n, max_new_tokens,
                            memory_text(static_cast<std::int64_t>(static_cast<double>(n) * per_result)),
                            budget.limit, kRaiseBudget));
}

// How many of n lanes, each with a cache of `slots` positions, one batch takes.
std::int64_t lanes_that_fit(const CausalLM& model, const MemoryBudget& budget, std::int64_t n, std::int64_t slots) {
  const std::int64_t per_lane = sampler_detail::lane_bytes(model, slots);
  if (per_lane > budget.bytes)
    throw Error(fmt::format("sample: one lane needs about {} (a KV cache of {} positions), more than the "
                            "memory budget ({}); {}",
                            memory_text(per_lane), slots, budget.limit, kRaiseBudget));
  return std::max<std::int64_t>(1, std::min(n, budget.bytes / per_lane));
}


}  // namespace

std::vector<Sample> sample(const CausalLM& model, const std::vector<std::int64_t>& prompt, std::int64_t n,
                           const SamplingOptions& options, const Tokenizer* tokenizer, KVCache* prefix_cache) {
  constexpr const char* kWhere = "sample";
  if (prompt.empty()) throw Error("sample: empty prompt");
  if (n < 1) throw Error(fmt::format("sample: n {} < 1", n));
  check_options(kWhere, model, options);
  check_ids(kWhere, model, prompt);
  if (!options.stop_strings.empty() && tokenizer == nullptr) throw Error("sample: stop strings need a tokenizer");
  const auto prompt_length = static_cast<std::int64_t>(prompt.size());
  const std::int64_t max_positions = model.config().max_position_embeddings;
  if (prompt_length + options.max_new_tokens - 1 > max_positions)
    throw Error(fmt::format("sample: prompt ({}) + max_new_tokens ({}) exceeds max_position_embeddings ({})",
                            prompt_length, options.max_new_tokens, max_positions));
  if (prefix_cache != nullptr && !prefix_cache->empty()) {
    if (prefix_cache->batch() != 1)
      throw Error(fmt::format("sample: the prefix cache has {} lanes, not 1", prefix_cache->batch()));
    if (prefix_cache->length() > prompt_length)
      throw Error(fmt::format("sample: the prefix cache holds {} slots, more than the prompt's {} tokens",
                              prefix_cache->length(), prompt_length));
  }

  const std::int64_t total_slots = prompt_length + options.max_new_tokens;
  const MemoryBudget budget = memory_budget(model, options.max_batch_bytes);
  check_results_fit(budget, n, options.max_new_tokens);
  std::vector<Sample> samples(static_cast<std::size_t>(n));
  if (options.max_new_tokens == 0) {
    for (auto& s : samples) s.finish_reason = "length";
    return samples;
  }

  // Prefill once (batch 1). At least the last prompt token is run so its logits exist.
  const AttentionControl* control = options.control.empty() ? nullptr : &options.control;
  // Prompt slots before `clean_end` are computed as without the control: only
  // they may come from or go to the prefix cache.
  const std::int64_t clean_end = std::min(prompt_length, options.control.first_query());
  KVCache local;
  KVCache& prefix = prefix_cache != nullptr ? *prefix_cache : local;
  if (prefix.length() == prompt_length) prefix.truncate(prompt_length - 1);
  if (prefix.length() > clean_end) prefix.truncate(clean_end);
  if (prefix_cache == nullptr) local.reserve(total_slots);
  const auto ids_between = [&](std::int64_t begin, std::int64_t end) {
    return std::vector<std::int64_t>(prompt.begin() + begin, prompt.begin() + end);
  };
  torch::Tensor prefill_logits;  // [1, V], shared by the n lanes
  KVCache controlled_prompt;     // the prefix plus the slots the control changes (when it starts in the prompt)
  if (clean_end == prompt_length) {
    prefill_logits = extend_prefix(model, prefix, ids_between(prefix.length(), prompt_length), control).unsqueeze(0);
  } else {
    if (prefix.length() < clean_end) extend_prefix(model, prefix, ids_between(prefix.length(), clean_end));
    controlled_prompt = prefix.clone();
    controlled_prompt.reserve(total_slots);
    prefill_logits = extend_prefix(model, controlled_prompt, ids_between(clean_end, prompt_length), control).unsqueeze(0);
  }
  const KVCache& base = clean_end == prompt_length ? prefix : controlled_prompt;
  // A lane holds only the slots after the shared prompt (at least the cache's
  // first allocation, 64 slots), so that is what it costs.
  const std::int64_t lanes_per_batch =
      lanes_that_fit(model, budget, n, std::max<std::int64_t>(total_slots - base.length(), 64));

  std::size_t longest_stop = 0;
  for (const auto& s : options.stop_strings) longest_stop = std::max(longest_stop, s.size());
  const bool penalize = options.repetition_penalty != 1.0;

  // Lanes [first, first + count) in one batch; lane k's state sits at index k - first.
  const auto decode_lanes = [&](std::int64_t first, std::int64_t count) {
    torch::Tensor logits = prefill_logits;
    // The prompt's slots are shared by the lanes, not copied into each: every
    // decoding step reads them once for all lanes (KVCache::share_prefix).
    KVCache cache = KVCache::share_prefix(base, count);
    cache.reserve(total_slots);

    std::vector<torch::Generator> generators;
    generators.reserve(static_cast<std::size_t>(count));
    for (std::int64_t k = 0; k < count; ++k)
      generators.push_back(sampler_detail::lane_generator(options.seed, first + k));
    std::vector<LaneText> texts(static_cast<std::size_t>(count));

    std::vector<std::int64_t> active(static_cast<std::size_t>(count));  // lane (from first) of each batch row
    for (std::int64_t k = 0; k < count; ++k) active[k] = k;
    std::optional<TokenHistory> history;
    if (penalize) history.emplace(prompt, model.config().vocab_size, count);
    while (true) {
      std::vector<torch::Generator*> row_generators;
      for (const std::int64_t lane : active) row_generators.push_back(&generators[lane]);
      if (penalize) {
        // Each row with its lane's history; the shared first row with the prompt's.
        std::vector<const std::vector<std::int64_t>*> histories;
        if (logits.size(0) == 1 && active.size() > 1) {
          histories.push_back(&history->prompt());
        } else {
          for (const std::int64_t lane : active) histories.push_back(&history->lane(lane));
        }
        logits = penalize_rows(logits, histories, options.repetition_penalty);
      }
      const std::vector<std::int64_t> tokens = draw_rows(logits, options, row_generators);

      std::vector<std::int64_t> keep_rows;
      std::vector<std::int64_t> next_tokens;
      for (std::size_t r = 0; r < active.size(); ++r) {
        const std::int64_t lane = active[r];
        Sample& s = samples[first + lane];
        s.ids.push_back(tokens[r]);
        if (penalize) history->add(lane, tokens[r]);
        bool stopped = std::find(options.stop_ids.begin(), options.stop_ids.end(), tokens[r]) != options.stop_ids.end();
        if (tokenizer != nullptr && !stopped) {
          LaneText& t = texts[lane];
          const auto before = push_text(t, *tokenizer, s.ids, false);
          if (before && longest_stop > 0) {
            const std::size_t from = *before >= longest_stop ? *before - longest_stop + 1 : 0;
            for (const auto& stop : options.stop_strings)
              if (t.text.find(stop, from) != std::string::npos) stopped = true;
          }
        }
        if (stopped) {
          s.finish_reason = "stop";
        } else if (static_cast<std::int64_t>(s.ids.size()) == options.max_new_tokens) {
          s.finish_reason = "length";
        } else {
          keep_rows.push_back(static_cast<std::int64_t>(r));
          next_tokens.push_back(tokens[r]);
        }
      }
      if (keep_rows.empty()) break;
      if (keep_rows.size() != active.size()) {
        // Drop finished lanes from the batch.
        cache = cache.select_lanes(keep_rows);
        std::vector<std::int64_t> still;
        for (const std::int64_t r : keep_rows) still.push_back(active[r]);
        active = std::move(still);
      }
      const auto rows = static_cast<std::int64_t>(active.size());
      const torch::Tensor step_ids = torch::tensor(next_tokens, torch::kInt64).reshape({rows, 1});
      const torch::Tensor positions = torch::full({1}, cache.length(), torch::kInt64);
      const torch::Tensor hidden = model.hidden_states(step_ids, positions, &cache, control);
      logits = model.project_to_vocab(hidden.select(1, 0));  // [rows, V]
    }
    if (tokenizer != nullptr)
      for (std::int64_t k = 0; k < count; ++k) finish_text(samples[first + k], texts[k], *tokenizer);
  };
  // One batch of as many lanes as the memory budget takes, then the next:
  // lane k's draws depend on (seed, k) only, so batching changes no sample.
  for (std::int64_t first = 0; first < n; first += lanes_per_batch)
    decode_lanes(first, std::min(lanes_per_batch, n - first));
  return samples;
}

}  // namespace anchors::model
