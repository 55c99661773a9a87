#include "anchors/core/learned_tagger.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/hash.h"
#include "learned_tagger_weights.h"  // generated: kTaggerWeights (cmake/EmbedText.cmake)

namespace anchors {

namespace {

// ------------------------------------------------------------------ tokens

bool letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool digit(char c) { return c >= '0' && c <= '9'; }
bool blank(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }
char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

enum class Kind { Word, Number, Command, Symbol };

struct Token {
  std::string text;
  Kind kind;
};

// Lower-cased tokens: words of ASCII letters and apostrophes (’ read as '),
// numbers (digits with inner '.' or ',') as "0", LaTeX commands ("\frac"),
// and every other character on its own (a whole UTF-8 sequence for non-ASCII;
// an invalid byte alone).
std::vector<Token> tokenize(std::string_view t) {
  std::vector<Token> out;
  for (std::size_t i = 0; i < t.size();) {
    const char c = t[i];
    if (blank(c)) {
      ++i;
    } else if (letter(c)) {
      std::string w;
      while (i < t.size()) {
        if (letter(t[i]) || t[i] == '\'') {
          w += lower(t[i]);
          ++i;
        } else if (t.compare(i, 3, "\xE2\x80\x99") == 0 && i + 3 < t.size() && letter(t[i + 3])) {
          w += '\'';
          i += 3;
        } else {
          break;
        }
      }
      out.push_back({std::move(w), Kind::Word});
    } else if (digit(c)) {
      while (i < t.size() && (digit(t[i]) || ((t[i] == '.' || t[i] == ',') && i + 1 < t.size() && digit(t[i + 1]))))
        ++i;
      out.push_back({"0", Kind::Number});
    } else if (c == '\\' && i + 1 < t.size() && letter(t[i + 1])) {
      std::size_t j = i + 1;
      while (j < t.size() && letter(t[j])) ++j;
      std::string cmd(t.substr(i, j - i));
      for (char& ch : cmd) ch = lower(ch);
      out.push_back({std::move(cmd), Kind::Command});
      i = j;
    } else {
      const auto u = static_cast<unsigned char>(c);
      std::size_t n = u < 0x80 ? 1 : (u >> 5) == 0x6 ? 2 : (u >> 4) == 0xE ? 3 : (u >> 3) == 0x1E ? 4 : 1;
      if (i + n > t.size()) n = 1;
      for (std::size_t k = 1; k < n; ++k)
        if ((static_cast<unsigned char>(t[i + k]) & 0xC0) != 0x80) n = 1;
      out.push_back({std::string(t.substr(i, n)), Kind::Symbol});
      i += n;
    }
  }
  return out;
}

bool is_operator(const Token& tok) {
  static const std::set<std::string, std::less<>> kOps = {
      "+", "-", "*", "/", "^", "=", "\xC3\x97", "\xC3\xB7", "\xC2\xB7", "\xE2\x88\x92", "\xE2\x89\x88",
      "\\times", "\\cdot", "\\div", "\\frac", "\\sqrt", "\\binom", "\\sum", "\\prod", "\\pm", "\\le", "\\ge",
      "\\leq", "\\geq", "<", ">"};
  return (tok.kind == Kind::Symbol || tok.kind == Kind::Command) && kOps.count(tok.text) != 0;
}

const char* bucket(std::size_t n, std::initializer_list<std::size_t> upper, std::initializer_list<const char*> names) {
  auto name = names.begin();
  for (std::size_t u : upper) {
    if (n <= u) return *name;
    ++name;
  }
  return *name;
}

// Content words of 4+ letters (the problem-overlap feature).
std::set<std::string> content_words(const std::vector<Token>& tokens) {
  static const std::set<std::string, std::less<>> kStop = {
      "about", "also", "answer", "been", "boxed", "could", "does", "done", "each", "final", "first", "from",
      "have", "here", "into", "just", "let's", "like", "make", "more", "must", "next", "okay", "only", "over",
      "problem", "should", "solve", "some", "step", "such", "than", "that", "their", "them", "then", "there",
      "they", "think", "this", "very", "wait", "well", "were", "what", "when", "where", "which", "while",
      "will", "with", "would", "your"};
  std::set<std::string> out;
  for (const Token& t : tokens)
    if (t.kind == Kind::Word && t.text.size() >= 4 && !kStop.count(t.text)) out.insert(t.text);
  return out;
}

// ----------------------------------------------------------------- features

// The per-sentence facts the features are made of, computed once per sentence.
struct SentenceInfo {
  std::vector<Token> tokens;
  std::vector<std::string> shape;  // shape feature names (without prefix)
  std::string rule_tag, rule_name;
};

std::vector<std::string> shape_names(std::string_view text, const std::vector<Token>& tokens) {
  std::size_t words = 0, numbers = 0, ops = 0, symbols = 0;
  bool equals = false, latex = false, dollar = false;
  for (const Token& t : tokens) {
    if (t.kind == Kind::Word) ++words;
    if (t.kind == Kind::Number) ++numbers;
    if (t.kind == Kind::Command) latex = true;
    if (t.kind == Kind::Symbol) ++symbols;
    if (is_operator(t)) ++ops;
    if (t.text == "=") equals = true;
    if (t.text == "$") dollar = true;
  }
  std::vector<std::string> s;
  s.push_back(std::string("words=") + bucket(words, {0, 3, 7, 15, 30}, {"0", "1-3", "4-7", "8-15", "16-30", "31+"}));
  s.push_back(std::string("numbers=") + bucket(numbers, {0, 1, 3, 6}, {"0", "1", "2-3", "4-6", "7+"}));
  s.push_back(std::string("ops=") + bucket(ops, {0, 1, 3, 6}, {"0", "1", "2-3", "4-6", "7+"}));
  const std::size_t math = numbers + ops + symbols;
  const std::size_t total = math + words;
  const std::size_t tenths = total == 0 ? 0 : 10 * words / total;
  s.push_back(std::string("prose=") + bucket(tenths, {1, 3, 5, 7, 9}, {"0-1", "2-3", "4-5", "6-7", "8-9", "10"}));
  if (equals) s.emplace_back("equals");
  if (latex) s.emplace_back("latex");
  if (dollar) s.emplace_back("dollar");
  std::string_view trimmed = text;
  while (!trimmed.empty() && blank(trimmed.back())) trimmed.remove_suffix(1);
  while (!trimmed.empty() && (trimmed.back() == '*' || trimmed.back() == '$')) trimmed.remove_suffix(1);
  if (!trimmed.empty()) {
    const char end = trimmed.back();
    if (end == '?') s.emplace_back("end?");
    else if (end == ':') s.emplace_back("end:");
    else if (end == '.') s.emplace_back("end.");
    else if (end == '!') s.emplace_back("end!");
    else s.emplace_back("end-other");
  }
  if (text.find("\\boxed") != std::string_view::npos) s.emplace_back("boxed");
  if (text.find("**") != std::string_view::npos) s.emplace_back("bold");
  return s;
}

class FeatureWriter {
 public:
  explicit FeatureWriter(std::uint32_t bits) : mask_(bits >= 32 ? 0xFFFFFFFFu : (1u << bits) - 1u) {}
  void add(std::string_view prefix, std::string_view name, float value = 1.0f) {
    std::string key;
    key.reserve(prefix.size() + 1 + name.size());
    key.append(prefix).append(":").append(name);
    const auto h = static_cast<std::uint32_t>(fnv1a64(key) & mask_);
    auto [it, fresh] = values_.emplace(h, value);
    if (!fresh && value != 1.0f) it->second += value;  // a collision of a valued feature: sum
  }
  SparseFeatures take() {
    SparseFeatures f;
    f.index.reserve(values_.size());
    f.value.reserve(values_.size());
    for (const auto& [i, v] : values_) {
      f.index.push_back(i);
      f.value.push_back(v);
    }
    values_.clear();
    return f;
  }

