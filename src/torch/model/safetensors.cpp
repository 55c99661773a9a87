#include "anchors/model/safetensors.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"

namespace anchors::model {
namespace fs = std::filesystem;
using nlohmann::json;

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; views assume a little-endian host");

namespace {

// The reference implementation refuses headers above 100 MB; a larger length
// field is a corrupt (or hostile) file, not a big model.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
// Legitimate headers nest three deep (root, tensor entry, shape array).
constexpr int kMaxHeaderDepth = 8;

struct DtypeSpec {
  const char* name;
  torch::ScalarType type;
  std::uint64_t size;  // bytes per element
};

// Every standard safetensors dtype with a whole-byte element size.
constexpr DtypeSpec kDtypes[] = {
    {"F32", torch::kFloat32, 4},           {"F16", torch::kFloat16, 2},
    {"BF16", torch::kBFloat16, 2},         {"F64", torch::kFloat64, 8},
    {"I64", torch::kInt64, 8},             {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2},             {"I8", torch::kInt8, 1},
    {"U64", torch::kUInt64, 8},            {"U32", torch::kUInt32, 4},
    {"U16", torch::kUInt16, 2},            {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1},             {"F8_E4M3", torch::kFloat8_e4m3fn, 1},
    {"F8_E5M2", torch::kFloat8_e5m2, 1},   {"F8_E8M0", torch::kFloat8_e8m0fnu, 1},
};

const DtypeSpec* find_dtype(const std::string& name) {
  for (const auto& spec : kDtypes)
    if (name == spec.name) return &spec;
  return nullptr;
}

std::uint64_t element_size(torch::ScalarType type) {
  for (const auto& spec : kDtypes)
    if (spec.type == type) return spec.size;
  return 0;
}

std::string shape_string(const std::vector<std::int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

}  // namespace

// A private mapping of a whole file. Views hold a shared_ptr to it, so it is
// unmapped only after the last tensor viewing it is gone.
class MappedFile {
 public:
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(data_, size_);
  }

  static std::shared_ptr<MappedFile> map(const std::string& path) {
    // RegularFile refuses FIFOs, devices and directories before anything is
    // mapped or read (a FIFO would otherwise block the open; /dev/zero maps
    // as an endless file of zeros).
    const RegularFile handle = RegularFile::open(path);
    std::shared_ptr<MappedFile> file(new MappedFile());
    file->size_ = static_cast<std::size_t>(handle.size());
    if (file->size_ > 0) {
      // Read-only: a writable private mapping would be charged in full against
      // the commit limit (a 140 GB checkpoint on a 128 GB machine would fail to
      // map), while read-only pages cost nothing until touched and are shared
      // with the page cache.
      void* data = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, handle.fd(), 0);
      if (data == MAP_FAILED) throw Error(fmt::format("{}: cannot mmap ({})", path, std::strerror(errno)));
      file->data_ = data;
    }
    return file;  // the mapping keeps its own reference to the file; handle closes the descriptor
  }

  const std::uint8_t* bytes() const { return static_cast<const std::uint8_t*>(data_); }
  std::uint8_t* mutable_bytes() const { return static_cast<std::uint8_t*>(data_); }
  std::size_t size() const { return size_; }

 private:
  MappedFile() = default;
  void* data_ = nullptr;
  std::size_t size_ = 0;
};

