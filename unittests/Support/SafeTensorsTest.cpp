//===- SafeTensorsTest.cpp - safetensors reader/writer and float tests ----===//
// Checks the reader against hand-encoded files (not just against our writer),
// every rejection path, atomic writes, and bit-exact f16/bf16 conversions.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Support/SafeTensors.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/bit.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <cmath>
#include <cstring>
#include <cstring>
#include <limits>

using namespace llvm;
using namespace quant_mlir::safetensors;

namespace {

constexpr DType kAllDTypes[] = {DType::F64, DType::F32, DType::F16, DType::BF16,
                                DType::I64, DType::I32, DType::I16, DType::I8,
                                DType::U8,  DType::BOOL};

std::vector<uint8_t> pattern(size_t size, unsigned seed) {
  std::vector<uint8_t> out(size);
  for (size_t i = 0; i < size; ++i)
    out[i] = uint8_t(i * 37 + seed * 101 + 7);
  return out;
}

template <typename T> std::string leBytes(std::initializer_list<T> values) {
  std::string out;
  for (T v : values) {
    char buf[sizeof(T)];
    std::memcpy(buf, &v, sizeof(T)); // host is little-endian (library asserts)
    out.append(buf, sizeof(T));
  }
  return out;
}

// An encoder independent of Writer: length prefix, header text, data.
std::string encode(StringRef header, StringRef data = "") {
  char size[8];
  support::endian::write64le(size, header.size());
  return std::string(size, 8) + header.str() + data.str();
}

::testing::AssertionResult contains(StringRef haystack, StringRef needle) {
  if (haystack.contains(needle))
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "\"" << haystack.str() << "\" lacks \"" << needle.str() << "\"";
}

class SafeTensorsTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_FALSE(sys::fs::createUniqueDirectory("safetensors-test", dir));
  }
  void TearDown() override { sys::fs::remove_directories(dir); }

  std::string file(StringRef name) const {
    SmallString<128> path(dir);
    sys::path::append(path, name);
    return std::string(path);
  }
  void writeFile(StringRef path, StringRef contents) {
    std::error_code ec;
    raw_fd_ostream os(path, ec);
    ASSERT_FALSE(ec);
    os << contents;
  }
  std::string readFile(StringRef path) {
    auto buffer = MemoryBuffer::getFile(path);
    return buffer ? (*buffer)->getBuffer().str() : "<unreadable>";
  }
  std::vector<std::string> listDir() {
    std::vector<std::string> names;
    std::error_code ec;
    for (sys::fs::directory_iterator it(dir, ec), end; it != end && !ec;
         it.increment(ec))
      names.push_back(sys::path::filename(it->path()).str());
    llvm::sort(names);
    return names;
  }
  // Writes `contents` and returns the error open() must report.
  std::string openError(StringRef contents) {
    std::string path = file("bad.safetensors");
    writeFile(path, contents);
    Expected<std::unique_ptr<Reader>> reader = Reader::open(path);
    if (reader)
      return "<opened successfully>";
    std::string msg = toString(reader.takeError());
    EXPECT_TRUE(contains(msg, path));
    return msg;
  }

  SmallString<128> dir;
};

TEST(DTypeTest, NamesSizesAndParsing) {
  for (DType dtype : kAllDTypes)
    EXPECT_EQ(parseDType(dtypeName(dtype)), dtype);
  EXPECT_EQ(dtypeName(DType::BF16), "BF16");
  EXPECT_EQ(dtypeName(DType::BOOL), "BOOL");
  EXPECT_EQ(dtypeSize(DType::F64), 8u);
  EXPECT_EQ(dtypeSize(DType::BF16), 2u);
  EXPECT_EQ(dtypeSize(DType::BOOL), 1u);
  EXPECT_EQ(parseDType("F8_E9M9"), std::nullopt);
  EXPECT_EQ(parseDType("f32"), std::nullopt);
}