 private:
  std::uint32_t mask_;
  std::map<std::uint32_t, float> values_;  // ordered: ascending indices
};

void add_opening(FeatureWriter& w, std::string_view prefix, const std::vector<Token>& tokens, std::size_t upto) {
  std::string key;
  for (std::size_t k = 0; k < upto && k < tokens.size(); ++k) {
    if (k > 0) key += ' ';
    key += tokens[k].text;
    w.add(std::string(prefix) + std::to_string(k + 1), key);
  }
}

void check_bits(std::uint32_t bits, const char* where) {
  if (bits < 1 || bits > 30)
    throw Error(std::string(where) + ": hash_bits must be in 1..30 (got " + std::to_string(bits) + ")");
}

std::string problem_text(const Trace& trace) {
  const auto it = trace.metadata.find("problem");
  return it != trace.metadata.end() && !it->second.empty() ? it->second : trace.prompt;
}

// ---------------------------------------------------------- binary format

constexpr char kMagic[8] = {'A', 'N', 'C', 'H', 'T', 'A', 'G', '1'};
constexpr std::uint32_t kVersion = 1;

void put_u32(std::string& out, std::uint32_t v) {
  for (int k = 0; k < 4; ++k) out += static_cast<char>((v >> (8 * k)) & 0xFFu);
}
void put_f32(std::string& out, float f) {
  std::uint32_t v;
  std::memcpy(&v, &f, 4);
  put_u32(out, v);
}

class Reader {
 public:
  Reader(std::string_view bytes, const std::string& name) : b_(bytes), name_(name) {}
  [[noreturn]] void fail(const std::string& why) const { throw Error(name_ + ": not a tagger model (" + why + ")"); }
  std::uint32_t u32(const char* what) {
    if (b_.size() - at_ < 4) fail(std::string("truncated at ") + what);
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) v |= static_cast<std::uint32_t>(static_cast<unsigned char>(b_[at_ + k])) << (8 * k);
    at_ += 4;
    return v;
  }
  float f32(const char* what) {
    const std::uint32_t v = u32(what);
    float f;
    std::memcpy(&f, &v, 4);
    if (!std::isfinite(f)) fail(std::string("a non-finite number in ") + what);
    return f;
  }
  std::string_view bytes(std::size_t n, const char* what) {
    if (b_.size() - at_ < n) fail(std::string("truncated at ") + what);
    const std::string_view v = b_.substr(at_, n);
    at_ += n;
    return v;
  }
  std::size_t left() const { return b_.size() - at_; }

