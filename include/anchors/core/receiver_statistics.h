#pragma once
// Receiver-head statistics (docs/design.md §3 "Receiver heads"; docs/receiver-heads.md):
// the plain arithmetic on S×S sentence block means, without LibTorch.
//
//   Matrix M = ...;                                        // block means of one layer and head
//   std::vector<double> v = anchors::vertical_scores(M);   // attention each sentence receives
//   double k = anchors::fisher_kurtosis(v);                // how spiky that is
//   auto heads = anchors::top_receiver_heads(kurtosis_LxH, 20);
#include <cstddef>
#include <cstdint>
#include <vector>

#include "anchors/core/matrix.h"

namespace anchors {

// Vertical scores of one head's S×S block-mean matrix M (M[i, j]: mean attention
// from sentence i to sentence j):
//
//   v[j] = mean over i in [j + proximity_ignore, S) of M[i, j]
//
// NaN entries of M are skipped; v[j] is NaN when no value remains (in particular
// for the last proximity_ignore sentences). proximity_ignore = 0 includes the
// diagonal. Entries above the diagonal (i < j) are never read.
// anchors::Error unless M is square.
std::vector<double> vertical_scores(const Matrix& block_means, std::size_t proximity_ignore = 4);

// Fisher (excess) kurtosis m4 / m2² − 3 with the biased central moments
// m_k = mean((x − mean)^k) over the non-NaN values, exactly as
// scipy.stats.kurtosis(x, fisher=True, bias=True, nan_policy="omit"):
// NaN when no value remains or the variance is zero in scipy's sense
// (m2 <= (DBL_EPSILON · mean)², which covers a single value and constant input).
// Two distinct values give −2.
double fisher_kurtosis(const std::vector<double>& values);

struct ReceiverHead {
  std::int64_t layer = 0;
  std::int64_t head = 0;
  double kurtosis = 0;
};

// The top_k heads of an L×H kurtosis matrix (row = layer, column = head), highest
// kurtosis first; ties by (layer, head) ascending. NaN entries are never
// selected, nor layer 0 when exclude_layer0. Fewer than top_k heads come back
// when fewer are eligible (the reference's min(top_k, #valid)).
// anchors::Error for top_k == 0.
std::vector<ReceiverHead> top_receiver_heads(const Matrix& kurtosis, std::size_t top_k = 20,
                                             bool exclude_layer0 = true);

}  // namespace anchors