TEST_F(SafeTensorsTest, RoundTripEveryDType) {
  Writer writer;
  std::map<std::string, std::vector<uint8_t>> expected;
  unsigned seed = 0;
  for (DType dtype : kAllDTypes) {
    std::string name = ("t_" + dtypeName(dtype)).str();
    expected[name] = pattern(2 * 3 * dtypeSize(dtype), ++seed);
    // Non-owning add: `expected` outlives write().
    ASSERT_FALSE(errorToBool(writer.add(name, dtype, {2, 3}, expected[name])));
  }
  std::string scalarBytes = leBytes<float>({3.25f});
  expected["scalar"].assign(scalarBytes.begin(), scalarBytes.end());
  ASSERT_FALSE(errorToBool(
      writer.addOwned("scalar", DType::F32, {}, expected["scalar"])));
  expected["empty"] = {};
  ASSERT_FALSE(errorToBool(writer.addOwned("empty", DType::I32, {0, 5}, {})));
  expected["deep"] = pattern(2 * 1 * 3 * 2 * 2, 99);
  ASSERT_FALSE(errorToBool(
      writer.addOwned("deep", DType::F16, {2, 1, 3, 2}, expected["deep"])));
  writer.setMetadata("format", "pt");
  writer.setMetadata("note", "quote \" backslash \\ unicode \xc3\xa9");

  std::string path = file("all.safetensors");
  ASSERT_FALSE(errorToBool(writer.write(path)));
  Expected<std::unique_ptr<Reader>> reader = Reader::open(path);
  ASSERT_TRUE(bool(reader)) << toString(reader.takeError());
  Reader &r = **reader;
  EXPECT_EQ(r.path(), path);

  std::vector<std::string> names;
  for (const TensorInfo &info : r.tensors())
    names.push_back(info.name);
  std::vector<std::string> expectedNames;
  for (const auto &entry : expected)
    expectedNames.push_back(entry.first); // std::map iterates sorted
  EXPECT_EQ(names, expectedNames);

  for (DType dtype : kAllDTypes) {
    const TensorInfo *info = r.lookup(("t_" + dtypeName(dtype)).str());
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->dtype, dtype);
    EXPECT_EQ(info->shape, (SmallVector<int64_t>{2, 3}));
    EXPECT_EQ(info->numElements(), 6);
    EXPECT_EQ(r.bytes(*info), ArrayRef<uint8_t>(expected[info->name]));
  }
  const TensorInfo *scalar = r.lookup("scalar");
  ASSERT_NE(scalar, nullptr);
  EXPECT_TRUE(scalar->shape.empty());
  EXPECT_EQ(scalar->numElements(), 1);
  EXPECT_EQ(r.as<float>(*scalar), ArrayRef<float>({3.25f}));
  const TensorInfo *empty = r.lookup("empty");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->numElements(), 0);
  EXPECT_EQ(empty->shape, (SmallVector<int64_t>{0, 5}));
  EXPECT_TRUE(r.bytes(*empty).empty());
  TensorInfo deepCopy = *r.lookup("deep"); // bytes() accepts copies too
  EXPECT_EQ(deepCopy.shape, (SmallVector<int64_t>{2, 1, 3, 2}));
  EXPECT_EQ(r.bytes(deepCopy), ArrayRef<uint8_t>(expected["deep"]));
  EXPECT_EQ(r.lookup("missing"), nullptr);
  EXPECT_EQ(r.lookup("t_F3"), nullptr);

  std::map<std::string, std::string> meta = {
      {"format", "pt"}, {"note", "quote \" backslash \\ unicode \xc3\xa9"}};
  EXPECT_EQ(r.metadata(), meta);
}

TEST_F(SafeTensorsTest, OutputIsDeterministicAndPadded) {
  std::vector<uint8_t> a = pattern(12, 1), b = pattern(6, 2), c = pattern(3, 3);
  struct Spec {
    StringRef name;
    DType dtype;
    const std::vector<uint8_t> *bytes;
  };
  const Spec specs[] = {
      {"a", DType::F32, &a}, {"b", DType::F16, &b}, {"c", DType::U8, &c}};
  auto fill = [&](Writer &w, ArrayRef<unsigned> order) {
    for (unsigned i : order) {
      ASSERT_FALSE(errorToBool(
          w.add(specs[i].name, specs[i].dtype, {3}, *specs[i].bytes)));
      w.setMetadata(specs[i].name, "x");
    }
  };
  Writer first, second;
  fill(first, {0, 1, 2});
  fill(second, {2, 0, 1});
  ASSERT_FALSE(errorToBool(first.write(file("1.st"))));
  ASSERT_FALSE(errorToBool(first.write(file("2.st"))));
  ASSERT_FALSE(errorToBool(second.write(file("3.st"))));
  std::string bytes = readFile(file("1.st"));
  EXPECT_EQ(bytes, readFile(file("2.st")));
  EXPECT_EQ(bytes, readFile(file("3.st")));

  // Header length is a multiple of 8 and the data follows contiguously.
  ASSERT_GE(bytes.size(), 8u);
  uint64_t headerSize = support::endian::read64le(bytes.data());
  EXPECT_EQ(headerSize % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + headerSize + 12 + 6 + 3);
  Expected<std::unique_ptr<Reader>> reader = Reader::open(file("1.st"));
  ASSERT_TRUE(bool(reader)) << toString(reader.takeError());
  ArrayRef<TensorInfo> tensors = (*reader)->tensors();
  ASSERT_EQ(tensors.size(), 3u);
  EXPECT_EQ(tensors[0].begin, 0u);
  EXPECT_EQ(tensors[1].begin, tensors[0].end);
  EXPECT_EQ(tensors[2].begin, tensors[1].end);
}

