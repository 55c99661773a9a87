#include "anchors/core/study_aggregates.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <iterator>
#include <numeric>

#include <fmt/format.h>

#include "anchors/core/error.h"
#include "anchors/core/function_tags.h"
#include "anchors/core/hash.h"

namespace anchors {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

const std::vector<std::string>& group_column(const StudyTable& table, const std::string& by) {
  if (by == "tag") return table.tag;
  if (by == "level") return table.level;
  if (by == "type") return table.type;
  if (by == "model") return table.model;
  if (by == "base") return table.base;
  throw Error(fmt::format("study aggregates: cannot group by \"{}\" (tag, level, type, model or base)", by));
}

// numpy.percentile(values, 100 * q), method "linear"; values sorted.
double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return kNaN;
  const double h = (static_cast<double>(sorted.size()) - 1) * q;
  const auto lo = static_cast<std::size_t>(std::floor(h));
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

// Residuals from the least-squares line y ~ a + b * x over the finite y.
std::vector<double> position_residuals(const std::vector<double>& y, const std::vector<double>& x) {
  double n = 0, mx = 0, my = 0;
  for (std::size_t i = 0; i < y.size(); ++i)
    if (std::isfinite(y[i])) n += 1, mx += x[i], my += y[i];
  if (n == 0) return y;
  mx /= n, my /= n;
  double sxy = 0, sxx = 0;
  for (std::size_t i = 0; i < y.size(); ++i)
    if (std::isfinite(y[i])) sxy += (x[i] - mx) * (y[i] - my), sxx += (x[i] - mx) * (x[i] - mx);
  const double b = sxx > 0 ? sxy / sxx : 0.0, a = my - b * mx;
  std::vector<double> out(y.size());
  for (std::size_t i = 0; i < y.size(); ++i) out[i] = y[i] - (a + b * x[i]);
  return out;
}

// Average ranks (1-based) of `v`, ties sharing the mean of their ranks.
std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<std::size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double rank = (static_cast<double>(i) + static_cast<double>(j)) / 2 + 1;
    for (std::size_t k = i; k <= j; ++k) r[order[k]] = rank;
    i = j + 1;
  }
  return r;
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(a.begin(), a.end(), 0.0) / n, mb = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    sab += (a[i] - ma) * (b[i] - mb), saa += (a[i] - ma) * (a[i] - ma), sbb += (b[i] - mb) * (b[i] - mb);
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : kNaN;
}

// The indices of the k largest values, ties to the earlier index.
std::vector<std::size_t> top_k(const std::vector<double>& v, std::size_t k) {
  std::vector<std::size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return v[a] > v[b]; });
  order.resize(std::min(k, order.size()));
  std::sort(order.begin(), order.end());
  return order;
}

bool same(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }

}  // namespace

bool GroupAggregate::operator==(const GroupAggregate& o) const {
  return group == o.group && sentences == o.sentences && problems == o.problems && same(mean, o.mean) &&
         same(ci_low, o.ci_low) && same(ci_high, o.ci_high);
}

std::vector<GroupAggregate> mean_by(const StudyTable& table, const std::string& score, const std::string& by,
                                    const AggregateOptions& options) {
  if (!(options.confidence > 0 && options.confidence < 1))
    throw Error(fmt::format("study aggregates: confidence must be in (0, 1), got {}", options.confidence));
  const std::vector<std::string>& groups = group_column(table, by);
  std::vector<double> values = table.score(score);
  if (options.debias_position) values = position_residuals(values, table.position);

  // The rows kept, their group and cluster.
  std::vector<std::size_t> rows;
  for (std::size_t r = 0; r < table.size(); ++r)
    if (std::isfinite(values[r]) && !groups[r].empty()) rows.push_back(r);
  std::map<std::pair<std::string, std::string>, std::size_t> cluster_of;
  for (std::size_t r : rows) cluster_of.emplace(std::make_pair(table.model[r], table.problem[r]), 0);
  std::size_t next = 0;
  for (auto& [key, index] : cluster_of) index = next++;
  const std::size_t C = cluster_of.size();

  // Group names in their order.
  std::vector<std::string> names;
  {
    std::vector<std::string> present;
    for (std::size_t r : rows)
      if (std::find(present.begin(), present.end(), groups[r]) == present.end()) present.push_back(groups[r]);
    std::sort(present.begin(), present.end());
    if (by == "tag")
      for (const std::string& t : function_tag_names())
        if (std::find(present.begin(), present.end(), t) != present.end()) names.push_back(t);
    for (const std::string& g : present)
      if (std::find(names.begin(), names.end(), g) == names.end()) names.push_back(g);
  }
  std::map<std::string, std::size_t> group_index;
  for (std::size_t g = 0; g < names.size(); ++g) group_index[names[g]] = g;

  // Per cluster and group: the sum and count of the kept rows.
  const std::size_t G = names.size();
  std::vector<double> sum(C * G, 0.0);
  std::vector<double> count(C * G, 0.0);
  std::vector<GroupAggregate> out(G);
  std::vector<std::vector<bool>> seen(G, std::vector<bool>(C, false));
  for (std::size_t r : rows) {
    const std::size_t c = cluster_of.at({table.model[r], table.problem[r]}), g = group_index.at(groups[r]);
    sum[c * G + g] += values[r];
    count[c * G + g] += 1;
    seen[g][c] = true;
  }
  for (std::size_t g = 0; g < G; ++g) {
    double s = 0, n = 0;
    for (std::size_t c = 0; c < C; ++c) s += sum[c * G + g], n += count[c * G + g];
    out[g].group = names[g];
    out[g].sentences = static_cast<std::size_t>(n);
    out[g].problems = static_cast<std::size_t>(std::count(seen[g].begin(), seen[g].end(), true));
    out[g].mean = s / n;
    out[g].ci_low = out[g].ci_high = kNaN;
  }
  if (options.resamples == 0 || C == 0) return out;

  std::vector<std::vector<double>> stats(G);
  std::vector<double> s(G), n(G);
  for (std::size_t b = 0; b < options.resamples; ++b) {
    std::fill(s.begin(), s.end(), 0.0);
    std::fill(n.begin(), n.end(), 0.0);
    for (std::size_t k = 0; k < C; ++k) {
      const std::size_t c = static_cast<std::size_t>(
          splitmix64(options.seed + static_cast<std::uint64_t>(b) * C + static_cast<std::uint64_t>(k)) % C);
      for (std::size_t g = 0; g < G; ++g) s[g] += sum[c * G + g], n[g] += count[c * G + g];
    }
    for (std::size_t g = 0; g < G; ++g)
      if (n[g] > 0) stats[g].push_back(s[g] / n[g]);
  }
  for (std::size_t g = 0; g < G; ++g) {
    std::sort(stats[g].begin(), stats[g].end());
    out[g].ci_low = percentile(stats[g], (1 - options.confidence) / 2);
    out[g].ci_high = percentile(stats[g], (1 + options.confidence) / 2);
  }
  return out;
}

