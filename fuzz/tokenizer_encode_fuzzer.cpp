// Encoding and decoding with real tokenizers: the trained byte-level BPE
// fixtures of tests/data/tokenizers (GPT-2, Llama-3 and Qwen2 rules) and a
// small WordPiece (BERT rules, fuzz/data/wordpiece_tokenizer.json).
//
// Input: a selector byte, then the text (or ids).
//   selector % 5                 which tokenizer
//   selector & 0x80 clear        encode the text (invalid UTF-8 must be an Error)
//   selector & 0x80 set          decode the rest read as little-endian int32 ids
//                                (ids past the vocabulary are skipped; negative ones are anchors::Error)
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "anchors/core/file_io.h"
#include "anchors/core/utf8.h"
#include "anchors/model/tokenizer.h"
#include "fuzz_common.h"
#include "tokenizer_check.h"

namespace {

using anchors::model::Tokenizer;

const std::vector<std::shared_ptr<Tokenizer>>& tokenizers() {
  static const std::vector<std::shared_ptr<Tokenizer>> all = [] {
    const std::string root = ANCHORS_FUZZ_SOURCE_DIR;
    std::vector<std::shared_ptr<Tokenizer>> loaded;
    for (const char* name : {"gpt2_style", "llama3", "qwen2", "qwen2_trim_offsets"})
      loaded.push_back(Tokenizer::load(root + "/tests/data/tokenizers/" + name + "/tokenizer.json"));
    loaded.push_back(Tokenizer::load(root + "/fuzz/data/wordpiece_tokenizer.json"));
    return loaded;
  }();
  return all;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const Tokenizer& tokenizer = *tokenizers()[data[0] % tokenizers().size()];
  const bool decode_ids = (data[0] & 0x80) != 0;
  const std::string_view rest = anchors::fuzz::text_of(data + 1, size - 1);
  if (decode_ids) {
    std::vector<std::int64_t> ids;
    for (std::size_t at = 0; at + 4 <= rest.size(); at += 4) {
      std::int32_t id = 0;
      std::memcpy(&id, rest.data() + at, 4);
      ids.push_back(id);
    }
    if (std::any_of(ids.begin(), ids.end(), [](std::int64_t id) { return id < 0; })) {
      // A negative id is a caller's bug: anchors::Error (any other exception escapes: a finding).
      for (const bool skip : {false, true}) {
        bool refused = false;
        try {
          tokenizer.decode(ids, skip);
        } catch (const anchors::Error&) {
          refused = true;
        }
        FUZZ_CHECK(refused, "decode accepted a negative id");
      }
      return 0;
    }
    anchors::fuzz::expect_no_exception("decode", [&] {
      for (const bool skip : {false, true})
        FUZZ_CHECK(anchors::utf8::is_valid(tokenizer.decode(ids, skip)), "decode gave invalid UTF-8");
    });
    return 0;
  }
  if (!anchors::utf8::is_valid(rest)) {
    // Refused by name, never tokenised.
    bool refused = false;
    anchors::fuzz::expect_only_anchors_errors([&] {
      refused = true;
      tokenizer.encode(rest);
      refused = false;
    });
    FUZZ_CHECK(refused, "encode accepted invalid UTF-8");
    return 0;
  }
  anchors::fuzz::check_encoding(tokenizer, rest);
  return 0;
}
