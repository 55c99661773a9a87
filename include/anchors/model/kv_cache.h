#pragma once
// Keys and values of the tokens a decoder has already seen, per layer, so the
// next forward pass only computes the new tokens (incremental decoding, and the
// base-prefix reuse of attention suppression).
//
// Every lane and layer holds the same number of slots, length(). Slot s is the
// s-th token fed through the model; the attention op's causal mask and its
// control regions address these slots (see attention.h). Storage is allocated
// lazily from the first keys written (dtype, device, heads, head dim) and grows
// by doubling, so appending is amortised O(new tokens).
#include <torch/types.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace anchors::model {

class KVCache {
 public:
  KVCache() = default;

  std::int64_t length() const { return length_; }       // committed slots
  std::int64_t batch() const;                           // 0 before the first write
  std::int64_t num_layers() const { return static_cast<std::int64_t>(keys_.size()); }
  std::int64_t capacity() const;                        // slots allocated per layer
  bool empty() const { return length_ == 0; }

  // Allocation hint: the next allocation makes room for `slots` slots at once.
  void reserve(std::int64_t slots);
  // Forgets everything (storage included).
  void clear();
  // Keeps the first `length` slots and forgets the rest (e.g. rewind to a shared
  // prompt); anchors::Error if length is negative or beyond length().
  void truncate(std::int64_t length);
  // A deep copy.
  KVCache clone() const;
  // A cache with `lanes` lanes that are all copies of this batch-1 cache (one
  // prefix fanned out to a batch); anchors::Error if batch() != 1.
  KVCache repeat_lanes(std::int64_t lanes) const;

  // The committed keys and values of one layer, views [B, Hkv, length(), D].
  std::pair<torch::Tensor, torch::Tensor> layer(std::int64_t layer) const;

  // --- used by the decoder while it runs a forward pass ---
  // Writes keys/values [B, Hkv, T, D] of one layer at slots [length(), length() + T)
  // and returns views [B, Hkv, length() + T, D] of everything cached for it.
  // Nothing is committed: until commit(T), length() is unchanged, so a pass that
  // fails half-way leaves the cache as it was.
  std::pair<torch::Tensor, torch::Tensor> extend(std::int64_t layer, const torch::Tensor& keys,
                                                 const torch::Tensor& values);
  // Makes the T slots every layer has just written part of the cache;
  // anchors::Error unless every layer wrote exactly those slots.
  void commit(std::int64_t new_slots);

 private:
  void ensure_capacity(std::int64_t layer, const torch::Tensor& like, std::int64_t slots);

  std::vector<torch::Tensor> keys_;    // per layer [B, Hkv, capacity, D]
  std::vector<torch::Tensor> values_;  // per layer [B, Hkv, capacity, D]
  std::vector<std::int64_t> written_;  // per layer: slots holding data (committed or not)
  std::int64_t length_ = 0;
  std::int64_t reserved_ = 0;
};

}  // namespace anchors::model
