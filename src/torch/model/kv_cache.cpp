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
  return shared_ > 0 ? lanes_ : 0;
}

std::int64_t KVCache::capacity() const {
  for (const auto& k : keys_)
    if (k.defined()) return shared_ + k.size(2);
  return shared_;
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
  shared_keys_.clear();
  shared_values_.clear();
  shared_ = 0;
  lanes_ = 0;
}

void KVCache::truncate(std::int64_t length) {
  if (length < 0 || length > length_)
    throw Error(fmt::format("KVCache::truncate: length {} outside [0, {}]", length, length_));
  if (length < shared_)
    throw Error(fmt::format("KVCache::truncate: length {} would cut into the {} shared prefix slots", length,
                            shared_));
  length_ = length;
  for (auto& w : written_) w = std::min(w, length_);
}

KVCache KVCache::clone() const {
  KVCache copy;
  copy.length_ = length_;
  copy.reserved_ = reserved_;
  copy.written_ = written_;
  copy.shared_keys_ = shared_keys_;  // the prefix is never written through a sharing cache
  copy.shared_values_ = shared_values_;
  copy.shared_ = shared_;
  copy.lanes_ = lanes_;
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    copy.keys_.push_back(keys_[i].defined() ? keys_[i].clone() : torch::Tensor());
    copy.values_.push_back(values_[i].defined() ? values_[i].clone() : torch::Tensor());
  }
  return copy;
}

KVCache KVCache::repeat_lanes(std::int64_t lanes) const {
  if (lanes < 1) throw Error(fmt::format("KVCache::repeat_lanes: lane count {} < 1", lanes));
  if (batch() != 1) throw Error(fmt::format("KVCache::repeat_lanes: needs a batch-1 cache, this one has {} lanes", batch()));
  if (shared_ > 0) throw Error("KVCache::repeat_lanes: this cache shares a prefix (use share_prefix on the prefix)");
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

KVCache KVCache::share_prefix(const KVCache& prefix, std::int64_t lanes) {
  if (lanes < 1) throw Error(fmt::format("KVCache::share_prefix: lane count {} < 1", lanes));
  if (prefix.shared_ > 0) throw Error("KVCache::share_prefix: the prefix shares a prefix itself");
  KVCache sharing;
  if (prefix.empty()) return sharing;
  if (prefix.batch() != 1)
    throw Error(fmt::format("KVCache::share_prefix: needs a batch-1 prefix, this one has {} lanes", prefix.batch()));
  sharing.shared_ = sharing.length_ = prefix.length_;
  sharing.lanes_ = lanes;
  for (std::int64_t l = 0; l < prefix.num_layers(); ++l) {
    const auto [keys, values] = prefix.layer(l);
    sharing.shared_keys_.push_back(keys);
    sharing.shared_values_.push_back(values);
  }
  sharing.keys_.resize(sharing.shared_keys_.size());
  sharing.values_.resize(sharing.shared_keys_.size());
  sharing.written_.assign(sharing.shared_keys_.size(), sharing.length_);
  return sharing;
}

KVCache KVCache::select_lanes(const std::vector<std::int64_t>& lanes) const {
  const std::int64_t batch_size = batch();
  for (const std::int64_t lane : lanes)
    if (lane < 0 || lane >= batch_size)
      throw Error(fmt::format("KVCache::select_lanes: lane {} outside [0, {})", lane, batch_size));
  KVCache out;
  out.length_ = length_;
  out.reserved_ = reserved_;
  out.written_.assign(written_.size(), length_);
  out.shared_keys_ = shared_keys_;
  out.shared_values_ = shared_values_;
  out.shared_ = shared_;
  out.lanes_ = static_cast<std::int64_t>(lanes.size());
  const std::int64_t own = length_ - shared_;
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    if (!keys_[i].defined() || own == 0) {
      out.keys_.emplace_back();
      out.values_.emplace_back();
      continue;
    }
    const torch::Tensor index = torch::tensor(lanes, torch::kInt64).to(keys_[i].device());
    // Same capacity as the source so the lanes can keep decoding without regrowing.
    out.keys_.push_back(keys_[i].index_select(0, index));
    out.values_.push_back(values_[i].index_select(0, index));
  }
  return out;
}

