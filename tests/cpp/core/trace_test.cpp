// Trace::validate: accepts what split_sentences + assign_token_spans produce,
// and rejects each broken invariant with a message naming the sentence.
#include <gtest/gtest.h>

#include <string>

#include "anchors/core/error.h"
#include "anchors/core/segmentation.h"
#include "anchors/core/trace.h"

namespace {

using anchors::CharSpan;
using anchors::Sentence;
using anchors::TokenSpan;
using anchors::Trace;

// A short text split with the default options, with
// byte-count token spans: three well-formed sentences.
Trace make_trace() {
  Trace t;
  t.prompt = "Solve: ";
  t.text = "Caf\u00e9 first words. Second one here. Third sentence now.";
  t.answer = "42";
  t.sentences = anchors::split_sentences(t.text);
  anchors::assign_token_spans(t.sentences, t.text, [](std::string_view p) { return p.size(); }, 3);
  return t;
}

// Expects validate() to throw an anchors::Error whose message contains every fragment.
void expect_invalid(const Trace& t, std::initializer_list<std::string> fragments) {
  try {
    t.validate();
    ADD_FAILURE() << "validate() accepted the trace";
  } catch (const anchors::Error& e) {
    const std::string msg = e.what();
    for (const std::string& f : fragments) {
      EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
    }
  }
}

TEST(TraceValidate, AcceptsSegmentedTraces) {
  const Trace t = make_trace();
  ASSERT_EQ(t.sentences.size(), 3u);
  EXPECT_NO_THROW(t.validate());
  EXPECT_NO_THROW(Trace{}.validate());
  // Without token spans, and with touching and empty char spans.
  Trace bare;
  bare.text = "abcdefgh";
  bare.sentences.resize(3);
  for (std::size_t k = 0; k < 3; ++k) bare.sentences[k].index = k;
  bare.sentences[0].chars = {0, 4};
  bare.sentences[1].chars = {4, 4};
  bare.sentences[2].chars = {4, 8};
  EXPECT_NO_THROW(bare.validate());
  // Only some sentences with token spans: ordering is checked among those.
  bare.sentences[0].tokens = TokenSpan{0, 2};
  bare.sentences[2].tokens = TokenSpan{2, 5};
  EXPECT_NO_THROW(bare.validate());
  bare.sentences[2].tokens = TokenSpan{1, 5};
  expect_invalid(bare, {"sentence 2", "token span [1, 5)", "sentence 0"});
}

TEST(TraceValidate, RejectsWrongIndices) {
  Trace t = make_trace();
  t.sentences[1].index = 2;
  expect_invalid(t, {"sentence 1", "index 2"});
  t = make_trace();
  std::swap(t.sentences[0], t.sentences[1]);
  expect_invalid(t, {"sentence 0", "index 1"});
}

TEST(TraceValidate, RejectsCharSpansOutsideTheText) {
  Trace t = make_trace();
  t.sentences[2].chars.end = t.text.size() + 1;
  expect_invalid(t, {"sentence 2", "outside"});
  t = make_trace();
  t.sentences[2].chars = {t.text.size() + 5, t.text.size() + 9};
  expect_invalid(t, {"sentence 2", "outside"});
  t = make_trace();
  t.sentences[1].chars = {30, 25};
  expect_invalid(t, {"sentence 1", "ends before it begins"});
}

TEST(TraceValidate, RejectsSpansThatCutAUtf8Character) {
  Trace t = make_trace();
  const std::size_t inside_e_acute = t.text.find("\u00e9") + 1;
  t.sentences[0].chars.end = inside_e_acute;
  expect_invalid(t, {"sentence 0", "UTF-8", std::to_string(inside_e_acute)});
  t = make_trace();
  t.sentences[0].chars.begin = inside_e_acute;
  expect_invalid(t, {"sentence 0", "UTF-8"});
}

TEST(TraceValidate, RejectsOverlappingOrUnorderedCharSpans) {
  Trace t = make_trace();
  t.sentences[2].chars.begin = t.sentences[1].chars.end - 1;
  expect_invalid(t, {"sentence 2", "overlaps", "sentence 1"});
  t = make_trace();
  std::swap(t.sentences[1].chars, t.sentences[2].chars);
  expect_invalid(t, {"sentence 2", "overlaps"});
}

TEST(TraceValidate, RejectsBadTokenSpans) {
  Trace t = make_trace();
  t.sentences[1].tokens = TokenSpan{t.sentences[0].tokens->end - 1, t.sentences[1].tokens->end};
  expect_invalid(t, {"sentence 1", "token span", "overlaps"});
  t = make_trace();
  t.sentences[2].tokens = TokenSpan{40, 35};
  expect_invalid(t, {"sentence 2", "token span [40, 35)", "ends before it begins"});
  t = make_trace();
  t.sentences[0].tokens = TokenSpan{-1, 2};
  expect_invalid(t, {"sentence 0", "before token 0"});
}

}  // namespace
