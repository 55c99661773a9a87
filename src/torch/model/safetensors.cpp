#include "anchors/model/safetensors.h"

#include <sys/mman.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "safetensors_header.h"

namespace anchors::model {
namespace fs = std::filesystem;

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; views assume a little-endian host");

namespace {

namespace st = safetensors_detail;

torch::ScalarType torch_type(st::DtypeId id) {
  switch (id) {
    case st::DtypeId::kF32: return torch::kFloat32;
    case st::DtypeId::kF16: return torch::kFloat16;
    case st::DtypeId::kBF16: return torch::kBFloat16;
    case st::DtypeId::kF64: return torch::kFloat64;
    case st::DtypeId::kI64: return torch::kInt64;
    case st::DtypeId::kI32: return torch::kInt32;
    case st::DtypeId::kI16: return torch::kInt16;
    case st::DtypeId::kI8: return torch::kInt8;
    case st::DtypeId::kU64: return torch::kUInt64;
    case st::DtypeId::kU32: return torch::kUInt32;
    case st::DtypeId::kU16: return torch::kUInt16;
    case st::DtypeId::kU8: return torch::kUInt8;
    case st::DtypeId::kBool: return torch::kBool;
    case st::DtypeId::kF8E4M3: return torch::kFloat8_e4m3fn;
    case st::DtypeId::kF8E5M2: return torch::kFloat8_e5m2;
    case st::DtypeId::kF8E8M0: return torch::kFloat8_e8m0fnu;
  }
  throw Error("safetensors: unknown dtype id");  // unreachable: the switch covers every DtypeId
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

// Validates the header of the mapped `file` (safetensors_header.cpp); fills
// tensors and metadata and returns the byte offset of the data section.
std::uint64_t parse_header(const std::string& path, const MappedFile& file, std::vector<TensorInfo>& tensors,
                           std::map<std::string, std::string>& metadata) {
  st::Header header = st::parse_header(path, file.bytes(), file.size());
  tensors.reserve(header.tensors.size());
  for (auto& entry : header.tensors) {
    TensorInfo info;
    info.name = std::move(entry.name);
    info.dtype_name = entry.dtype->name;
    info.dtype = torch_type(entry.dtype->id);
    info.shape = std::move(entry.shape);
    info.data_begin = entry.data_begin;
    info.data_end = entry.data_end;
    tensors.push_back(std::move(info));
  }
  metadata = std::move(header.metadata);
  return header.data_offset;
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
  if (reinterpret_cast<std::uintptr_t>(data) % st::find_dtype(t.dtype_name)->size != 0) {
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
  return st::parse_weight_map(index_path, read_text_file(index_path, kModelFileLimit));
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
    throw Error(fmt::format("{}: tensor \"{}\" has shape {}, expected {}", file.path(), name, st::shape_string(t.shape),
                            st::shape_string(expected_shape)));
  return file.view(name).to(device, dtype);
}

}  // namespace anchors::model