namespace {

// Parses and validates the header of `file`; fills tensors and metadata and
// returns the byte offset of the data section.
std::uint64_t parse_header(const std::string& path, const MappedFile& file, std::vector<TensorInfo>& tensors,
                           std::map<std::string, std::string>& metadata) {
  const std::uint64_t file_size = file.size();
  if (file_size < 8)
    throw Error(fmt::format("{}: truncated safetensors file ({} bytes; the 8-byte header length is missing)",
                            path, file_size));
  std::uint64_t header_len = 0;
  std::memcpy(&header_len, file.bytes(), 8);  // little-endian host (static_assert above)
  if (header_len > kMaxHeaderBytes)
    throw Error(fmt::format("{}: header length {} exceeds the {}-byte limit (corrupt or not a safetensors file)",
                            path, header_len, kMaxHeaderBytes));
  if (header_len > file_size - 8)
    throw Error(fmt::format("{}: header length {} runs past the end of the file ({} bytes): truncated file?",
                            path, header_len, file_size));
  if (header_len < 2) throw Error(fmt::format("{}: header of {} bytes cannot hold a JSON object", path, header_len));

  const char* header_begin = reinterpret_cast<const char*>(file.bytes() + 8);
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

  const std::uint64_t data_offset = 8 + header_len;
  const std::uint64_t data_size = file_size - data_offset;

  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw Error(fmt::format("{}: \"__metadata__\" is not an object", path));
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string())
          throw Error(fmt::format("{}: \"__metadata__\" entry \"{}\" is not a string", path, key));
        metadata[key] = value.get<std::string>();
      }
      continue;
    }
    const auto fail = [&](const std::string& problem) {
      return Error(fmt::format("{}: tensor \"{}\": {}", path, name, problem));
    };
    if (!entry.is_object()) throw fail("entry is not an object");

    TensorInfo info;
    info.name = name;

    const auto dtype_it = entry.find("dtype");
    if (dtype_it == entry.end() || !dtype_it->is_string()) throw fail("\"dtype\" is missing or not a string");
    info.dtype_name = dtype_it->get<std::string>();
    const DtypeSpec* spec = find_dtype(info.dtype_name);
    if (spec == nullptr)
      throw fail(fmt::format("unknown dtype \"{}\" (supported: F32, F16, BF16)", info.dtype_name));
    info.dtype = spec->type;

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
    if (__builtin_mul_overflow(numel, spec->size, &nbytes)) throw fail(fmt::format("shape {} overflows", shape_it->dump()));

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
                             info.data_end, info.data_end - info.data_begin, info.dtype_name,
                             shape_string(info.shape), nbytes));
    tensors.push_back(std::move(info));
  }

  // No two tensors may share bytes (empty tensors occupy none).
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : tensors)
    if (t.data_end > t.data_begin) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->data_begin < b->data_begin; });
  for (std::size_t k = 1; k < by_offset.size(); ++k) {
    const TensorInfo& prev = *by_offset[k - 1];
    const TensorInfo& next = *by_offset[k];
    if (next.data_begin < prev.data_end)
      throw Error(fmt::format("{}: tensors \"{}\" [{}, {}] and \"{}\" [{}, {}] overlap", path, prev.name,
                              prev.data_begin, prev.data_end, next.name, next.data_begin, next.data_end));
  }
  return data_offset;
}

}  // namespace

// ---------------------------------------------------------------------------
// SafetensorsFile
// ---------------------------------------------------------------------------

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile result;
  result.path_ = path;
  result.file_ = MappedFile::map(path);
  result.data_offset_ = parse_header(path, *result.file_, result.tensors_, result.metadata_);
  for (std::size_t k = 0; k < result.tensors_.size(); ++k) result.index_[result.tensors_[k].name] = k;
  return result;
}

bool SafetensorsFile::contains(const std::string& name) const { return index_.count(name) > 0; }

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) throw Error(fmt::format("{}: no tensor named \"{}\"", path_, name));
  return tensors_[it->second];
}

torch::Tensor SafetensorsFile::view(const std::string& name) const {
  const TensorInfo& t = info(name);
  if (!t.has_supported_dtype())
    throw Error(fmt::format("{}: tensor \"{}\" has dtype {}, which this library does not read (supported: F32, F16, BF16)",
                            path_, name, t.dtype_name));
  const auto options = torch::TensorOptions().dtype(t.dtype).device(torch::kCPU);
  if (t.data_end == t.data_begin) return torch::empty(t.shape, options);
  std::uint8_t* data = file_->mutable_bytes() + data_offset_ + t.data_begin;
  if (reinterpret_cast<std::uintptr_t>(data) % element_size(t.dtype) != 0) {
    auto copy = torch::empty(t.shape, options);
    std::memcpy(copy.data_ptr(), data, t.data_end - t.data_begin);
    return copy;
  }
  // The deleter owns a reference to the mapping: the bytes outlive every view.
  // from_blob wants a mutable pointer; the memory stays read-only (see header).
  std::shared_ptr<MappedFile> keep_alive = file_;
  return torch::from_blob(data, t.shape, [keep_alive](void*) mutable { keep_alive.reset(); }, options);
}

