// safetensors reader: files are written byte by byte here (header JSON +
// data), so every corrupt case is exactly the corruption it names.
#include "anchors/model/safetensors.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "anchors/core/error.h"
#include "expect_error.h"

namespace fs = std::filesystem;
using anchors::Error;
using anchors::model::Checkpoint;
using anchors::model::SafetensorsFile;

namespace {

// A fresh folder per test, removed afterwards.
class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("anchors_st_") + info->name() + "_" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  static void write_bytes(const std::string& file, const std::string& bytes) {
    std::ofstream out(file, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  static std::string length_prefix(std::uint64_t n) {
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    return bytes;
  }
  // Header padded with spaces to a multiple of 8, as the reference writer does.
  static std::string file_bytes(std::string header, const std::string& data, bool pad = true) {
    if (pad)
      while (header.size() % 8 != 0) header += ' ';
    return length_prefix(header.size()) + header + data;
  }
  std::string write_file(const std::string& name, const std::string& header, const std::string& data,
                         bool pad = true) const {
    const std::string p = path(name);
    write_bytes(p, file_bytes(header, data, pad));
    return p;
  }

  template <typename T>
  static std::string raw(const std::vector<T>& values) {
    std::string bytes(values.size() * sizeof(T), '\0');
    std::memcpy(bytes.data(), values.data(), bytes.size());
    return bytes;
  }
  static std::uint16_t f16_bits(float x) { return torch::tensor({x}).to(torch::kFloat16).view(torch::kInt16).item<std::int16_t>(); }
  static std::uint16_t bf16_bits(float x) { return torch::tensor({x}).to(torch::kBFloat16).view(torch::kInt16).item<std::int16_t>(); }

  // Three tensors of the supported dtypes plus metadata.
  std::string write_valid(const std::string& name) const {
    std::string data = raw(std::vector<float>{0, 1, 2, 3, 4, 5});                    // a: F32 [2,3] @ [0,24)
    data += raw(std::vector<std::uint16_t>{f16_bits(1.5f), f16_bits(-2.0f)});         // b: F16 [2]   @ [24,28)
    data += raw(std::vector<std::uint16_t>{bf16_bits(0.5f), bf16_bits(8.0f), bf16_bits(-1.0f),
                                           bf16_bits(3.0f)});                         // c: BF16 [2,2] @ [28,36)
    const std::string header =
        R"({"__metadata__":{"format":"pt","note":"hand-made"},)"
        R"("a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
        R"("b":{"dtype":"F16","shape":[2],"data_offsets":[24,28]},)"
        R"("c":{"dtype":"BF16","shape":[2,2],"data_offsets":[28,36]}})";
    return write_file(name, header, data);
  }

  fs::path dir_;
};

TEST_F(SafetensorsTest, ReadsDtypesShapesValuesAndMetadata) {
  const auto file = SafetensorsFile::open(write_valid("ok.safetensors"));
  ASSERT_EQ(file.tensors().size(), 3u);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.metadata().at("note"), "hand-made");
  EXPECT_TRUE(file.contains("a"));
  EXPECT_FALSE(file.contains("__metadata__"));