 private:
  std::string_view b_;
  std::string name_;
  std::size_t at_ = 0;
};

std::uint32_t flags_of(const TaggerFeatureSet& s) {
  return (s.bigrams ? 1u : 0u) | (s.shape ? 2u : 0u) | (s.neighbours ? 4u : 0u) | (s.position ? 8u : 0u) |
         (s.rules ? 16u : 0u) | (s.problem_overlap ? 32u : 0u);
}

// ------------------------------------------------------------- training

// Mean negative log-likelihood + (l2/2)||W||^2 and its gradient, for weights
// laid out as [D * C] then bias [C].
struct Problem {
  const std::vector<std::vector<std::pair<std::uint32_t, float>>>& x;  // compact columns
  const std::vector<int>& y;
  std::size_t d, c;
  double l2;

  double value_and_gradient(const std::vector<double>& w, std::vector<double>& g) const {
    std::fill(g.begin(), g.end(), 0.0);
    const double* bias = w.data() + d * c;
    double* gbias = g.data() + d * c;
    std::vector<double> z(c);
    double loss = 0.0;
    const double inv_n = 1.0 / static_cast<double>(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
      for (std::size_t k = 0; k < c; ++k) z[k] = bias[k];
      for (const auto& [j, v] : x[i])
        for (std::size_t k = 0; k < c; ++k) z[k] += v * w[j * c + k];
      const double m = *std::max_element(z.begin(), z.end());
      double sum = 0.0;
      for (std::size_t k = 0; k < c; ++k) sum += std::exp(z[k] - m);
      const double log_sum = m + std::log(sum);
      loss += log_sum - z[static_cast<std::size_t>(y[i])];
      for (std::size_t k = 0; k < c; ++k) {
        const double p = std::exp(z[k] - log_sum) - (static_cast<int>(k) == y[i] ? 1.0 : 0.0);
        z[k] = p * inv_n;
      }
      for (std::size_t k = 0; k < c; ++k) gbias[k] += z[k];
      for (const auto& [j, v] : x[i])
        for (std::size_t k = 0; k < c; ++k) g[j * c + k] += v * z[k];
    }
    double reg = 0.0;
    for (std::size_t q = 0; q < d * c; ++q) {
      reg += w[q] * w[q];
      g[q] += l2 * w[q];
    }
    return loss * inv_n + 0.5 * l2 * reg;
  }
};

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// L-BFGS with memory 10 and a backtracking (Armijo) line search; deterministic.
void minimise(const Problem& problem, std::vector<double>& w, std::size_t iterations) {
  const std::size_t n = w.size(), memory = 10;
  std::vector<double> g(n), g_new(n), dir(n), w_new(n);
  std::vector<std::vector<double>> s_hist, y_hist;
  std::vector<double> rho_hist;
  double f = problem.value_and_gradient(w, g);
  for (std::size_t it = 0; it < iterations; ++it) {
    double gmax = 0.0;
    for (double v : g) gmax = std::max(gmax, std::fabs(v));
    if (gmax < 1e-6) break;
    // Two-loop recursion: dir = -H g.
    dir = g;
    std::vector<double> alpha(s_hist.size());
    for (std::size_t k = s_hist.size(); k-- > 0;) {
      alpha[k] = rho_hist[k] * dot(s_hist[k], dir);
      for (std::size_t q = 0; q < n; ++q) dir[q] -= alpha[k] * y_hist[k][q];
    }
    double gamma = 1.0;
    if (!s_hist.empty()) gamma = dot(s_hist.back(), y_hist.back()) / dot(y_hist.back(), y_hist.back());
    else gamma = 1.0 / std::max(1.0, std::sqrt(dot(g, g)));
    for (double& v : dir) v *= gamma;
    for (std::size_t k = 0; k < s_hist.size(); ++k) {
      const double beta = rho_hist[k] * dot(y_hist[k], dir);
      for (std::size_t q = 0; q < n; ++q) dir[q] += s_hist[k][q] * (alpha[k] - beta);
    }
    for (double& v : dir) v = -v;
    double slope = dot(g, dir);
    if (slope >= 0.0) {  // not a descent direction: restart from the gradient
      s_hist.clear();
      y_hist.clear();
      rho_hist.clear();
      for (std::size_t q = 0; q < n; ++q) dir[q] = -g[q];
      slope = dot(g, dir);
    }
    double step = 1.0, f_new = 0.0;
    bool accepted = false;
    for (int tries = 0; tries < 40; ++tries) {
      for (std::size_t q = 0; q < n; ++q) w_new[q] = w[q] + step * dir[q];
      f_new = problem.value_and_gradient(w_new, g_new);
      if (f_new <= f + 1e-4 * step * slope) {
        accepted = true;
        break;
      }
      step *= 0.5;
    }
    if (!accepted) break;
    std::vector<double> s(n), yv(n);
    for (std::size_t q = 0; q < n; ++q) {
      s[q] = w_new[q] - w[q];
      yv[q] = g_new[q] - g[q];
    }
    const double sy = dot(s, yv);
    if (sy > 1e-12) {
      if (s_hist.size() == memory) {
        s_hist.erase(s_hist.begin());
        y_hist.erase(y_hist.begin());
        rho_hist.erase(rho_hist.begin());
      }
      s_hist.push_back(std::move(s));
      y_hist.push_back(std::move(yv));
      rho_hist.push_back(1.0 / sy);
    }
    w.swap(w_new);
    g.swap(g_new);
    f = f_new;
  }
}

const std::vector<std::string>& paper_tags() {
  static const std::vector<std::string> tags(function_tag_names().begin(), function_tag_names().end() - 1);
  return tags;  // the eight categories, without "unknown"
}

}  // namespace