std::vector<TraceAgreement> method_agreement(const StudyTable& table, const std::string& score_a,
                                             const std::string& score_b, std::size_t k) {
  if (k < 1) throw Error("study aggregates: k must be >= 1");
  const std::vector<double>& a = table.score(score_a);
  const std::vector<double>& b = table.score(score_b);
  std::vector<TraceAgreement> out;
  for (std::size_t begin = 0; begin < table.size();) {
    std::size_t end = begin;
    while (end < table.size() && table.source[end] == table.source[begin]) ++end;
    std::vector<double> x, y;
    for (std::size_t r = begin; r < end; ++r)
      if (std::isfinite(a[r]) && std::isfinite(b[r])) x.push_back(a[r]), y.push_back(b[r]);
    TraceAgreement t;
    t.source = table.source[begin];
    t.model = table.model[begin];
    t.problem = table.problem[begin];
    t.base = table.base[begin];
    t.sentences = x.size();
    t.spearman = x.size() >= 2 ? pearson(ranks(x), ranks(y)) : kNaN;
    if (x.empty()) {
      t.top_k_overlap = kNaN;
    } else {
      const auto ta = top_k(x, k), tb = top_k(y, k);
      std::vector<std::size_t> both;
      std::set_intersection(ta.begin(), ta.end(), tb.begin(), tb.end(), std::back_inserter(both));
      t.top_k_overlap = static_cast<double>(both.size()) / static_cast<double>(ta.size());
    }
    out.push_back(std::move(t));
    begin = end;
  }
  return out;
}

SplitHalfReliability receiver_head_reliability(const StudyTable& table, const ReliabilityOptions& options) {
  if (options.splits == 0) throw Error("study aggregates: splits must be >= 1");
  const auto it = table.matrices.find(options.matrix);
  const std::size_t N = it == table.matrices.end() ? 0 : it->second.size();
  if (N < 4)
    throw Error(fmt::format("study aggregates: split-half reliability needs at least 4 traces with \"{}\", the "
                            "table has {} (run receiver_heads on more traces)",
                            options.matrix, N));
  const Matrix& first = it->second.front().second;
  for (const auto& [source, m] : it->second)
    if (m.rows != first.rows || m.cols != first.cols)
      throw Error(fmt::format("study aggregates: {} of {} is {}x{}, the first trace's is {}x{} (one model per study "
                              "table, or filter it)",
                              options.matrix, source, m.rows, m.cols, first.rows, first.cols));
  const std::size_t begin = options.include_layer0 ? 0 : first.cols;  // the first flat index used
  const std::size_t cells = first.data.size();

  // Per-head mean over a set of traces, NaN skipped (NaN when none is finite).
  const auto half_mean = [&](const std::vector<std::size_t>& traces) {
    std::vector<double> out(cells, kNaN);
    for (std::size_t c = begin; c < cells; ++c) {
      double s = 0, n = 0;
      for (std::size_t t : traces) {
        const double v = it->second[t].second.data[c];
        if (std::isfinite(v)) s += v, n += 1;
      }
      if (n > 0) out[c] = s / n;
    }
    return out;
  };
  SplitHalfReliability out;
  out.traces = N;
  double sum = 0, counted = 0;
  for (std::size_t split = 0; split < options.splits; ++split) {
    std::vector<std::size_t> order(N);
    std::iota(order.begin(), order.end(), 0);
    for (std::size_t k = N - 1; k >= 1; --k) {
      const std::size_t j =
          static_cast<std::size_t>(splitmix64(options.seed + static_cast<std::uint64_t>(split) * N + k) % (k + 1));
      std::swap(order[k], order[j]);
    }
    const std::vector<std::size_t> a(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(N / 2));
    const std::vector<std::size_t> b(order.begin() + static_cast<std::ptrdiff_t>(N / 2), order.end());
    const std::vector<double> ma = half_mean(a), mb = half_mean(b);
    std::vector<double> x, y;
    for (std::size_t c = begin; c < cells; ++c)
      if (std::isfinite(ma[c]) && std::isfinite(mb[c])) x.push_back(ma[c]), y.push_back(mb[c]);
    if (split == 0) out.heads = x.size();
    const double r = x.size() >= 2 ? pearson(x, y) : kNaN;
    out.split_r.push_back(r);
    if (std::isfinite(r)) sum += r, counted += 1;
  }
  out.mean_r = counted > 0 ? sum / counted : kNaN;
  out.spearman_brown = 2 * out.mean_r / (1 + out.mean_r);
  return out;
}

}  // namespace anchors