  const auto& a_info = file.info("a");
  EXPECT_EQ(a_info.dtype_name, "F32");
  EXPECT_EQ(a_info.dtype, torch::kFloat32);
  EXPECT_EQ(a_info.shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(a_info.data_begin, 0u);
  EXPECT_EQ(a_info.data_end, 24u);

  const auto a = file.view("a");
  EXPECT_EQ(a.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(a.equal(torch::arange(6, torch::kFloat32).reshape({2, 3})));

  const auto b = file.view("b");
  EXPECT_EQ(b.scalar_type(), torch::kFloat16);
  EXPECT_TRUE(b.to(torch::kFloat32).equal(torch::tensor({1.5f, -2.0f})));

  const auto c = file.view("c");
  EXPECT_EQ(c.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(c.to(torch::kFloat32).equal(torch::tensor({0.5f, 8.0f, -1.0f, 3.0f}).reshape({2, 2})));

  EXPECT_ANCHORS_ERROR(file.view("missing"), file.path(), "missing");
  EXPECT_ANCHORS_ERROR(file.info("missing"), file.path(), "missing");
}

TEST_F(SafetensorsTest, ViewsAreZeroCopyAndOutliveTheFileObject) {
  torch::Tensor a, a_again;
  {
    const auto file = SafetensorsFile::open(write_valid("ok.safetensors"));
    a = file.view("a");
    a_again = file.view("a");
  }  // the SafetensorsFile is gone; the views keep the mapping alive
  EXPECT_EQ(a.data_ptr(), a_again.data_ptr());
  EXPECT_TRUE(a.equal(torch::arange(6, torch::kFloat32).reshape({2, 3})));
  a_again = torch::Tensor();
  EXPECT_FLOAT_EQ(a.sum().item<float>(), 15.0f);
}

TEST_F(SafetensorsTest, ClonesOfViewsAreWritableCopies) {
  // Views are read-only memory; a clone is the documented way to modify one.
  const auto file = SafetensorsFile::open(write_valid("ok.safetensors"));
  const auto a = file.view("a");
  auto copy = a.clone();
  EXPECT_NE(copy.data_ptr(), a.data_ptr());
  copy.mul_(10);
  EXPECT_FLOAT_EQ(copy[1][2].item<float>(), 50.0f);
  EXPECT_FLOAT_EQ(file.view("a")[1][2].item<float>(), 5.0f);
}

TEST_F(SafetensorsTest, EmptyAndScalarTensors) {
  const std::string data = raw(std::vector<float>{7.0f});
  const auto file = SafetensorsFile::open(write_file(
      "edge.safetensors",
      R"({"empty":{"dtype":"F32","shape":[0,4],"data_offsets":[4,4]},"scalar":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})",
      data));
  EXPECT_EQ(file.view("empty").sizes(), (std::vector<std::int64_t>{0, 4}));
  const auto scalar = file.view("scalar");
  EXPECT_EQ(scalar.dim(), 0);
  EXPECT_FLOAT_EQ(scalar.item<float>(), 7.0f);
}

TEST_F(SafetensorsTest, OtherDtypesAreCataloguedButNotRead) {
  // HF checkpoints carry integer buffers (BERT's position_ids): the file opens
  // and its layout is validated, reading such a tensor is an error naming the dtype.
  std::string data = raw(std::vector<std::int64_t>{0, 1, 2});
  data += raw(std::vector<float>{1.0f});
  const std::string p = write_file(
      "mixed.safetensors",
      R"({"ids":{"dtype":"I64","shape":[1,3],"data_offsets":[0,24]},"w":{"dtype":"F32","shape":[1],"data_offsets":[24,28]}})",
      data);
  const auto file = SafetensorsFile::open(p);
  EXPECT_EQ(file.info("ids").dtype_name, "I64");
  EXPECT_EQ(file.info("ids").dtype, torch::kInt64);
  EXPECT_FALSE(file.info("ids").has_supported_dtype());
  EXPECT_TRUE(file.info("w").has_supported_dtype());
  EXPECT_ANCHORS_ERROR(file.view("ids"), p, "\"ids\"", "I64");
  EXPECT_FLOAT_EQ(file.view("w").item<float>(), 1.0f);

  for (const std::string dtype : {"F64", "U8", "F8_E4M3", "BOOL"}) {
    const std::string size = dtype == "F64" ? "8" : "1";
    const std::string q = write_file(dtype + ".safetensors",
                                     R"({"x":{"dtype":")" + dtype + R"(","shape":[1],"data_offsets":[0,)" + size + "]}}",
                                     std::string(8, '\0'));
    EXPECT_ANCHORS_ERROR(SafetensorsFile::open(q).view("x"), q, dtype);
  }
}

TEST_F(SafetensorsTest, MisalignedDataIsCopiedNotViewed) {
  // An unpadded 3-byte-misaligned header: the reference writer never does this.
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string h = header;
  while ((8 + h.size()) % 4 != 3) h += ' ';
  const std::string p = write_file("misaligned.safetensors", h, raw(std::vector<float>{2.5f, -1.0f}), false);
  const auto a = SafetensorsFile::open(p).view("a");
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a.data_ptr()) % 4, 0u);
  EXPECT_TRUE(a.equal(torch::tensor({2.5f, -1.0f})));
}

// ---------------------------------------------------------------------------
// Corrupt files: each an anchors::Error naming the file, never a crash.
// ---------------------------------------------------------------------------

TEST_F(SafetensorsTest, TruncatedOrEmptyFile) {
  const std::string empty = path("empty.safetensors");
  write_bytes(empty, "");
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(empty), empty, "truncated");
  const std::string tiny = path("tiny.safetensors");
  write_bytes(tiny, "\x10\x00\x00");
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(tiny), tiny, "truncated");