std::vector<SparseFeatures> tagger_features(const Trace& trace, const TaggerFeatureSet& set) {
  check_bits(set.hash_bits, "tagger_features");
  const std::size_t n = trace.sentences.size();
  std::vector<SentenceInfo> info(n);
  for (std::size_t i = 0; i < n; ++i) {
    info[i].tokens = tokenize(trace.sentences[i].text);
    info[i].shape = shape_names(trace.sentences[i].text, info[i].tokens);
  }
  if (set.rules) {
    Trace copy = trace;
    const std::vector<FunctionTagDecision> decisions = tag_trace(copy);
    for (std::size_t i = 0; i < n; ++i) {
      info[i].rule_tag = decisions[i].tag;
      info[i].rule_name = decisions[i].rule;
    }
  }
  std::set<std::string> problem_words;
  if (set.problem_overlap) problem_words = content_words(tokenize(problem_text(trace)));

  std::vector<SparseFeatures> out;
  out.reserve(n);
  FeatureWriter w(set.hash_bits);
  for (std::size_t i = 0; i < n; ++i) {
    const SentenceInfo& s = info[i];
    w.add("bias", "1");  // a constant: harmless, keeps every sentence non-empty
    for (const Token& t : s.tokens) w.add("w", t.text);
    add_opening(w, "f", s.tokens, 3);
    if (!s.tokens.empty()) w.add("l", s.tokens.back().text);
    if (set.bigrams) {
      std::string previous = "<s>";
      for (const Token& t : s.tokens) {
        w.add("b", previous + " " + t.text);
        previous = t.text;
      }
      w.add("b", previous + " </s>");
    }
    if (set.shape)
      for (const std::string& name : s.shape) w.add("s", name);
    if (set.rules) {
      w.add("rt", s.rule_tag);
      w.add("rr", s.rule_name);
    }
    if (set.neighbours) {
      const auto neighbour = [&](std::size_t j, const char* p) {
        const SentenceInfo& o = info[j];
        for (const Token& t : o.tokens) w.add(std::string(p) + "w", t.text);
        add_opening(w, std::string(p) + "f", o.tokens, 2);
        if (set.shape)
          for (const std::string& name : o.shape) w.add(std::string(p) + "s", name);
        if (set.rules) w.add(std::string(p) + "rt", o.rule_tag);
      };
      if (i > 0) neighbour(i - 1, "p");
      else w.add("p", "none");
      if (i + 1 < n) neighbour(i + 1, "n");
      else w.add("n", "none");
    }
    if (set.position) {
      w.add("pos", std::to_string(10 * i / n));
      if (i == 0) w.add("pos", "first");
      if (i + 1 == n) w.add("pos", "last");
      w.add("posv", "x", n > 1 ? static_cast<float>(i) / static_cast<float>(n - 1) : 0.0f);
    }
    if (set.problem_overlap && !problem_words.empty()) {
      const std::set<std::string> words = content_words(s.tokens);
      if (words.size() < 3) {
        w.add("ovl", "few");
      } else {
        std::size_t shared = 0;
        for (const std::string& x : words) shared += problem_words.count(x);
        w.add("ovl", std::to_string(4 * shared / words.size()));  // quarters: 0..4
      }
    }
    out.push_back(w.take());
  }
  return out;
}

