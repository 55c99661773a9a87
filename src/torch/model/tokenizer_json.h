#pragma once
// Building a Pipeline from tokenizer.json text (internal).
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "tokenizer_pipeline.h"

namespace anchors::model::tokenizer_detail {

// `config_text`: the tokenizer_config.json beside it, if any (bos/eos).
std::unique_ptr<Pipeline> read_pipeline(std::string_view text, const std::string& source,
                                        const std::optional<std::string>& config_text = std::nullopt,
                                        const std::string& config_source = "");

}  // namespace anchors::model::tokenizer_detail
