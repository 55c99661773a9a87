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
//
// Shared prefix: share_prefix(prefix, lanes) makes a cache whose first
// prefix.length() slots are the batch-1 prefix's, not copied into each lane.
// The lanes' own slots follow it; attention reads the prefix once for all
// lanes (attention.h, AttentionParams::shared_keys) instead of once per lane,
// which is what bounds the shared-prefix sampler when the prompt is long and
// the lanes many (100 rollouts per sentence). The prefix's storage is viewed,
// so the prefix cache must not be truncated and rewritten while a sharing
// cache is in use.
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
  // prefix fanned out to a batch); anchors::Error if batch() != 1 or this
  // cache shares a prefix.
  KVCache repeat_lanes(std::int64_t lanes) const;
  // A cache of `lanes` lanes whose first prefix.length() slots are `prefix`'s
  // committed slots, shared (viewed, not copied); anchors::Error unless prefix
  // is a batch-1 cache without a shared prefix of its own (an empty prefix
  // gives an empty cache).
  static KVCache share_prefix(const KVCache& prefix, std::int64_t lanes);
  // The lanes `lanes` (indices into [0, batch())) of this cache, in that order:
  // own slots copied, a shared prefix still shared; anchors::Error for an index
  // outside the batch.
  KVCache select_lanes(const std::vector<std::int64_t>& lanes) const;

  // Slots of the shared prefix (0 when none) and its keys and values of one
  // layer, views [1, Hkv, shared_length(), D].
  std::int64_t shared_length() const { return shared_; }
  std::pair<torch::Tensor, torch::Tensor> shared_layer(std::int64_t layer) const;

  // The committed keys and values of one layer, [B, Hkv, length(), D]: views,
  // or with a shared prefix a copy that repeats it for every lane.
  std::pair<torch::Tensor, torch::Tensor> layer(std::int64_t layer) const;

  // --- used by the decoder while it runs a forward pass ---
  // Writes keys/values [B, Hkv, T, D] of one layer at slots [length(), length() + T)
  // and returns views [B, Hkv, length() + T, D] of everything cached for it --
  // with a shared prefix, of the slots after it ([B, Hkv, length() + T -
  // shared_length(), D]; the prefix is shared_layer()).
  // Nothing is committed: until commit(T), length() is unchanged, so a pass that
  // fails half-way leaves the cache as it was.
  std::pair<torch::Tensor, torch::Tensor> extend(std::int64_t layer, const torch::Tensor& keys,
                                                 const torch::Tensor& values);
  // Makes the T slots every layer has just written part of the cache;
  // anchors::Error unless every layer wrote exactly those slots.
  void commit(std::int64_t new_slots);

 private:
  void ensure_capacity(std::int64_t layer, const torch::Tensor& like, std::int64_t slots);

  std::vector<torch::Tensor> keys_;    // per layer [B, Hkv, capacity, D]: the slots after the shared prefix
  std::vector<torch::Tensor> values_;  // per layer [B, Hkv, capacity, D]
  std::vector<std::int64_t> written_;  // per layer: slots holding data (committed or not), prefix included
  std::int64_t length_ = 0;            // committed slots, prefix included
  std::int64_t reserved_ = 0;          // slots, prefix included
  // The shared prefix: per layer [1, Hkv, shared_, D] views, and the lane count
  // (batch() before the lanes' first write).
  std::vector<torch::Tensor> shared_keys_, shared_values_;
  std::int64_t shared_ = 0;
  std::int64_t lanes_ = 0;
};

}  // namespace anchors::model