  // A valid file cut short inside the data section.
  const std::string full = file_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
                                      raw(std::vector<float>{1, 2, 3, 4}));
  const std::string cut = path("cut.safetensors");
  write_bytes(cut, full.substr(0, full.size() - 5));
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(cut), cut, "\"a\"", "past the end");
}

TEST_F(SafetensorsTest, HeaderLengthPastEndOrHuge) {
  const std::string past = path("past.safetensors");
  write_bytes(past, length_prefix(64) + R"({"a":1})");
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(past), past, "header length 64", "past the end");

  const std::string huge = path("huge.safetensors");
  write_bytes(huge, length_prefix(std::uint64_t{1} << 62) + "{}");
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(huge), huge, "limit");

  const std::string max = path("max.safetensors");
  write_bytes(max, length_prefix(~std::uint64_t{0}) + "{}");
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(max), max, "limit");
}

TEST_F(SafetensorsTest, HeaderNotJsonOrNotAnObject) {
  const std::string garbage = write_file("garbage.safetensors", "{\"a\": {\"dtype\": \"F32\", oops", "");
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(garbage), garbage, "not valid JSON");
  const std::string binary = write_file("binary.safetensors", std::string("\xff\xfe\x00\x01\x02", 5), "");
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(binary), binary, "not valid JSON");
  const std::string array = write_file("array.safetensors", "[1, 2, 3]", "");
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(array), array, "not an object");
  const std::string deep = write_file("deep.safetensors", std::string(5000, '[') + std::string(5000, ']'), "");
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(deep), deep, "nests deeper");
  const std::string trailing = write_file("trailing.safetensors", "{} {}", "");
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(trailing), trailing, "not valid JSON");
}

TEST_F(SafetensorsTest, OverlappingOffsets) {
  const std::string p = write_file(
      "overlap.safetensors",
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
      std::string(12, '\0'));
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(p), p, "overlap", "\"a\"", "\"b\"");
  const std::string same = write_file(
      "same.safetensors",
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}})",
      std::string(8, '\0'));
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(same), same, "overlap");
}

TEST_F(SafetensorsTest, OffsetsPastTheEndOrReversed) {
  const std::string past = write_file("past.safetensors",
                                      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", std::string(8, '\0'));
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(past), past, "\"a\"", "past the end");
  const std::string reversed = write_file(
      "reversed.safetensors", R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", std::string(8, '\0'));
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(reversed), reversed, "\"a\"", "[8, 0]");
  const std::string huge = write_file(
      "huge_offsets.safetensors",
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551608,18446744073709551615]}})",
      std::string(8, '\0'));
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(huge), huge, "\"a\"");
}

TEST_F(SafetensorsTest, SizeMismatch) {
  const std::string p = write_file("size.safetensors", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                                   std::string(12, '\0'));
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(p), p, "\"a\"", "span 8 bytes", "needs 12");
  const std::string f16 = write_file("size16.safetensors", R"({"a":{"dtype":"F16","shape":[3],"data_offsets":[0,12]}})",
                                     std::string(12, '\0'));
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(f16), f16, "needs 6");
  const std::string overflow = write_file(
      "overflow.safetensors",
      R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", std::string(8, '\0'));
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(overflow), overflow, "\"a\"", "overflows");
}