std::vector<std::vector<double>> TaggerModel::probabilities(const Trace& trace) const {
  const std::size_t c = classes.size();
  std::vector<std::vector<double>> out;
  if (trace.sentences.empty() || c == 0) return std::vector<std::vector<double>>(trace.sentences.size());
  const std::vector<SparseFeatures> x = tagger_features(trace, features);
  out.reserve(x.size());
  for (const SparseFeatures& f : x) {
    std::vector<double> z(bias.begin(), bias.end());
    for (std::size_t q = 0; q < f.index.size(); ++q) {
      const auto it = std::lower_bound(rows.begin(), rows.end(), f.index[q]);
      if (it == rows.end() || *it != f.index[q]) continue;
      const float* row = weights.data() + static_cast<std::size_t>(it - rows.begin()) * c;
      for (std::size_t k = 0; k < c; ++k) z[k] += static_cast<double>(f.value[q]) * row[k];
    }
    const double m = *std::max_element(z.begin(), z.end());
    double sum = 0.0;
    for (double& v : z) sum += (v = std::exp(v - m));
    for (double& v : z) v /= sum;
    out.push_back(std::move(z));
  }
  return out;
}

std::string TaggerModel::serialize() const {
  std::string out(kMagic, sizeof kMagic);
  put_u32(out, kVersion);
  put_u32(out, features.hash_bits);
  put_u32(out, flags_of(features));
  put_u32(out, static_cast<std::uint32_t>(classes.size()));
  for (const std::string& name : classes) {
    put_u32(out, static_cast<std::uint32_t>(name.size()));
    out += name;
  }
  for (float b : bias) put_f32(out, b);
  put_f32(out, transition_weight);
  put_u32(out, static_cast<std::uint32_t>(transitions.size()));
  for (float t : transitions) put_f32(out, t);
  put_u32(out, static_cast<std::uint32_t>(rows.size()));
  for (std::uint32_t r : rows) put_u32(out, r);
  for (float v : weights) put_f32(out, v);
  return out;
}

