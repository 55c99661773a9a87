#pragma once
// The invariants of an encoding, shared by the two tokenizer targets.
#include <string>
#include <string_view>

#include "anchors/core/utf8.h"
#include "anchors/model/tokenizer.h"
#include "fuzz_common.h"

namespace anchors::fuzz {

// Encodes `text` (valid UTF-8) with and without special tokens, which must
// not fail (encode refuses invalid UTF-8 only, decode skips ids past the vocabulary), and
// checks what callers rely on: one offset per id, offsets inside the text on
// character boundaries (so code_point_offsets converts them), ids inside the
// vocabulary, count_tokens agreeing with encode, and decodes that are valid
// UTF-8.
inline void check_encoding(const model::Tokenizer& tokenizer, std::string_view text) {
  expect_no_exception("encoding a valid UTF-8 text", [&] {
    for (const bool special : {false, true}) {
      const model::Tokenizer::Encoding encoding = tokenizer.encode(text, special);
      FUZZ_CHECK(encoding.ids.size() == encoding.offsets.size(), "one offset per id");
      for (std::size_t k = 0; k < encoding.ids.size(); ++k) {
        FUZZ_CHECK(encoding.ids[k] >= 0 && encoding.ids[k] < tokenizer.vocab_size(),
                   "id " + std::to_string(encoding.ids[k]) + " outside the vocabulary");
        FUZZ_CHECK(encoding.offsets[k].begin <= encoding.offsets[k].end && encoding.offsets[k].end <= text.size(),
                   "offset outside the text");
      }
      model::code_point_offsets(text, encoding.offsets);  // an Error here: an offset inside a character
      if (!special)
        FUZZ_CHECK(tokenizer.count_tokens(text) == encoding.ids.size(), "count_tokens differs from encode");
      for (const bool skip : {false, true})
        FUZZ_CHECK(utf8::is_valid(tokenizer.decode(encoding.ids, skip)), "decode gave invalid UTF-8");
    }
  });
}

}  // namespace anchors::fuzz
