#include "safetensors_header.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <limits>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "anchors/core/error.h"

namespace anchors::model::safetensors_detail {
namespace fs = std::filesystem;
using nlohmann::json;

static_assert(std::endian::native == std::endian::little,
              "the safetensors header length is little-endian and is read as a native integer");

namespace {

// The reference implementation refuses headers above 100 MB; a larger length
// field is a corrupt (or hostile) file, not a big model.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
// Legitimate headers nest three deep (root, tensor entry, shape array).
constexpr int kMaxHeaderDepth = 8;

constexpr DtypeSpec kDtypes[] = {
    {"F32", DtypeId::kF32, 4},           {"F16", DtypeId::kF16, 2},
    {"BF16", DtypeId::kBF16, 2},         {"F64", DtypeId::kF64, 8},
    {"I64", DtypeId::kI64, 8},           {"I32", DtypeId::kI32, 4},
    {"I16", DtypeId::kI16, 2},           {"I8", DtypeId::kI8, 1},
    {"U64", DtypeId::kU64, 8},           {"U32", DtypeId::kU32, 4},
    {"U16", DtypeId::kU16, 2},           {"U8", DtypeId::kU8, 1},
    {"BOOL", DtypeId::kBool, 1},         {"F8_E4M3", DtypeId::kF8E4M3, 1},
    {"F8_E5M2", DtypeId::kF8E5M2, 1},    {"F8_E8M0", DtypeId::kF8E8M0, 1},
};

}  // namespace

std::string shape_string(const std::vector<std::int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

const DtypeSpec* find_dtype(const std::string& name) {
  for (const auto& spec : kDtypes)
    if (name == spec.name) return &spec;
  return nullptr;
}

Header parse_header(const std::string& path, const std::uint8_t* bytes, std::uint64_t file_size) {
  if (file_size < 8)
    throw Error(fmt::format("{}: truncated safetensors file ({} bytes; the 8-byte header length is missing)",
                            path, file_size));
  std::uint64_t header_len = 0;
  std::memcpy(&header_len, bytes, 8);  // little-endian host (static_assert above)
  if (header_len > kMaxHeaderBytes)
    throw Error(fmt::format("{}: header length {} exceeds the {}-byte limit (corrupt or not a safetensors file)",
                            path, header_len, kMaxHeaderBytes));
  if (header_len > file_size - 8)
    throw Error(fmt::format("{}: header length {} runs past the end of the file ({} bytes): truncated file?",
                            path, header_len, file_size));
  if (header_len < 2) throw Error(fmt::format("{}: header of {} bytes cannot hold a JSON object", path, header_len));

  const char* header_begin = reinterpret_cast<const char*>(bytes + 8);
  json header;
  try {
    // Deep nesting cannot occur in a valid header; refuse it early rather than
    // build a huge tree from a hostile file.
    json::parser_callback_t limit_depth = [&path](int depth, json::parse_event_t, json&) {
      if (depth > kMaxHeaderDepth)
        throw Error(fmt::format("{}: header JSON nests deeper than {} levels", path, kMaxHeaderDepth));
      return true;
    };
    header = json::parse(header_begin, header_begin + header_len, limit_depth);
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: header is not valid JSON ({})", path, e.what()));
  }
  if (!header.is_object()) throw Error(fmt::format("{}: header JSON is not an object", path));

  Header result;
  result.data_offset = 8 + header_len;
  const std::uint64_t data_size = file_size - result.data_offset;
  std::vector<TensorEntry>& tensors = result.tensors;

  for (const auto& item : header.items()) {
    // Named references, not a structured binding: `fail` captures `name`,
    // which clang before 16 refuses for bindings (the fuzz build).
    const std::string& name = item.key();
    const json& entry = item.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) throw Error(fmt::format("{}: \"__metadata__\" is not an object", path));
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string())
          throw Error(fmt::format("{}: \"__metadata__\" entry \"{}\" is not a string", path, key));
        result.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    const auto fail = [&](const std::string& problem) {
      return Error(fmt::format("{}: tensor \"{}\": {}", path, name, problem));
    };
    if (!entry.is_object()) throw fail("entry is not an object");

    TensorEntry info;
    info.name = name;

    const auto dtype_it = entry.find("dtype");
    if (dtype_it == entry.end() || !dtype_it->is_string()) throw fail("\"dtype\" is missing or not a string");
    const std::string dtype_name = dtype_it->get<std::string>();
    info.dtype = find_dtype(dtype_name);
    if (info.dtype == nullptr)
      throw fail(fmt::format("unknown dtype \"{}\" (supported: F32, F16, BF16)", dtype_name));

    const auto shape_it = entry.find("shape");
    if (shape_it == entry.end() || !shape_it->is_array()) throw fail("\"shape\" is missing or not an array");
    std::uint64_t numel = 1;
    for (const auto& dim : *shape_it) {
      if (!dim.is_number_unsigned()) throw fail(fmt::format("\"shape\" entry {} is not a non-negative integer", dim.dump()));
      const auto extent = dim.get<std::uint64_t>();
      if (extent > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
          __builtin_mul_overflow(numel, extent, &numel))
        throw fail(fmt::format("shape {} overflows", shape_it->dump()));
      info.shape.push_back(static_cast<std::int64_t>(extent));
    }
    std::uint64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, info.dtype->size, &nbytes))
      throw fail(fmt::format("shape {} overflows", shape_it->dump()));

    const auto offsets_it = entry.find("data_offsets");
    if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
        !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned())
      throw fail("\"data_offsets\" must be two non-negative integers [begin, end]");
    info.data_begin = (*offsets_it)[0].get<std::uint64_t>();
    info.data_end = (*offsets_it)[1].get<std::uint64_t>();
    if (info.data_begin > info.data_end)
      throw fail(fmt::format("data_offsets [{}, {}] end before they begin", info.data_begin, info.data_end));
    if (info.data_end > data_size)
      throw fail(fmt::format("data_offsets [{}, {}] run past the end of the data section ({} bytes): truncated file?",
                             info.data_begin, info.data_end, data_size));
    if (info.data_end - info.data_begin != nbytes)
      throw fail(fmt::format("data_offsets [{}, {}] span {} bytes but {} {} needs {}", info.data_begin,
                             info.data_end, info.data_end - info.data_begin, info.dtype->name,
                             shape_string(info.shape), nbytes));
    tensors.push_back(std::move(info));
  }

  // No two tensors may share bytes (empty tensors occupy none).
  std::vector<const TensorEntry*> by_offset;
  for (const auto& t : tensors)
    if (t.data_end > t.data_begin) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorEntry* a, const TensorEntry* b) { return a->data_begin < b->data_begin; });
  for (std::size_t k = 1; k < by_offset.size(); ++k) {
    const TensorEntry& prev = *by_offset[k - 1];
    const TensorEntry& next = *by_offset[k];
    if (next.data_begin < prev.data_end)
      throw Error(fmt::format("{}: tensors \"{}\" [{}, {}] and \"{}\" [{}, {}] overlap", path, prev.name,
                              prev.data_begin, prev.data_end, next.name, next.data_begin, next.data_end));
  }
  return result;
}