TaggerModel TaggerModel::parse(std::string_view bytes, const std::string& name) {
  Reader r(bytes, name);
  if (bytes.size() < sizeof kMagic || bytes.substr(0, sizeof kMagic) != std::string_view(kMagic, sizeof kMagic))
    r.fail("no ANCHTAG1 magic");
  r.bytes(sizeof kMagic, "magic");
  const std::uint32_t version = r.u32("version");
  if (version != kVersion) r.fail("version " + std::to_string(version) + ", this library reads version 1");
  TaggerModel m;
  m.features.hash_bits = r.u32("hash_bits");
  if (m.features.hash_bits < 1 || m.features.hash_bits > 30)
    r.fail("hash_bits " + std::to_string(m.features.hash_bits) + " outside 1..30");
  const std::uint32_t flags = r.u32("feature flags");
  if (flags > 63) r.fail("unknown feature flags " + std::to_string(flags));
  m.features.bigrams = flags & 1u;
  m.features.shape = flags & 2u;
  m.features.neighbours = flags & 4u;
  m.features.position = flags & 8u;
  m.features.rules = flags & 16u;
  m.features.problem_overlap = flags & 32u;
  const std::uint32_t c = r.u32("class count");
  if (c == 0 || c > 64) r.fail(std::to_string(c) + " classes");
  for (std::uint32_t k = 0; k < c; ++k) {
    const std::uint32_t len = r.u32("class name");
    std::string tag(r.bytes(len, "class name"));
    if (!is_function_tag(tag)) r.fail("class '" + tag.substr(0, 40) + "' is not a function tag");
    m.classes.push_back(std::move(tag));
  }
  for (std::uint32_t k = 0; k < c; ++k) m.bias.push_back(r.f32("bias"));
  m.transition_weight = r.f32("transition weight");
  if (m.transition_weight < 0.0f) r.fail("a negative transition weight");
  const std::uint32_t transitions = r.u32("transition count");
  if (transitions != 0 && transitions != (c + 1) * c)
    r.fail(std::to_string(transitions) + " transitions for " + std::to_string(c) + " classes");
  for (std::uint32_t k = 0; k < transitions; ++k) m.transitions.push_back(r.f32("transitions"));
  const std::uint32_t rows = r.u32("row count");
  if (rows > r.left() / 4 || static_cast<std::uint64_t>(rows) * (4 + 4ull * c) != r.left())
    r.fail(std::to_string(rows) + " rows do not match the " + std::to_string(r.left()) + " bytes left");
  m.rows.reserve(rows);
  for (std::uint32_t k = 0; k < rows; ++k) {
    const std::uint32_t row = r.u32("rows");
    if (!m.rows.empty() && row <= m.rows.back()) r.fail("rows not ascending");
    if (m.features.hash_bits < 32 && (row >> m.features.hash_bits) != 0) r.fail("a row outside the hash space");
    m.rows.push_back(row);
  }
  m.weights.reserve(static_cast<std::size_t>(rows) * c);
  for (std::size_t k = 0; k < static_cast<std::size_t>(rows) * c; ++k) m.weights.push_back(r.f32("weights"));
  return m;
}