TEST_F(SafeTensorsTest, ReadsHandEncodedFile) {
  // Keys out of order, no padding, an odd-length F16 before an F32 (so the
  // F32 is misaligned in the file), trailing header whitespace, extra fields.
  std::string header =
      R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[6,14]},)"
      R"("h":{"dtype":"F16","shape":[3],"data_offsets":[0,6],"x":1},)"
      R"("__metadata__":{"format":"pt"},)"
      R"("i":{"dtype":"I16","shape":[1,2],"data_offsets":[14,18]}}  )";
  std::string data = leBytes<uint16_t>({0x3c00, 0xc000, 0x7bff}) +
                     leBytes<float>({1.5f, -2.0f}) +
                     leBytes<int16_t>({-7, 300});
  std::string path = file("hand.safetensors");
  writeFile(path, encode(header, data));

  Expected<std::unique_ptr<Reader>> reader = Reader::open(path);
  ASSERT_TRUE(bool(reader)) << toString(reader.takeError());
  Reader &r = **reader;
  ASSERT_EQ(r.tensors().size(), 3u);
  EXPECT_EQ(r.tensors()[0].name, "h");
  EXPECT_EQ(r.tensors()[1].name, "i");
  EXPECT_EQ(r.tensors()[2].name, "w");
  EXPECT_EQ(r.metadata().at("format"), "pt");

  ArrayRef<uint16_t> h = r.as<uint16_t>(*r.lookup("h"));
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(halfToFloat(h[0]), 1.0f);
  EXPECT_EQ(halfToFloat(h[1]), -2.0f);
  EXPECT_EQ(halfToFloat(h[2]), 65504.0f);
  ArrayRef<float> w = r.as<float>(*r.lookup("w"));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w.data()) % alignof(float), 0u);
  EXPECT_EQ(w, ArrayRef<float>({1.5f, -2.0f}));
  EXPECT_EQ(r.as<int16_t>(*r.lookup("i")), ArrayRef<int16_t>({-7, 300}));
  EXPECT_EQ(r.lookup("i")->shape, (SmallVector<int64_t>{1, 2}));
}

TEST_F(SafeTensorsTest, RejectsBadFiles) {
  auto entry = [](StringRef dtype, StringRef shape, StringRef offsets) {
    return (R"({"w":{"dtype":")" + dtype + R"(","shape":)" + shape +
            R"(,"data_offsets":)" + offsets + "}}")
        .str();
  };
  std::string eight(8, '\0');

  EXPECT_TRUE(contains(openError(""), "too short"));
  EXPECT_TRUE(contains(openError("\x10\0\0\0"), "too short"));
  EXPECT_TRUE(contains(openError(encode("{}").substr(0, 8) + "{"),
                       "runs past the end of the file"));
  EXPECT_TRUE(
      contains(openError(std::string(8, '\xff') + "{}"), "implausibly large"));
  EXPECT_TRUE(contains(openError(encode("{not json")), "not valid JSON"));
  EXPECT_TRUE(contains(openError(encode("[1,2]")), "not a JSON object"));
  EXPECT_TRUE(contains(openError(encode(R"({"w":3})")),
                       "tensor 'w': header entry is not a JSON object"));
  EXPECT_TRUE(
      contains(openError(encode(R"({"w":{"shape":[],"data_offsets":[0,0]}})")),
               "tensor 'w': missing or non-string \"dtype\""));
  EXPECT_TRUE(contains(
      openError(encode(R"({"w":{"dtype":"F32","data_offsets":[0,0]}})")),
      "missing or non-array \"shape\""));
  EXPECT_TRUE(contains(openError(encode(R"({"w":{"dtype":"F32","shape":[]}})")),
                       "\"data_offsets\" must be [begin, end]"));
  EXPECT_TRUE(contains(openError(encode(entry("F32", "[2]", "[-1,8]"), eight)),
                       "non-negative"));
  EXPECT_TRUE(contains(openError(encode(entry("F32", "[2.5]", "[0,8]"), eight)),
                       "only integers"));
  std::string unknown =
      openError(encode(entry("F8_E9M9", "[2]", "[0,2]"), eight));
  EXPECT_TRUE(contains(unknown, "unknown dtype 'F8_E9M9'"));
  EXPECT_TRUE(contains(unknown, "tensor 'w'"));
  EXPECT_TRUE(
      contains(openError(encode(
                   R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                   R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                   std::string(12, '\0'))),
               "tensor 'b' (data_offsets [4, 12]) overlaps tensor 'a'"));
  EXPECT_TRUE(
      contains(openError(encode(entry("F32", "[25]", "[0,100]"), eight)),
               "data_offsets end 100 is past the end of the data "
               "section (8 bytes"));
  EXPECT_TRUE(contains(openError(encode(entry("F32", "[2]", "[8,0]"), eight)),
                       "data_offsets begin 8 > end 0"));
  EXPECT_TRUE(contains(openError(encode(entry("F32", "[3]", "[0,8]"), eight)),
                       "span 8 bytes but shape [3] of F32 needs 12"));
  EXPECT_TRUE(contains(openError(encode(entry("F32", "[-1]", "[0,0]"), eight)),
                       "tensor 'w': negative dimension -1"));
  EXPECT_TRUE(
      contains(openError(encode(
                   entry("F32", "[4611686018427387904,4]", "[0,8]"), eight)),
               "overflows"));
  EXPECT_TRUE(contains(openError(encode(R"({"__metadata__":{"k":1}})")),
                       "\"__metadata__\" value for key 'k' is not a string"));
  EXPECT_TRUE(contains(openError(encode(R"({"__metadata__":[]})")),
                       "\"__metadata__\" is not a JSON object"));
  EXPECT_TRUE(
      contains(openError(encode(
                   R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                   R"("w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                   "ab")),
               "duplicate tensor names"));

  // A valid file cut short loses the end of its data section.
  Writer writer;
  ASSERT_FALSE(
      errorToBool(writer.addOwned("w", DType::F32, {4}, pattern(16, 0))));
  ASSERT_FALSE(errorToBool(writer.write(file("whole.st"))));
  std::string whole = readFile(file("whole.st"));
  EXPECT_TRUE(contains(openError(whole.substr(0, whole.size() - 3)),
                       "past the end of the data section"));

  Expected<std::unique_ptr<Reader>> missing = Reader::open(file("nope.st"));
  ASSERT_FALSE(bool(missing));
  EXPECT_TRUE(contains(toString(missing.takeError()), "nope.st: cannot open"));
}

