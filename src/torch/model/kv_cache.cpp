#include "anchors/model/kv_cache.h"
#include "tensor_description.h"

#include <fmt/format.h>

#include <algorithm>
#include <sstream>

#include "anchors/core/error.h"

namespace anchors::model {
namespace {

using detail::describe;

constexpr std::int64_t kMinimumCapacity = 64;

}  // namespace

std::int64_t KVCache::batch() const {
  for (const auto& k : keys_)
    if (k.defined()) return k.size(0);
  return 0;
}

std::int64_t KVCache::capacity() const {
  for (const auto& k : keys_)
    if (k.defined()) return k.size(2);
  return 0;
}

void KVCache::reserve(std::int64_t slots) {
  if (slots < 0) throw Error(fmt::format("KVCache::reserve: negative slot count {}", slots));
  reserved_ = slots;
}

void KVCache::clear() {
  keys_.clear();
  values_.clear();
  written_.clear();
  length_ = 0;
}

void KVCache::truncate(std::int64_t length) {
  if (length < 0 || length > length_)
    throw Error(fmt::format("KVCache::truncate: length {} outside [0, {}]", length, length_));
  length_ = length;
  for (auto& w : written_) w = std::min(w, length_);
}

KVCache KVCache::clone() const {
  KVCache copy;
  copy.length_ = length_;
  copy.reserved_ = reserved_;
  copy.written_ = written_;
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    copy.keys_.push_back(keys_[i].defined() ? keys_[i].clone() : torch::Tensor());
    copy.values_.push_back(values_[i].defined() ? values_[i].clone() : torch::Tensor());
  }
  return copy;
}

KVCache KVCache::repeat_lanes(std::int64_t lanes) const {
  if (lanes < 1) throw Error(fmt::format("KVCache::repeat_lanes: lane count {} < 1", lanes));
  if (batch() != 1) throw Error(fmt::format("KVCache::repeat_lanes: needs a batch-1 cache, this one has {} lanes", batch()));
  KVCache fanned;
  fanned.length_ = length_;
  fanned.reserved_ = reserved_;
  fanned.written_.assign(written_.size(), length_);
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    // Same capacity as the source so the lanes can keep decoding without regrowing.
    fanned.keys_.push_back(keys_[i].defined() ? keys_[i].expand({lanes, -1, -1, -1}).contiguous() : torch::Tensor());
    fanned.values_.push_back(values_[i].defined() ? values_[i].expand({lanes, -1, -1, -1}).contiguous()
                                                  : torch::Tensor());
  }
  return fanned;
}

std::pair<torch::Tensor, torch::Tensor> KVCache::layer(std::int64_t layer) const {
  if (layer < 0 || layer >= num_layers() || !keys_[layer].defined())
    throw Error(fmt::format("KVCache::layer: no layer {} (the cache holds {})", layer, num_layers()));
  return {keys_[layer].narrow(2, 0, length_), values_[layer].narrow(2, 0, length_)};
}

void KVCache::ensure_capacity(std::int64_t layer, const torch::Tensor& like, std::int64_t slots) {
  torch::Tensor& keys = keys_[layer];
  torch::Tensor& values = values_[layer];
  if (keys.defined() && keys.size(2) >= slots) return;
  const std::int64_t grown = keys.defined() ? 2 * keys.size(2) : kMinimumCapacity;
  const std::int64_t capacity = std::max({slots, grown, reserved_});
  const auto shape = std::vector<std::int64_t>{like.size(0), like.size(1), capacity, like.size(3)};
  torch::Tensor new_keys = torch::empty(shape, like.options());
  torch::Tensor new_values = torch::empty(shape, like.options());
  if (keys.defined() && length_ > 0) {
    new_keys.narrow(2, 0, length_).copy_(keys.narrow(2, 0, length_));
    new_values.narrow(2, 0, length_).copy_(values.narrow(2, 0, length_));
  }
  keys = std::move(new_keys);
  values = std::move(new_values);
}

std::pair<torch::Tensor, torch::Tensor> KVCache::extend(std::int64_t layer, const torch::Tensor& keys,
                                                        const torch::Tensor& values) {
  if (layer < 0) throw Error(fmt::format("KVCache::extend: negative layer {}", layer));
  if (!keys.defined() || !values.defined() || keys.dim() != 4 || !keys.sizes().equals(values.sizes()) ||
      keys.scalar_type() != values.scalar_type() || keys.device() != values.device())
    throw Error(fmt::format("KVCache::extend: keys and values must be matching [B, Hkv, T, D] tensors; got {} and {}",
                            keys.defined() ? describe(keys) : "undefined", values.defined() ? describe(values) : "undefined"));
  if (layer >= num_layers()) {
    keys_.resize(layer + 1);
    values_.resize(layer + 1);
    written_.resize(layer + 1, 0);
  }
  const torch::Tensor& stored = keys_[layer];
  if (stored.defined()) {
    const bool same_layout = stored.size(0) == keys.size(0) && stored.size(1) == keys.size(1) &&
                             stored.size(3) == keys.size(3) && stored.scalar_type() == keys.scalar_type() &&
                             stored.device() == keys.device();
    if (!same_layout) {
      if (length_ > 0)
        throw Error(fmt::format("KVCache::extend: layer {} caches {} slots of {}; cannot append {}", layer, length_,
                                describe(stored), describe(keys)));
      keys_[layer] = torch::Tensor();  // empty cache: re-allocate for the new layout
      values_[layer] = torch::Tensor();
    }
  }
  const std::int64_t new_slots = keys.size(2);
  ensure_capacity(layer, keys, length_ + new_slots);
  keys_[layer].narrow(2, length_, new_slots).copy_(keys);
  values_[layer].narrow(2, length_, new_slots).copy_(values);
  written_[layer] = length_ + new_slots;
  return {keys_[layer].narrow(2, 0, length_ + new_slots), values_[layer].narrow(2, 0, length_ + new_slots)};
}

void KVCache::commit(std::int64_t new_slots) {
  for (std::size_t i = 0; i < written_.size(); ++i)
    if (written_[i] != length_ + new_slots)
      throw Error(fmt::format("KVCache::commit: layer {} holds {} slots, expected {} + {}", i, written_[i], length_,
                              new_slots));
  length_ += new_slots;
}

}  // namespace anchors::model