TaggerModel TaggerModel::read(const std::string& path) {
  return parse(read_text_file(path, kModelFileLimit), path);
}

const TaggerModel& builtin_tagger_model() {
  static const TaggerModel model = TaggerModel::parse(tagger_weights::kTaggerWeights, "built-in tagger weights");
  return model;
}

TaggerModel train_tagger(const std::vector<Trace>& traces, const TaggerTrainingOptions& options) {
  check_bits(options.features.hash_bits, "train_tagger");
  if (!(options.transition_weight >= 0.0)) throw Error("train_tagger: transition_weight must be >= 0");
  const std::vector<std::string>& tags = paper_tags();
  const std::size_t c = tags.size();
  // Features and labels of every usable sentence.
  std::vector<SparseFeatures> x;
  std::vector<int> y;
  for (const Trace& trace : traces) {
    std::vector<SparseFeatures> f = tagger_features(trace, options.features);
    for (std::size_t i = 0; i < f.size(); ++i) {
      const auto& t = trace.sentences[i].tags;
      if (t.empty()) continue;
      const auto at = std::find(tags.begin(), tags.end(), t.front());
      if (at == tags.end()) continue;
      x.push_back(std::move(f[i]));
      y.push_back(static_cast<int>(at - tags.begin()));
    }
  }
  if (x.empty()) throw Error("train_tagger: no sentence has one of the eight function tags as its first tag");
  // Label transitions between consecutive labelled sentences (row 0: the
  // first sentence of a trace), add-one smoothed, as log-probabilities.
  std::vector<double> transition_count((c + 1) * c, 1.0);
  for (const Trace& trace : traces) {
    std::size_t from = 0;  // 0: start, k + 1: class k
    for (const Sentence& s : trace.sentences) {
      const auto at = s.tags.empty() ? tags.end() : std::find(tags.begin(), tags.end(), s.tags.front());
      if (at == tags.end()) {
        from = 0;
        continue;
      }
      const auto k = static_cast<std::size_t>(at - tags.begin());
      transition_count[from * c + k] += 1.0;
      from = k + 1;
    }
  }
  // Buckets present in at least min_count sentences get a compact column.
  std::map<std::uint32_t, std::size_t> count;
  for (const SparseFeatures& f : x)
    for (std::uint32_t i : f.index) ++count[i];
  TaggerModel model;
  model.features = options.features;
  model.classes = tags;
  std::unordered_map<std::uint32_t, std::uint32_t> column;
  for (const auto& [bucket_index, n] : count)
    if (n >= std::max<std::size_t>(options.min_count, 1)) {
      column.emplace(bucket_index, static_cast<std::uint32_t>(model.rows.size()));
      model.rows.push_back(bucket_index);
    }
  std::vector<std::vector<std::pair<std::uint32_t, float>>> compact(x.size());
  for (std::size_t i = 0; i < x.size(); ++i)
    for (std::size_t q = 0; q < x[i].index.size(); ++q)
      if (const auto it = column.find(x[i].index[q]); it != column.end())
        compact[i].emplace_back(it->second, x[i].value[q]);
  const std::size_t d = model.rows.size();
  const Problem problem{compact, y, d, c, options.l2};
  std::vector<double> w((d + 1) * c, 0.0);
  minimise(problem, w, options.iterations);
  for (std::size_t k = 0; k < c; ++k) model.bias.push_back(static_cast<float>(w[d * c + k]));
  model.transition_weight = static_cast<float>(options.transition_weight);
  for (std::size_t from = 0; from <= c; ++from) {
    double sum = 0.0;
    for (std::size_t k = 0; k < c; ++k) sum += transition_count[from * c + k];
    for (std::size_t k = 0; k < c; ++k)
      model.transitions.push_back(static_cast<float>(std::log(transition_count[from * c + k] / sum)));
  }
  std::vector<float> weights(d * c);
  for (std::size_t q = 0; q < d * c; ++q) weights[q] = static_cast<float>(w[q]);
  model.weights = std::move(weights);
  return model;
}

