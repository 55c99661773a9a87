// model.safetensors.index.json: safetensors_detail::parse_weight_map, which
// Checkpoint::open runs on the index file's text.
#include <cstdint>
#include <filesystem>
#include <string>

#include "fuzz_common.h"
#include "model/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  anchors::fuzz::expect_only_anchors_errors([&] {
    const auto weight_map = anchors::model::safetensors_detail::parse_weight_map(
        "model.safetensors.index.json", std::string(anchors::fuzz::text_of(data, size)));
    FUZZ_CHECK(!weight_map.empty(), "an empty weight_map was accepted");
    // Checkpoint::open joins each shard name to the index's folder: it must
    // not lead out of it.
    for (const auto& [name, shard] : weight_map) {
      const std::filesystem::path path(shard);
      FUZZ_CHECK(!shard.empty() && !path.is_absolute(), shard);
      for (const auto& part : path) FUZZ_CHECK(part != "..", shard);
    }
  });
  return 0;
}
