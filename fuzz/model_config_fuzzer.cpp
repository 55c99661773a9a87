// config.json: model::parse_model_config, which read_model_config (and so
// every model load) runs on the file's text.
#include <cstdint>
#include <string>

#include "anchors/model/config.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  anchors::fuzz::expect_only_anchors_errors([&] {
    const auto config = anchors::model::parse_model_config(std::string(anchors::fuzz::text_of(data, size)));
    // What the model code divides by or allocates from.
    FUZZ_CHECK(config.vocab_size > 0 && config.hidden_size > 0 && config.intermediate_size > 0, "sizes");
    FUZZ_CHECK(config.num_hidden_layers > 0 && config.num_hidden_layers <= 100000, "num_hidden_layers");
    FUZZ_CHECK(config.num_attention_heads > 0 && config.num_key_value_heads > 0 &&
                   config.num_attention_heads % config.num_key_value_heads == 0,
               "heads");
    FUZZ_CHECK(config.head_dim > 0, "head_dim");
    if (config.is_decoder()) FUZZ_CHECK(config.head_dim % 2 == 0, "odd head_dim for rotary embeddings");
    for (const std::int64_t id : config.eos_token_ids)
      FUZZ_CHECK(id >= 0 && id < config.vocab_size, "eos_token_id outside the vocabulary");
  });
  return 0;
}