TEST(WriterTest, RejectsBadTensors) {
  Writer writer;
  std::vector<uint8_t> four(4);
  ASSERT_FALSE(errorToBool(writer.add("x", DType::F32, {1}, four)));
  auto message = [](Error err) {
    return err ? toString(std::move(err)) : "<success>";
  };
  EXPECT_TRUE(contains(message(writer.add("x", DType::F32, {1}, four)),
                       "'x': duplicate tensor name"));
  EXPECT_TRUE(
      contains(message(writer.add("", DType::F32, {1}, four)), "empty name"));
  EXPECT_TRUE(contains(message(writer.add("y", DType::F32, {2}, four)),
                       "got 4 bytes but shape [2] of F32 needs 8"));
  EXPECT_TRUE(contains(message(writer.add("y", DType::F32, {-1, 2}, {})),
                       "negative dimension -1"));
  EXPECT_TRUE(contains(
      message(writer.add("__metadata__", DType::U8, {4}, four)), "reserved"));
  EXPECT_TRUE(
      contains(message(writer.addOwned("\xff", DType::U8, {4}, {})), "UTF-8"));
  EXPECT_EQ(writer.size(), 1u);
}

TEST_F(SafeTensorsTest, AtomicWrite) {
  Writer writer;
  ASSERT_FALSE(errorToBool(writer.addOwned("w", DType::U8, {3}, {1, 2, 3})));

  // Missing directory: an error, and nothing is created.
  std::string nested = file("missing/out.st");
  Error err = writer.write(nested);
  ASSERT_TRUE(bool(err));
  EXPECT_TRUE(contains(toString(std::move(err)), nested));
  EXPECT_FALSE(sys::fs::exists(file("missing")));
  EXPECT_TRUE(listDir().empty());

  // Existing file: replaced, and no temp file left behind.
  std::string target = file("out.st");
  writeFile(target, "old contents");
  ASSERT_FALSE(errorToBool(writer.write(target)));
  Expected<std::unique_ptr<Reader>> reader = Reader::open(target);
  ASSERT_TRUE(bool(reader)) << toString(reader.takeError());
  EXPECT_EQ((*reader)->bytes((*reader)->tensors()[0]),
            ArrayRef<uint8_t>({1, 2, 3}));
  EXPECT_EQ(listDir(), std::vector<std::string>{"out.st"});

  // Rename onto a non-empty directory fails after the temp file was written:
  // the temp file must be gone and the directory untouched.
  std::string blocker = file("blocker");
  ASSERT_FALSE(sys::fs::create_directory(blocker));
  writeFile(blocker + "/keep", "x");
  err = writer.write(blocker);
  ASSERT_TRUE(bool(err));
  EXPECT_TRUE(contains(toString(std::move(err)), "cannot rename"));
  EXPECT_EQ(listDir(), (std::vector<std::string>{"blocker", "out.st"}));
  EXPECT_EQ(readFile(blocker + "/keep"), "x");
}

