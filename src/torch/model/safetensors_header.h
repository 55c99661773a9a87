#pragma once
// The LibTorch-free half of the safetensors reader (internal): validating a
// file's header and reading an index file's weight_map, on bytes in memory.
// safetensors.cpp maps the files and makes the tensors; fuzz/ feeds these
// functions directly, so the fuzzers exercise exactly what Checkpoint::open
// runs. Every error is an anchors::Error naming `path` (and the tensor).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace anchors::model::safetensors_detail {

// Every standard safetensors dtype with a whole-byte element size.
enum class DtypeId { kF32, kF16, kBF16, kF64, kI64, kI32, kI16, kI8, kU64, kU32, kU16, kU8, kBool,
                     kF8E4M3, kF8E5M2, kF8E8M0 };

struct DtypeSpec {
  const char* name;    // as written in headers: "F32", "BF16", ...
  DtypeId id;
  std::uint64_t size;  // bytes per element
};

// The spec of a dtype name, or nullptr when safetensors defines no such dtype.
const DtypeSpec* find_dtype(const std::string& name);

// One tensor of a header, validated against the data section.
struct TensorEntry {
  std::string name;
  const DtypeSpec* dtype = nullptr;  // never null in a parsed header
  std::vector<std::int64_t> shape;
  std::uint64_t data_begin = 0;  // byte offsets into the data section
  std::uint64_t data_end = 0;
};

struct Header {
  std::uint64_t data_offset = 0;          // 8 + header length: where the data section begins
  std::vector<TensorEntry> tensors;       // sorted by name
  std::map<std::string, std::string> metadata;
};

// "[2, 3]": how error messages write a shape.
std::string shape_string(const std::vector<std::int64_t>& shape);

// Parses and validates the header of the `size`-byte safetensors file at
// `bytes` (model/safetensors.h lists the checks). Reads nothing outside
// [bytes, bytes + size).
Header parse_header(const std::string& path, const std::uint8_t* bytes, std::uint64_t size);

// The weight_map of model.safetensors.index.json text: tensor name -> shard
// file, a path relative to the index's folder (never absolute, never through
// "..").
std::map<std::string, std::string> parse_weight_map(const std::string& index_path, const std::string& text);

}  // namespace anchors::model::safetensors_detail