// ---------------------------------------------------------------------------
// Checkpoint
// ---------------------------------------------------------------------------

namespace {

constexpr const char* kSingleFileName = "model.safetensors";
constexpr const char* kIndexFileName = "model.safetensors.index.json";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// weight_map of an index file: tensor name -> shard file name.
std::map<std::string, std::string> read_weight_map(const std::string& index_path) {
  const std::string text = read_text_file(index_path, kModelFileLimit);
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

}  // namespace

Checkpoint Checkpoint::open(const std::string& dir) {
  Checkpoint checkpoint;
  checkpoint.dir_ = dir;

  std::error_code ec;
  std::optional<std::string> single_file;
  std::optional<std::string> index_file;
  if (fs::is_directory(dir, ec)) {
    const fs::path folder(dir);
    // exists, not is_regular_file: a FIFO or device of that name is refused
    // by name when opened (RegularFile) rather than reported missing.
    if (fs::exists(folder / kSingleFileName, ec))
      single_file = (folder / kSingleFileName).string();
    else if (fs::exists(folder / kIndexFileName, ec))
      index_file = (folder / kIndexFileName).string();
    else
      throw Error(fmt::format("{}: no {} or {} in this folder", dir, kSingleFileName, kIndexFileName));
  } else if (fs::exists(dir, ec)) {
    if (ends_with(dir, ".index.json"))
      index_file = dir;
    else
      single_file = dir;
  } else {
    throw Error(fmt::format("{}: no such checkpoint file or folder", dir));
  }

  if (single_file) {
    checkpoint.files_.push_back(SafetensorsFile::open(*single_file));
    for (const auto& t : checkpoint.files_.front().tensors()) checkpoint.file_of_[t.name] = 0;
    return checkpoint;
  }

  const auto weight_map = read_weight_map(*index_file);
  const fs::path folder = fs::path(*index_file).parent_path();
  std::map<std::string, std::size_t> shard_index;  // shard name -> index into files_
  for (const auto& [name, shard] : weight_map) {
    auto it = shard_index.find(shard);
    if (it == shard_index.end()) {
      const std::string shard_path = (folder / shard).string();
      if (!fs::exists(shard_path, ec))
        throw Error(fmt::format("{}: shard \"{}\" (holding \"{}\") does not exist at {}", *index_file, shard,
                                name, shard_path));
      checkpoint.files_.push_back(SafetensorsFile::open(shard_path));
      it = shard_index.emplace(shard, checkpoint.files_.size() - 1).first;
    }
    if (!checkpoint.files_[it->second].contains(name))
      throw Error(fmt::format("{}: weight_map puts \"{}\" in shard \"{}\", but {} has no such tensor", *index_file,
                              name, shard, checkpoint.files_[it->second].path()));
    checkpoint.file_of_[name] = it->second;
  }
  return checkpoint;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> names;
  names.reserve(file_of_.size());
  for (const auto& entry : file_of_) names.push_back(entry.first);  // std::map: already sorted
  return names;
}

bool Checkpoint::contains(const std::string& name) const { return file_of_.count(name) > 0; }

const SafetensorsFile& Checkpoint::file_of(const std::string& name) const {
  const auto it = file_of_.find(name);
  if (it == file_of_.end()) throw Error(fmt::format("{}: checkpoint has no tensor named \"{}\"", dir_, name));
  return files_[it->second];
}

const TensorInfo& Checkpoint::info(const std::string& name) const { return file_of(name).info(name); }

torch::Tensor Checkpoint::view(const std::string& name) const { return file_of(name).view(name); }

torch::Tensor Checkpoint::load(const std::string& name, torch::ScalarType dtype, torch::Device device,
                               const std::vector<std::int64_t>& expected_shape) const {
  const SafetensorsFile& file = file_of(name);
  const TensorInfo& t = file.info(name);
  // Check the shape before touching (or copying) any data.
  if (!expected_shape.empty() && t.shape != expected_shape)
    throw Error(fmt::format("{}: tensor \"{}\" has shape {}, expected {}", file.path(), name, shape_string(t.shape),
                            shape_string(expected_shape)));
  return file.view(name).to(device, dtype);
}

}  // namespace anchors::model
