// tokenizer.json (and tokenizer_config.json beside it): Tokenizer::from_json
// on the text, or Tokenizer::load on a folder holding both files. A tokenizer
// that loads then encodes and decodes a fixed text.
//
// Input: mode byte, then
//   '0' tokenizer.json text                         -> Tokenizer::from_json
//   '1' tokenizer.json @@@@ tokenizer_config.json    -> Tokenizer::load(folder)
#include <cstdint>
#include <string>

#include "anchors/model/tokenizer.h"
#include "fuzz_common.h"
#include "tokenizer_check.h"

namespace {

// Letters, digits, punctuation, whitespace runs, accents, CJK, an emoji and
// chat markers: something for every pre-tokenizer rule and added token.
constexpr const char* kSample = "Hello world! It's 2024... \n\n  Caf\xC3\xA9 d\xC3\xA9j\xC3\xA0 vu \xE6\x9D\xB1\xE4\xBA\xAC "
                                "\xF0\x9F\x98\x80 <think>x</think><|im_end|> [CLS] unaffable  ";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using anchors::model::Tokenizer;
  const auto input = anchors::fuzz::split_mode(data, size, 2);
  std::shared_ptr<Tokenizer> tokenizer;
  anchors::fuzz::expect_only_anchors_errors([&] {
    if (input.mode == 0) {
      tokenizer = Tokenizer::from_json(input.rest, "tokenizer.json");
    } else {
      auto& dir = anchors::fuzz::ScratchDir::get();
      dir.clear();
      const auto parts = anchors::fuzz::split_parts(input.rest, 2);
      dir.write("tokenizer.json", parts[0]);
      if (!parts[1].empty()) dir.write("tokenizer_config.json", parts[1]);
      tokenizer = Tokenizer::load(dir.path().string());
    }
  });
  if (tokenizer == nullptr) return 0;
  // A tokenizer that loads must work.
  anchors::fuzz::check_encoding(*tokenizer, kSample);
  anchors::fuzz::expect_no_exception("decode", [&] {
    // Every id of the vocabulary (up to a bound) and a few past it, which are
    // skipped (negative ids are refused: tokenizer_encode checks that).
    std::vector<std::int64_t> ids = {tokenizer->vocab_size(), tokenizer->vocab_size() + 1000};
    for (std::int64_t id = 0; id < tokenizer->vocab_size() && id < 2000; ++id) ids.push_back(id);
    tokenizer->decode(ids);
    tokenizer->decode(ids, true);
  });
  return 0;
}