std::map<std::string, std::string> parse_weight_map(const std::string& index_path, const std::string& text) {
  json index;
  try {
    index = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON ({})", index_path, e.what()));
  }
  if (!index.is_object()) throw Error(fmt::format("{}: not a JSON object", index_path));
  const auto map_it = index.find("weight_map");
  if (map_it == index.end() || !map_it->is_object())
    throw Error(fmt::format("{}: \"weight_map\" is missing or not an object", index_path));
  std::map<std::string, std::string> weight_map;
  for (const auto& [name, shard] : map_it->items()) {
    if (!shard.is_string())
      throw Error(fmt::format("{}: weight_map entry \"{}\" is not a file name", index_path, name));
    const std::string shard_name = shard.get<std::string>();
    const fs::path shard_path(shard_name);
    // Shards live next to the index; refuse names that point elsewhere.
    const bool escapes = std::any_of(shard_path.begin(), shard_path.end(), [](const fs::path& part) { return part == ".."; });
    if (shard_name.empty() || shard_path.is_absolute() || escapes)
      throw Error(fmt::format("{}: weight_map entry \"{}\" names shard \"{}\", which is not a file in the checkpoint folder",
                              index_path, name, shard_name));
    weight_map[name] = shard_name;
  }
  if (weight_map.empty()) throw Error(fmt::format("{}: \"weight_map\" is empty", index_path));
  return weight_map;
}

}  // namespace anchors::model::safetensors_detail