TEST_F(SafetensorsTest, BadDtype) {
  const std::string p = write_file("dtype.safetensors", R"({"a":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,8]}})",
                                   std::string(8, '\0'));
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(p), p, "\"a\"", "Q4_K");
  const std::string not_string = write_file(
      "dtype_int.safetensors", R"({"a":{"dtype":32,"shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0'));
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(not_string), not_string, "dtype");
  const std::string missing =
      write_file("dtype_missing.safetensors", R"({"a":{"shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0'));
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(missing), missing, "dtype");
}

TEST_F(SafetensorsTest, BadShapeOrOffsetTypes) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"a":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", "shape"},
      {R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", "shape"},
      {R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", "shape"},
      {R"({"a":{"dtype":"F32","shape":[[2]],"data_offsets":[0,8]}})", "shape"},
      {R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", "shape"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", "data_offsets"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,16]}})", "data_offsets"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":["0","8"]}})", "data_offsets"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", "data_offsets"},
      {R"({"a":{"dtype":"F32","shape":[2]}})", "data_offsets"},
      {R"({"a":[1,2]})", "not an object"},
      {R"({"__metadata__":{"format":1}})", "__metadata__"},
      {R"({"__metadata__":"pt"})", "__metadata__"},
  };
  int k = 0;
  for (const auto& [header, needle] : cases) {
    const std::string p = write_file("types" + std::to_string(k++) + ".safetensors", header, std::string(8, '\0'));
    EXPECT_ANCHORS_ERROR(SafetensorsFile::open(p), p, needle);
  }
}

TEST_F(SafetensorsTest, EveryTruncationAndByteFlipIsAnErrorOrAValidFile) {
  // Cheap fuzzing of the header parser: no input may crash it (run this under
  // AddressSanitizer, see docs/models.md).
  const std::string valid = path("valid.safetensors");
  write_valid("valid.safetensors");
  std::ifstream in(valid, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string p = path("mutant.safetensors");
  int opened = 0, rejected = 0;
  const auto attempt = [&](const std::string& content) {
    write_bytes(p, content);
    try {
      const auto file = SafetensorsFile::open(p);
      for (const auto& t : file.tensors())
        if (t.has_supported_dtype()) (void)file.view(t.name).to(torch::kFloat32).sum().item<float>();
      ++opened;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
      ++rejected;
    }
  };
  for (std::size_t n = 0; n < bytes.size(); ++n) attempt(bytes.substr(0, n));
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 1000; ++trial) {
    std::string mutant = bytes;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int f = 0; f < flips; ++f) mutant[rng() % mutant.size()] = static_cast<char>(rng() & 0xff);
    attempt(mutant);
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(opened, 0);  // flips inside the data section leave a valid file
}

// ---------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------