TEST(FloatTest, HalfKnownBitPatterns) {
  auto bits = [](uint32_t b) { return llvm::bit_cast<float>(b); };
  float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(floatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(floatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(floatToHalf(0.0f), 0x0000);
  EXPECT_EQ(floatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(floatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(floatToHalf(65519.99f), 0x7bff);
  EXPECT_EQ(floatToHalf(65520.0f), 0x7c00); // tie, 0x7bff is odd: up to inf
  EXPECT_EQ(floatToHalf(1e10f), 0x7c00);
  EXPECT_EQ(floatToHalf(inf), 0x7c00);
  EXPECT_EQ(floatToHalf(-inf), 0xfc00);
  EXPECT_EQ(floatToHalf(std::numeric_limits<float>::quiet_NaN()), 0x7e00);
  EXPECT_EQ(floatToHalf(bits(0xff800001)), 0xfe00); // payload lost: stay NaN
  EXPECT_EQ(floatToHalf(0x1p-24f), 0x0001);         // smallest subnormal
  EXPECT_EQ(floatToHalf(-0x1p-24f), 0x8001);
  EXPECT_EQ(floatToHalf(0x1p-25f), 0x0000); // tie between 0 and 1: to even
  EXPECT_EQ(floatToHalf(bits(0x33000001)), 0x0001);
  EXPECT_EQ(floatToHalf(1.5f * 0x1p-24f), 0x0002);    // tie: 1 is odd, go up
  EXPECT_EQ(floatToHalf(2.5f * 0x1p-24f), 0x0002);    // tie: 2 is even, stay
  EXPECT_EQ(floatToHalf(1023.5f * 0x1p-24f), 0x0400); // into the normals
  EXPECT_EQ(floatToHalf(0x1p-14f), 0x0400);
  EXPECT_EQ(floatToHalf(1.0f + 0x1p-11f), 0x3c00);     // tie to even
  EXPECT_EQ(floatToHalf(1.0f + 3 * 0x1p-11f), 0x3c02); // tie to even
  EXPECT_EQ(floatToHalf(bits(0x3f801001)), 0x3c01);    // above the tie
  EXPECT_EQ(floatToHalf(2.0f - 0x1p-12f), 0x4000);     // carry into exp
  EXPECT_EQ(floatToHalf(bits(0x00000001)), 0x0000);    // f32 subnormal

  EXPECT_EQ(halfToFloat(0x3c00), 1.0f);
  EXPECT_EQ(halfToFloat(0xc000), -2.0f);
  EXPECT_EQ(halfToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(halfToFloat(0x0001), 0x1p-24f);
  EXPECT_EQ(halfToFloat(0x03ff), 1023 * 0x1p-24f);
  EXPECT_EQ(llvm::bit_cast<uint32_t>(halfToFloat(0x8000)), 0x80000000u);
  EXPECT_EQ(halfToFloat(0x7c00), inf);
  EXPECT_EQ(halfToFloat(0xfc00), -inf);
  EXPECT_TRUE(std::isnan(halfToFloat(0x7e00)));
  EXPECT_TRUE(std::isnan(halfToFloat(0x7c01)));
}

TEST(FloatTest, BF16KnownBitPatterns) {
  auto bits = [](uint32_t b) { return llvm::bit_cast<float>(b); };
  float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(floatToBF16(1.0f), 0x3f80);
  EXPECT_EQ(floatToBF16(-2.0f), 0xc000);
  EXPECT_EQ(floatToBF16(bits(0x3f808000)), 0x3f80); // tie to even
  EXPECT_EQ(floatToBF16(bits(0x3f818000)), 0x3f82); // tie to even
  EXPECT_EQ(floatToBF16(bits(0x3f808001)), 0x3f81);
  EXPECT_EQ(floatToBF16(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(floatToBF16(inf), 0x7f80);
  EXPECT_EQ(floatToBF16(-inf), 0xff80);
  EXPECT_EQ(floatToBF16(std::numeric_limits<float>::quiet_NaN()), 0x7fc0);
  EXPECT_EQ(floatToBF16(bits(0x7f800001)), 0x7fc0); // payload lost: stay NaN
  EXPECT_EQ(floatToBF16(bits(0x00008000)), 0x0000); // tie at the bottom
  EXPECT_EQ(floatToBF16(bits(0x00018000)), 0x0002);
  EXPECT_EQ(floatToBF16(-0.0f), 0x8000);
  EXPECT_EQ(bf16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(bf16ToFloat(0xc000), -2.0f);
  EXPECT_EQ(bf16ToFloat(0x0001), bits(0x00010000)); // smallest subnormal
  EXPECT_EQ(bf16ToFloat(0x7f80), inf);
  EXPECT_TRUE(std::isnan(bf16ToFloat(0x7fc1)));
}

TEST(FloatTest, AllSixteenBitPatternsRoundTrip) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    ASSERT_EQ(floatToHalf(halfToFloat(uint16_t(h))), h) << std::hex << h;
    ASSERT_EQ(floatToBF16(bf16ToFloat(uint16_t(h))), h) << std::hex << h;
  }
}

#ifdef __FLT16_MAX__
// The compiler's _Float16 (libgcc/compiler-rt soft-float, or F16C) is an
// independent oracle for rounding across the whole f32 range.
TEST(FloatTest, HalfMatchesCompilerFloat16) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    float ours = halfToFloat(uint16_t(h));
    float theirs = float(llvm::bit_cast<_Float16>(uint16_t(h)));
    if (std::isnan(theirs))
      ASSERT_TRUE(std::isnan(ours));
    else
      ASSERT_EQ(llvm::bit_cast<uint32_t>(ours),
                llvm::bit_cast<uint32_t>(theirs))
          << std::hex << h;
  }
  for (uint64_t x = 0; x <= 0xffffffffu; x += 4093) {
    float f = llvm::bit_cast<float>(uint32_t(x));
    if (std::isnan(f))
      continue;
    ASSERT_EQ(floatToHalf(f), llvm::bit_cast<uint16_t>(_Float16(f)))
        << std::hex << x;
  }
}
#endif

} // namespace

// addTransposed() stores [R, C] = transpose of the given [C, R] bytes, chunk
// by chunk; FileMapping sources are read from a real mmapped file whose
// pages the writer releases as it goes. The result must equal a brute-force
// transpose for every element size and for shapes that span several chunks.
TEST_F(SafeTensorsTest, TransposedAndMappedSourcesMatchBruteForce) {
  struct Case {
    DType dtype;
    int64_t rows, cols; // stored shape [rows, cols]
  };
  const Case cases[] = {{DType::F32, 1100, 1300}, // 5.7 MB: several chunks
                        {DType::F16, 3, 5},
                        {DType::I8, 257, 129},
                        {DType::F64, 64, 1}};
  for (const Case &c : cases) {
    size_t elem = dtypeSize(c.dtype);
    std::vector<uint8_t> src = pattern(c.rows * c.cols * elem, c.rows);
    std::string srcPath = file("src.bin");
    writeFile(srcPath, StringRef(reinterpret_cast<const char *>(src.data()),
                                 src.size()));
    auto mapped = MemoryBuffer::getFile(srcPath, /*IsText=*/false,
                                        /*RequiresNullTerminator=*/false);
    ASSERT_TRUE(bool(mapped));
    ArrayRef<uint8_t> mappedBytes(
        reinterpret_cast<const uint8_t *>((*mapped)->getBufferStart()),
        (*mapped)->getBufferSize());
    Writer::Source source =
        (*mapped)->getBufferKind() == MemoryBuffer::MemoryBuffer_MMap
            ? Writer::Source::FileMapping
            : Writer::Source::Memory;

    Writer w;
    ASSERT_FALSE(bool(w.addTransposed("t", c.dtype, {c.rows, c.cols}, src)));
    ASSERT_FALSE(bool(
        w.addTransposed("tm", c.dtype, {c.rows, c.cols}, mappedBytes, source)));
    ASSERT_FALSE(bool(w.add("m", c.dtype, {c.cols, c.rows}, mappedBytes, source)));
    std::string out = file("t.safetensors");
    ASSERT_FALSE(bool(w.write(out)));

    auto reader = Reader::open(out);
    ASSERT_TRUE(bool(reader)) << toString(reader.takeError());
    for (StringRef name : {"t", "tm"}) {
      const TensorInfo *info = (*reader)->lookup(name);
      ASSERT_TRUE(info);
      EXPECT_EQ(info->shape, (SmallVector<int64_t>{c.rows, c.cols}));
      ArrayRef<uint8_t> got = (*reader)->bytes(*info);
      bool same = true;
      for (int64_t r = 0; r < c.rows && same; ++r)
        for (int64_t col = 0; col < c.cols && same; ++col)
          same = std::memcmp(got.data() + (r * c.cols + col) * elem,
                             src.data() + (col * c.rows + r) * elem, elem) == 0;
      EXPECT_TRUE(same) << name.str() << " " << dtypeName(c.dtype).str();
    }
    ArrayRef<uint8_t> plain = (*reader)->bytes(*(*reader)->lookup("m"));
    EXPECT_TRUE(std::equal(plain.begin(), plain.end(), src.begin()));
    // The released source mapping still reads back the file's contents.
    EXPECT_TRUE(std::equal(mappedBytes.begin(), mappedBytes.end(), src.begin()));
  }
}

// prefault() reads a mapped archive's every page (the whole file) and
// changes nothing; a small archive is a heap copy (not mapped): 0 bytes.
TEST_F(SafeTensorsTest, PrefaultTouchesTheMappedFile) {
  std::vector<uint8_t> big = pattern(1 << 20, 7), small = pattern(16, 8);
  Writer writer;
  ASSERT_FALSE(errorToBool(writer.add("w", DType::F32, {1 << 18}, big)));
  ASSERT_FALSE(errorToBool(writer.write(file("big.safetensors"))));
  auto reader = Reader::open(file("big.safetensors"));
  ASSERT_TRUE(bool(reader)) << toString(reader.takeError());
  const TensorInfo *w = (*reader)->lookup("w");
  ASSERT_TRUE(w);
  ASSERT_TRUE((*reader)->isMapped(*w));
  uint64_t size = 0;
  ASSERT_FALSE(sys::fs::file_size(file("big.safetensors"), size));
  EXPECT_EQ((*reader)->prefault(), size);
  EXPECT_EQ((*reader)->bytes(*w), ArrayRef<uint8_t>(big));

  Writer tiny;
  ASSERT_FALSE(errorToBool(tiny.add("s", DType::F32, {4}, small)));
  ASSERT_FALSE(errorToBool(tiny.write(file("tiny.safetensors"))));
  auto copy = Reader::open(file("tiny.safetensors"));
  ASSERT_TRUE(bool(copy));
  // LLVM maps a file only from 4 pages up: this one is read into the heap.
  ASSERT_FALSE((*copy)->isMapped(*(*copy)->lookup("s")));
  EXPECT_EQ((*copy)->prefault(), 0u);
  EXPECT_EQ((*copy)->bytes(*(*copy)->lookup("s")), ArrayRef<uint8_t>(small));
}

// A sharded archive (index + shards) reads as one file holding every
// tensor; openArchive finds the index behind the archive's plain name; a
// missing, corrupt or inconsistent shard is an error naming it.
TEST_F(SafeTensorsTest, ShardedArchiveReadsAsOne) {
  std::vector<uint8_t> a = pattern(24, 1), b = pattern(12, 2), c = pattern(8, 3);
  Writer first, second;
  ASSERT_FALSE(errorToBool(first.add("x.hessian", DType::F64, {3}, a)));
  ASSERT_FALSE(errorToBool(first.add("z.rows", DType::F32, {3}, b)));
  ASSERT_FALSE(errorToBool(second.add("y.hessian", DType::F64, {1}, c)));
  ASSERT_FALSE(errorToBool(first.write(file("s-1.safetensors"))));
  ASSERT_FALSE(errorToBool(second.write(file("s-2.safetensors"))));
  ShardIndex index;
  index.metadata = {{"seed", "3"}};
  index.weightMap = {{"x.hessian", "s-1.safetensors"},
                     {"y.hessian", "s-2.safetensors"},
                     {"z.rows", "s-1.safetensors"}};
  index.totalSize = 44;
  std::string indexPath = file("stats.safetensors.index.json");
  ASSERT_FALSE(errorToBool(writeIndex(indexPath, index, /*durable=*/true)));
  // Written the same way twice: the index text is deterministic.
  std::string text = readFile(indexPath);
  ASSERT_FALSE(errorToBool(writeIndex(indexPath, index, false)));
  EXPECT_EQ(text, readFile(indexPath));
  EXPECT_TRUE(contains(text, "\"total_size\": 44"));

  auto parsed = readIndex(indexPath);
  ASSERT_TRUE(bool(parsed)) << toString(parsed.takeError());
  EXPECT_EQ(parsed->weightMap, index.weightMap);
  EXPECT_EQ(parsed->metadata, index.metadata);
  EXPECT_EQ(parsed->totalSize, 44u);

  // By its plain name: the index stands in for the missing single file.
  auto reader = openArchive(file("stats.safetensors"));
  ASSERT_TRUE(bool(reader)) << toString(reader.takeError());
  EXPECT_EQ((*reader)->path(), indexPath);
  ASSERT_EQ((*reader)->tensors().size(), 3u);
  EXPECT_EQ((*reader)->tensors()[1].name, "y.hessian");
  EXPECT_EQ((*reader)->metadata().at("seed"), "3");
  EXPECT_EQ((*reader)->files().size(), 2u);
  for (auto [name, bytes] : {std::pair{"x.hessian", &a}, {"y.hessian", &c},
                             {"z.rows", &b}}) {
    const TensorInfo *t = (*reader)->lookup(name);
    ASSERT_TRUE(t) << name;
    EXPECT_EQ((*reader)->bytes(*t), ArrayRef<uint8_t>(*bytes)) << name;
    (*reader)->releasePages(*t); // the bytes stay valid
    EXPECT_EQ((*reader)->bytes(*t), ArrayRef<uint8_t>(*bytes)) << name;
  }
  EXPECT_FALSE((*reader)->lookup("w.hessian"));
  // A single file by that name wins over the index.
  ASSERT_FALSE(errorToBool(first.write(file("stats.safetensors"))));
  auto single = openArchive(file("stats.safetensors"));
  ASSERT_TRUE(bool(single));
  EXPECT_EQ((*single)->tensors().size(), 2u);
  sys::fs::remove(file("stats.safetensors"));

  auto indexError = [&](const ShardIndex &idx) -> std::string {
    std::string path = file("bad.safetensors.index.json");
    if (Error err = writeIndex(path, idx, false))
      return toString(std::move(err));
    auto r = openArchive(path);
    if (r)
      return "<opened successfully>";
    std::string msg = toString(r.takeError());
    EXPECT_TRUE(contains(msg, path));
    return msg;
  };
  ShardIndex bad = index;
  bad.weightMap.erase("z.rows"); // in its shard, not in the map
  EXPECT_TRUE(contains(indexError(bad),
                       "tensor 'z.rows' of shard 's-1.safetensors' is not in "
                       "the weight_map"));
  bad = index;
  bad.weightMap["w.hessian"] = "s-2.safetensors";
  EXPECT_TRUE(contains(indexError(bad),
                       "tensor 'w.hessian' is not in its shard "
                       "'s-2.safetensors'"));
  bad = index;
  bad.weightMap["y.hessian"] = "s-1.safetensors";
  EXPECT_TRUE(contains(indexError(bad), "tensor 'y.hessian' is not in its "
                                        "shard 's-1.safetensors'"));
  bad = index;
  bad.weightMap["y.hessian"] = "../s-2.safetensors";
  EXPECT_TRUE(contains(indexError(bad), "is not a file name in the index's "
                                        "directory"));
  // A missing and a truncated shard: both named.
  sys::fs::rename(file("s-2.safetensors"), file("moved.safetensors"));
  EXPECT_TRUE(contains(indexError(index), "shard 's-2.safetensors'"));
  EXPECT_TRUE(contains(indexError(index), "cannot open"));
  writeFile(file("s-2.safetensors"), readFile(file("moved.safetensors")).substr(0, 20));
  EXPECT_TRUE(contains(indexError(index), "shard 's-2.safetensors'"));
  // Not an index at all.
  writeFile(file("x.index.json"), "{\"weights\": {}}");
  auto notIndex = openArchive(file("x.index.json"));
  ASSERT_FALSE(bool(notIndex));
  EXPECT_TRUE(contains(toString(notIndex.takeError()), "no \"weight_map\""));
}

// An alias is stored once (a metadata entry) and reads as a tensor of its
// own with the target's bytes; readers see no "__alias__." metadata; an
// alias of nothing, or one shadowing a tensor, is refused.
TEST_F(SafeTensorsTest, AliasesReadAsTensors) {
  std::vector<uint8_t> h = pattern(4096, 4);
  Writer writer;
  ASSERT_FALSE(errorToBool(writer.add("q.hessian", DType::F64, {64, 8}, h)));
  ASSERT_FALSE(errorToBool(writer.addAlias("k.hessian", "q.hessian")));
  writer.setMetadata("seed", "1");
  EXPECT_TRUE(contains(toString(writer.addAlias("v.hessian", "x.hessian")),
                       "alias 'v.hessian' names no tensor 'x.hessian'"));
  EXPECT_TRUE(contains(toString(writer.addAlias("q.hessian", "q.hessian")),
                       "duplicate tensor name 'q.hessian'"));
  std::string path = file("alias.safetensors");
  ASSERT_FALSE(errorToBool(writer.write(path)));
  // The bytes are in the file once.
  uint64_t size = 0;
  ASSERT_FALSE(sys::fs::file_size(path, size));
  EXPECT_LT(size, 4096u + 512);
  auto reader = Reader::open(path);
  ASSERT_TRUE(bool(reader)) << toString(reader.takeError());
  ASSERT_EQ((*reader)->tensors().size(), 2u);
  const TensorInfo *k = (*reader)->lookup("k.hessian");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->shape, (SmallVector<int64_t>{64, 8}));
  EXPECT_EQ((*reader)->bytes(*k), ArrayRef<uint8_t>(h));
  EXPECT_EQ((*reader)->metadata().size(), 1u);
  EXPECT_EQ((*reader)->metadata().at("seed"), "1");
  // Hand-written bad aliases.
  auto bad = [&](StringRef meta) {
    return openError(encode("{\"__metadata__\":{" + meta.str() +
                            "},\"a\":{\"dtype\":\"U8\",\"shape\":[1],"
                            "\"data_offsets\":[0,1]}}",
                            "x"));
  };
  EXPECT_TRUE(contains(bad("\"__alias__.b\":\"c\""),
                       "alias 'b' names no stored tensor 'c'"));
  EXPECT_TRUE(contains(bad("\"__alias__.a\":\"a\""),
                       "alias 'a' is also a tensor"));
  EXPECT_TRUE(contains(bad("\"__alias__.b\":\"a\""), "<opened successfully>"));
}