std::vector<std::size_t> TaggerModel::decode(const std::vector<std::vector<double>>& p) const {
  const std::size_t n = p.size(), c = classes.size();
  std::vector<std::size_t> best(n, 0);
  if (n == 0 || c == 0) return best;
  if (transition_weight == 0.0f || transitions.size() != (c + 1) * c) {
    for (std::size_t i = 0; i < n; ++i)  // the first of equal maxima
      best[i] = static_cast<std::size_t>(std::max_element(p[i].begin(), p[i].end()) - p[i].begin());
    return best;
  }
  // Viterbi: maximise sum_i log p_i(y_i) + transition_weight * log T(y_i | y_{i-1}).
  const auto logp = [](double q) { return std::log(std::max(q, 1e-300)); };
  std::vector<double> score(c), next(c);
  std::vector<std::vector<std::size_t>> back(n, std::vector<std::size_t>(c, 0));
  for (std::size_t k = 0; k < c; ++k) score[k] = logp(p[0][k]) + transition_weight * transitions[k];
  for (std::size_t i = 1; i < n; ++i) {
    for (std::size_t k = 0; k < c; ++k) {
      std::size_t arg = 0;
      double top = -std::numeric_limits<double>::infinity();
      for (std::size_t j = 0; j < c; ++j) {
        const double v = score[j] + transition_weight * transitions[(j + 1) * c + k];
        if (v > top) {
          top = v;
          arg = j;
        }
      }
      next[k] = top + logp(p[i][k]);
      back[i][k] = arg;
    }
    score.swap(next);
  }
  best[n - 1] = static_cast<std::size_t>(std::max_element(score.begin(), score.end()) - score.begin());
  for (std::size_t i = n - 1; i > 0; --i) best[i - 1] = back[i][best[i]];
  return best;
}

std::vector<FunctionTagDecision> tag_trace_learned(Trace& trace, const TaggerModel& model) {
  const std::vector<std::size_t> best = model.decode(model.probabilities(trace));
  std::vector<FunctionTagDecision> out;
  out.reserve(trace.sentences.size());
  for (std::size_t i = 0; i < trace.sentences.size(); ++i) {
    std::string tag = model.classes.empty() ? "unknown" : model.classes[best[i]];
    trace.sentences[i].tags = {tag};
    out.push_back({std::move(tag), "learned"});
  }
  return out;
}

}  // namespace anchors
