#pragma once
// Memory-mapped safetensors checkpoints. Tensors are zero-copy views on the
// mapping (kept alive by every tensor that views it) until converted.
//
// Format: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32"|"F16"|"BF16"|..., "shape": [...], "data_offsets": [b, e]}, "__metadata__": {...}},
// then the data; offsets are relative to the end of the header.
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace anchors::model {

struct TensorInfo {
  std::string name;
  // The safetensors dtype as written in the header ("F32", "BF16", "I64", ...).
  std::string dtype_name;
  // The matching torch dtype. Only F32, F16 and BF16 tensors can be read
  // (has_supported_dtype()); the other standard safetensors dtypes (BOOL, U8,
  // I8, I16, U16, I32, U32, I64, U64, F64, F8_E4M3, F8_E5M2, F8_E8M0) are
  // catalogued so the file's layout is still validated end to end — HF
  // checkpoints carry such buffers, e.g. BERT's I64 `embeddings.position_ids`.
  torch::ScalarType dtype = torch::kFloat32;
  std::vector<std::int64_t> shape;
  std::uint64_t data_begin = 0;  // byte offsets into the data section
  std::uint64_t data_end = 0;

  bool has_supported_dtype() const {
    return dtype == torch::kFloat32 || dtype == torch::kFloat16 || dtype == torch::kBFloat16;
  }
};

class MappedFile;  // internal: the mmap, unmapped when the last user is gone

// One .safetensors file. open() maps regular files only (a FIFO, device or
// directory is an anchors::Error "<path>: not a regular file (a FIFO)", at
// once; core/file_io.h RegularFile) and validates the whole header: length within the
// file (and below 100 MB), valid JSON, known dtypes (unknown names are an
// error naming the dtype), shapes of non-negative integers, offsets inside the
// data section, begin <= end, non-overlapping, and
// end - begin == product(shape) * dtype size. Every error is an anchors::Error
// that names the file (and the tensor where there is one).
//
// The mapping is read-only (PROT_READ): views cost no memory until their
// pages are touched and share the page cache, but writing into a view faults —
// clone() (or load() to another dtype/device) before modifying a tensor.
// (Truncating the file while it is mapped is undefined, as for every mmap
// reader.)
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  // Sorted by name.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // Error if absent
  // A CPU tensor viewing the mapped, read-only bytes (clone() before writing to
  // it); it keeps the mapping alive. Error if
  // absent or of an unsupported dtype (the message names the dtype). When the
  // bytes are not aligned to the element size (possible only in files whose
  // header length is not a multiple of 8, which the reference writer never
  // produces) the result is an aligned copy instead of a view.
  torch::Tensor view(const std::string& name) const;

 private:
  std::string path_;
  std::shared_ptr<MappedFile> file_;
  std::uint64_t data_offset_ = 0;  // 8 + header length
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint: a folder holding model.safetensors, or the shards listed by
// model.safetensors.index.json ({"weight_map": {"name": "shard file"}}); or a
// path naming a *.safetensors file or an index file directly. A folder with
// both prefers model.safetensors, as transformers does. Every shard the index
// names must exist and hold every tensor mapped to it (Error naming the index,
// the shard and the tensor otherwise).
class Checkpoint {
 public:
  static Checkpoint open(const std::string& dir);

  const std::string& dir() const { return dir_; }  // the path given to open()
  std::vector<std::string> names() const;          // sorted
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;
  torch::Tensor view(const std::string& name) const;  // zero-copy, see SafetensorsFile::view
  // The file that holds `name` (a shard for sharded checkpoints).
  const SafetensorsFile& file_of(const std::string& name) const;
  // view(name) converted to dtype/device (a copy unless already matching), with
  // its shape checked against `expected_shape` when given (Error naming both).
  torch::Tensor load(const std::string& name, torch::ScalarType dtype, torch::Device device,
                     const std::vector<std::int64_t>& expected_shape = {}) const;

 private:
  std::string dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, std::size_t> file_of_;  // tensor name -> index into files_
};

}  // namespace anchors::model
