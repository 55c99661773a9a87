// The header of a .safetensors file: safetensors_detail::parse_header, which
// SafetensorsFile::open runs on the mapped file. The input is the whole file.
#include <algorithm>
#include <cstdint>

#include "fuzz_common.h"
#include "model/safetensors_header.h"

using namespace anchors::model::safetensors_detail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  anchors::fuzz::expect_only_anchors_errors([&] {
    const Header header = parse_header("model.safetensors", data, size);
    // What SafetensorsFile::view relies on when it points into the mapping.
    FUZZ_CHECK(header.data_offset >= 8 && header.data_offset <= size, "data section outside the file");
    const std::uint64_t data_size = size - header.data_offset;
    for (std::size_t k = 0; k < header.tensors.size(); ++k) {
      const TensorEntry& t = header.tensors[k];
      FUZZ_CHECK(t.dtype != nullptr, t.name);
      FUZZ_CHECK(t.data_begin <= t.data_end && t.data_end <= data_size, t.name);
      std::uint64_t numel = 1;
      for (const std::int64_t extent : t.shape) {
        FUZZ_CHECK(extent >= 0, t.name);
        numel *= static_cast<std::uint64_t>(extent);  // cannot wrap: the parser checked the product
      }
      FUZZ_CHECK(numel * t.dtype->size == t.data_end - t.data_begin, t.name);
      if (k > 0) FUZZ_CHECK(header.tensors[k - 1].name < t.name, "tensors not sorted by name: " + t.name);
    }
  });
  return 0;
}