std::pair<torch::Tensor, torch::Tensor> KVCache::shared_layer(std::int64_t layer) const {
  if (layer < 0 || layer >= static_cast<std::int64_t>(shared_keys_.size()))
    throw Error(fmt::format("KVCache::shared_layer: no shared layer {} (the prefix holds {})", layer,
                            shared_keys_.size()));
  return {shared_keys_[layer], shared_values_[layer]};
}

std::pair<torch::Tensor, torch::Tensor> KVCache::layer(std::int64_t layer) const {
  const bool has_own = layer >= 0 && layer < num_layers() && keys_[layer].defined();
  const bool has_shared = shared_ > 0 && layer >= 0 && layer < static_cast<std::int64_t>(shared_keys_.size());
  if (!has_own && !has_shared)
    throw Error(fmt::format("KVCache::layer: no layer {} (the cache holds {})", layer, num_layers()));
  const std::int64_t own = length_ - shared_;
  if (!has_shared) return {keys_[layer].narrow(2, 0, own), values_[layer].narrow(2, 0, own)};
  const std::int64_t lanes = batch();
  torch::Tensor keys = shared_keys_[layer].expand({lanes, -1, -1, -1});
  torch::Tensor values = shared_values_[layer].expand({lanes, -1, -1, -1});
  if (!has_own || own == 0) return {keys.contiguous(), values.contiguous()};
  return {at::cat({keys, keys_[layer].narrow(2, 0, own)}, 2), at::cat({values, values_[layer].narrow(2, 0, own)}, 2)};
}

void KVCache::ensure_capacity(std::int64_t layer, const torch::Tensor& like, std::int64_t slots) {
  torch::Tensor& keys = keys_[layer];
  torch::Tensor& values = values_[layer];
  // Own storage holds the slots after the shared prefix.
  const std::int64_t own_slots = slots - shared_, own_length = length_ - shared_;
  if (keys.defined() && keys.size(2) >= own_slots) return;
  const std::int64_t grown = keys.defined() ? 2 * keys.size(2) : kMinimumCapacity;
  const std::int64_t capacity = std::max({own_slots, grown, reserved_ - shared_});
  const auto shape = std::vector<std::int64_t>{like.size(0), like.size(1), capacity, like.size(3)};
  torch::Tensor new_keys = torch::empty(shape, like.options());
  torch::Tensor new_values = torch::empty(shape, like.options());
  if (keys.defined() && own_length > 0) {
    new_keys.narrow(2, 0, own_length).copy_(keys.narrow(2, 0, own_length));
    new_values.narrow(2, 0, own_length).copy_(values.narrow(2, 0, own_length));
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
      if (length_ > shared_)
        throw Error(fmt::format("KVCache::extend: layer {} caches {} slots of {}; cannot append {}", layer, length_,
                                describe(stored), describe(keys)));
      keys_[layer] = torch::Tensor();  // empty cache: re-allocate for the new layout
      values_[layer] = torch::Tensor();
    }
  }
  const std::int64_t new_slots = keys.size(2);
  if (shared_ > 0) {
    if (layer >= static_cast<std::int64_t>(shared_keys_.size()))
      throw Error(fmt::format("KVCache::extend: layer {} is not in the shared prefix ({} layers)", layer,
                              shared_keys_.size()));
    const torch::Tensor& prefix = shared_keys_[static_cast<std::size_t>(layer)];
    if (keys.size(0) != lanes_ || keys.size(1) != prefix.size(1) || keys.size(3) != prefix.size(3) ||
        keys.scalar_type() != prefix.scalar_type() || keys.device() != prefix.device())
      throw Error(fmt::format("KVCache::extend: layer {} shares a prefix of {} for {} lanes; cannot append {}", layer,
                              describe(prefix), lanes_, describe(keys)));
  }
  const std::int64_t own = length_ - shared_;
  ensure_capacity(layer, keys, length_ + new_slots);
  keys_[layer].narrow(2, own, new_slots).copy_(keys);
  values_[layer].narrow(2, own, new_slots).copy_(values);
  written_[layer] = length_ + new_slots;
  return {keys_[layer].narrow(2, 0, own + new_slots), values_[layer].narrow(2, 0, own + new_slots)};
}

void KVCache::commit(std::int64_t new_slots) {
  for (std::size_t i = 0; i < written_.size(); ++i)
    if (written_[i] != length_ + new_slots)
      throw Error(fmt::format("KVCache::commit: layer {} holds {} slots, expected {} + {}", i, written_[i], length_,
                              new_slots));
  length_ += new_slots;
}

}  // namespace anchors::model