TEST_F(SafetensorsTest, CheckpointFromFolderOrFile) {
  write_valid("model.safetensors");
  const auto from_dir = Checkpoint::open(dir_.string());
  EXPECT_EQ(from_dir.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(from_dir.contains("b"));
  EXPECT_EQ(from_dir.info("b").dtype, torch::kFloat16);

  const auto from_file = Checkpoint::open(path("model.safetensors"));
  EXPECT_TRUE(from_file.view("a").equal(from_dir.view("a")));
  EXPECT_ANCHORS_ERROR(from_dir.view("nope"), dir_.string(), "nope");
}

TEST_F(SafetensorsTest, CheckpointLoadConvertsAndChecksShape) {
  write_valid("model.safetensors");
  const auto checkpoint = Checkpoint::open(dir_.string());
  const auto b = checkpoint.load("b", torch::kFloat32, torch::kCPU, {2});
  EXPECT_EQ(b.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(b.equal(torch::tensor({1.5f, -2.0f})));
  // Matching dtype and device: the view itself, no copy.
  const auto a = checkpoint.load("a", torch::kFloat32, torch::kCPU, {2, 3});
  EXPECT_EQ(a.data_ptr(), checkpoint.view("a").data_ptr());
  const auto c = checkpoint.load("c", torch::kFloat16, torch::kCPU);
  EXPECT_TRUE(c.to(torch::kFloat32).equal(torch::tensor({0.5f, 8.0f, -1.0f, 3.0f}).reshape({2, 2})));
  EXPECT_ANCHORS_ERROR(checkpoint.load("a", torch::kFloat32, torch::kCPU, {3, 2}), "model.safetensors", "\"a\"",
                       "[2, 3]", "[3, 2]");
}

TEST_F(SafetensorsTest, ShardedCheckpoint) {
  write_file("model-00001-of-00002.safetensors",
             R"({"w1":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w2":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
             raw(std::vector<float>{1, 2, 3}));
  write_file("model-00002-of-00002.safetensors", R"({"w3":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
             raw(std::vector<float>{4, 5}));
  write_bytes(path("model.safetensors.index.json"),
              R"({"metadata":{"total_size":20},"weight_map":{"w1":"model-00001-of-00002.safetensors",)"
              R"("w2":"model-00001-of-00002.safetensors","w3":"model-00002-of-00002.safetensors"}})");
  const auto checkpoint = Checkpoint::open(dir_.string());
  EXPECT_EQ(checkpoint.names(), (std::vector<std::string>{"w1", "w2", "w3"}));
  EXPECT_TRUE(checkpoint.view("w1").equal(torch::tensor({1.0f, 2.0f})));
  EXPECT_TRUE(checkpoint.view("w2").equal(torch::tensor({3.0f})));
  EXPECT_TRUE(checkpoint.view("w3").equal(torch::tensor({4.0f, 5.0f})));
  EXPECT_NE(checkpoint.file_of("w3").path().find("00002"), std::string::npos);
  // The index file may be named directly.
  EXPECT_EQ(Checkpoint::open(path("model.safetensors.index.json")).names().size(), 3u);
}

TEST_F(SafetensorsTest, ShardErrors) {
  write_file("shard1.safetensors", R"({"w1":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
             raw(std::vector<float>{1, 2}));
  const std::string index = path("model.safetensors.index.json");

  write_bytes(index, R"({"weight_map":{"w1":"shard1.safetensors","w2":"shard2.safetensors"}})");
  EXPECT_ANCHORS_ERROR(Checkpoint::open(dir_.string()), index, "shard2.safetensors", "does not exist");

  write_bytes(index, R"({"weight_map":{"w1":"shard1.safetensors","w9":"shard1.safetensors"}})");
  EXPECT_ANCHORS_ERROR(Checkpoint::open(dir_.string()), index, "w9", "shard1.safetensors");

  write_bytes(index, R"({"weight_map": {"w1": "shard1.safe)");
  EXPECT_ANCHORS_ERROR(Checkpoint::open(dir_.string()), index, "not valid JSON");

  write_bytes(index, R"({"metadata":{}})");
  EXPECT_ANCHORS_ERROR(Checkpoint::open(dir_.string()), index, "weight_map");

  write_bytes(index, R"({"weight_map":{"w1":7}})");
  EXPECT_ANCHORS_ERROR(Checkpoint::open(dir_.string()), index, "w1");

  write_bytes(index, R"({"weight_map":{"w1":"../shard1.safetensors"}})");
  EXPECT_ANCHORS_ERROR(Checkpoint::open(dir_.string()), index, "../shard1.safetensors");

  write_bytes(index, "[]");
  EXPECT_ANCHORS_ERROR(Checkpoint::open(dir_.string()), index, "not a JSON object");

  // A corrupt shard is reported under the shard's own name.
  write_bytes(path("shard1.safetensors"), "\x01\x02");
  write_bytes(index, R"({"weight_map":{"w1":"shard1.safetensors"}})");
  EXPECT_ANCHORS_ERROR(Checkpoint::open(dir_.string()), path("shard1.safetensors"), "truncated");
}

TEST_F(SafetensorsTest, MissingCheckpoint) {
  EXPECT_ANCHORS_ERROR(Checkpoint::open(dir_.string()), dir_.string(), "model.safetensors");
  EXPECT_ANCHORS_ERROR(Checkpoint::open(path("nowhere")), path("nowhere"), "no such");
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open(path("nowhere.safetensors")), path("nowhere.safetensors"), "cannot open");
}

}  // namespace
