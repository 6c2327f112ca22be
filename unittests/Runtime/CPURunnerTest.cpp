//===- CPURunnerTest.cpp - JIT execution of wq modules ----------------------===//
// Runs float and packed linear layers through the CPU lowering with weights
// bound from a real archive, against a float64 brute-force reference.
//===----------------------------------------------------------------------===//

#include "quant-mlir/InitAllDialects.h"
#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Runtime/CPURunner.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <gtest/gtest.h>

#include <random>

using namespace quant_mlir;
using safetensors::DType;

namespace {
class CPURunnerTest : public ::testing::Test {
protected:
  void SetUp() override {
    mlir::DialectRegistry registry;
    quant_mlir::registerAllDialects(registry);
    context.appendDialectRegistry(registry);
    context.loadAllAvailableDialects();
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("cpu-runner", dir));
  }
  void TearDown() override { llvm::sys::fs::remove_directories(dir); }

  mlir::OwningOpRef<mlir::ModuleOp> parse(llvm::StringRef src) {
    return mlir::parseSourceString<mlir::ModuleOp>(src, &context);
  }
  void writeArchive(safetensors::Writer &w) {
    llvm::SmallString<128> path(dir);
    llvm::sys::path::append(path, "model.safetensors");
    ASSERT_FALSE(bool(w.write(path)));
  }
  template <typename T> static std::vector<uint8_t> bytes(const std::vector<T> &v) {
    return {reinterpret_cast<const uint8_t *>(v.data()),
            reinterpret_cast<const uint8_t *>(v.data() + v.size())};
  }

  mlir::MLIRContext context;
  llvm::SmallString<128> dir;
  std::mt19937 rng{42};
};

std::vector<float> randomFloats(std::mt19937 &rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(rng);
  return v;
}

// y = x W^T + b over a dynamic batch, plus an elementwise op between layers.
TEST_F(CPURunnerTest, FloatLinearMatchesReference) {
  const int64_t K = 24, N = 10, M = 3;
  auto w = randomFloats(rng, N * K, -1, 1), b = randomFloats(rng, N, -1, 1);
  safetensors::Writer writer;
  ASSERT_FALSE(bool(writer.addOwned("l.weight", DType::F32, {N, K}, bytes(w))));
  ASSERT_FALSE(bool(writer.addOwned("l.bias", DType::F32, {N}, bytes(b))));
  writeArchive(writer);

  auto module = parse(R"mlir(
module attributes {wq.archive = "model.safetensors"} {
  func.func @forward(%x: tensor<?x24xf32>) -> tensor<?x10xf32> {
    %w = wq.weight "l.weight" : tensor<10x24xf32>
    %b = wq.weight "l.bias" : tensor<10xf32>
    %y = wq.linear %x, %w bias %b {name = "l"} : tensor<?x24xf32>, tensor<10x24xf32>, tensor<10xf32> -> tensor<?x10xf32>
    %z = arith.mulf %y, %y : tensor<?x10xf32>
    return %z : tensor<?x10xf32>
  }
})mlir");
  ASSERT_TRUE(module);
  auto compiled = CPUModule::compile(std::move(module), dir);
  ASSERT_TRUE(bool(compiled)) << llvm::toString(compiled.takeError());
  ASSERT_EQ((*compiled)->lookup("forward")->weights.size(), 2u);

  auto x = randomFloats(rng, M * K, -1, 1);
  auto out = (*compiled)->run(
      "forward", {HostTensor::from<float>(DType::F32, {M, K}, x)});
  ASSERT_TRUE(bool(out)) << llvm::toString(out.takeError());
  ASSERT_EQ(out->size(), 1u);
  ASSERT_EQ((*out)[0].shape, (llvm::SmallVector<int64_t>{M, N}));
  auto got = (*out)[0].as<float>();
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double acc = b[n];
      for (int64_t k = 0; k < K; ++k)
        acc += double(x[m * K + k]) * w[n * K + k];
      EXPECT_NEAR(got[m * N + n], acc * acc, 1e-4 * (1 + acc * acc));
    }
}

// 4-bit GPTQ layout with zeros and act-order, f32 scales: the runner's result
// equals x (s * (q - z))^T computed from the unpacked integers in float64.
TEST_F(CPURunnerTest, PackedLinearMatchesReference) {
  const int64_t K = 64, N = 32, M = 2, G = 2, bits = 4;
  std::uniform_int_distribution<int> code(0, 15);
  std::vector<int> q(K * N), z(G * N), gidx(K);
  for (int &v : q) v = code(rng);
  for (int &v : z) v = code(rng);
  for (int64_t k = 0; k < K; ++k) gidx[k] = (k * 7) % G;
  auto s = randomFloats(rng, G * N, 0.01f, 0.1f);
  // Pack along K (codes) and along N (zeros): 8 fields per little-endian word.
  std::vector<int32_t> codes(K * bits / 32 * N, 0), zeros(G * N * bits / 32, 0);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n)
      codes[(k / 8) * N + n] |= uint32_t(q[k * N + n]) << (4 * (k % 8));
  for (int64_t g = 0; g < G; ++g)
    for (int64_t n = 0; n < N; ++n)
      zeros[g * (N / 8) + n / 8] |= uint32_t(z[g * N + n]) << (4 * (n % 8));
  safetensors::Writer writer;
  ASSERT_FALSE(bool(writer.addOwned("l.qweight", DType::I32, {K / 8, N}, bytes(codes))));
  ASSERT_FALSE(bool(writer.addOwned("l.scales", DType::F32, {G, N}, bytes(s))));
  ASSERT_FALSE(bool(writer.addOwned("l.qzeros", DType::I32, {G, N / 8}, bytes(zeros))));
  ASSERT_FALSE(bool(writer.addOwned("l.g_idx", DType::I32, {K}, bytes(gidx))));
  writeArchive(writer);

  auto module = parse(R"mlir(
module attributes {wq.archive = "model.safetensors"} {
  func.func @forward(%x: tensor<2x64xf32>) -> tensor<2x32xf32> {
    %c = wq.weight "l.qweight" : tensor<8x32xi32>
    %s = wq.weight "l.scales" : tensor<2x32xf32>
    %z = wq.weight "l.qzeros" : tensor<2x4xi32>
    %g = wq.weight "l.g_idx" : tensor<64xi32>
    %y = wq.quantized_linear %x, %c, %s zeros %z g_idx %g {packing = #wq.packing<gptq>,
        scheme = #wq.scheme<bits = 4, group_size = 32, symmetric = false, act_order = true>}
        : (tensor<2x64xf32>, tensor<8x32xi32>, tensor<2x32xf32>, tensor<2x4xi32>, tensor<64xi32>) -> tensor<2x32xf32>
    return %y : tensor<2x32xf32>
  }
})mlir");
  ASSERT_TRUE(module);
  auto compiled = CPUModule::compile(std::move(module), dir);
  ASSERT_TRUE(bool(compiled)) << llvm::toString(compiled.takeError());
  auto x = randomFloats(rng, M * K, -1, 1);
  auto out = (*compiled)->run("forward", {HostTensor::from<float>(DType::F32, {M, K}, x)});
  ASSERT_TRUE(bool(out)) << llvm::toString(out.takeError());
  auto got = (*out)[0].as<float>();
  double maxErr = 0;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        int g = gidx[k];
        acc += double(x[m * K + k]) * double(s[g * N + n]) * (q[k * N + n] - z[g * N + n]);
      }
      maxErr = std::max(maxErr, std::abs(got[m * N + n] - acc));
    }
  EXPECT_LT(maxErr, 1e-4);
}

TEST_F(CPURunnerTest, ArchiveMismatchesAreClearErrors) {
  std::vector<float> w(4 * 8, 0.5f);
  safetensors::Writer writer;
  ASSERT_FALSE(bool(writer.addOwned("a", DType::F32, {4, 8}, bytes(w))));
  ASSERT_FALSE(bool(writer.addOwned("h", DType::F16, {4, 8}, std::vector<uint8_t>(64))));
  writeArchive(writer);
  auto expectError = [&](llvm::StringRef ir, llvm::StringRef needle) {
    auto module = parse(ir);
    ASSERT_TRUE(module);
    auto compiled = CPUModule::compile(std::move(module), dir);
    ASSERT_FALSE(bool(compiled));
    std::string msg = llvm::toString(compiled.takeError());
    EXPECT_NE(msg.find(needle.str()), std::string::npos) << msg;
  };
  expectError(R"mlir(module attributes {wq.archive = "model.safetensors"} {
    func.func @f() -> tensor<4x8xf32> { %w = wq.weight "missing" : tensor<4x8xf32>
      return %w : tensor<4x8xf32> } })mlir",
              "weight 'missing' is not in the archive");
  expectError(R"mlir(module attributes {wq.archive = "model.safetensors"} {
    func.func @f() -> tensor<8x4xf32> { %w = wq.weight "a" : tensor<8x4xf32>
      return %w : tensor<8x4xf32> } })mlir",
              "weight 'a' is F32 [4, 8] in the archive but the IR expects F32 [8, 4]");
  expectError(R"mlir(module attributes {wq.archive = "model.safetensors"} {
    func.func @f() -> tensor<4x8xf32> { %w = wq.weight "h" : tensor<4x8xf32>
      return %w : tensor<4x8xf32> } })mlir",
              "weight 'h' is F16 [4, 8] in the archive but the IR expects F32 [4, 8]");
  expectError(R"mlir(module attributes {wq.archive = "absent.safetensors"} {
    func.func @f() -> tensor<4x8xf32> { %w = wq.weight "a" : tensor<4x8xf32>
      return %w : tensor<4x8xf32> } })mlir",
              "absent.safetensors");
}

TEST_F(CPURunnerTest, BadInputsAreRejected) {
  safetensors::Writer writer;
  writeArchive(writer);
  auto module = parse(R"mlir(module attributes {wq.archive = "model.safetensors"} {
    func.func @f(%x: tensor<?x4xf32>) -> tensor<?x4xf32> { return %x : tensor<?x4xf32> } })mlir");
  ASSERT_TRUE(module);
  auto compiled = CPUModule::compile(std::move(module), dir);
  ASSERT_TRUE(bool(compiled)) << llvm::toString(compiled.takeError());
  std::vector<float> x(6, 1.0f);
  auto wrongShape = (*compiled)->run("f", {HostTensor::from<float>(DType::F32, {2, 3}, x)});
  ASSERT_FALSE(bool(wrongShape));
  EXPECT_NE(llvm::toString(wrongShape.takeError()).find("input #0 of 'f' is F32 [2, 3], expected F32 [?, 4]"),
            std::string::npos);
  auto noFunc = (*compiled)->run("g", llvm::ArrayRef<HostTensor>{});
  ASSERT_FALSE(bool(noFunc));
  EXPECT_NE(llvm::toString(noFunc.takeError()).find("no public function 'g'"), std::string::npos);
  // Returning an input as-is must not free it.
  std::vector<float> y(8, 2.0f);
  auto same = (*compiled)->run("f", {HostTensor::from<float>(DType::F32, {2, 4}, y)});
  ASSERT_TRUE(bool(same)) << llvm::toString(same.takeError());
  EXPECT_EQ((*same)[0].as<float>()[7], 2.0f);
}
// A memref argument is an in/out buffer (the derived decode step's cache):
// the run writes the caller's bytes in place, row `pos` only, and returns
// the other results; consecutive runs see the earlier writes. Calls without
// the buffer are refused with a clear error.
TEST_F(CPURunnerTest, InOutBufferIsWrittenInPlace) {
  auto module = parse(R"mlir(
module {
  func.func @step(%x: tensor<1x4xf32>, %pos: tensor<1xi64>, %buf: memref<3x4xf32>) -> tensor<4xf32> {
    %c0 = arith.constant 0 : index
    %p64 = tensor.extract %pos[%c0] : tensor<1xi64>
    %p = arith.index_cast %p64 : i64 to index
    %t = bufferization.to_tensor %buf restrict writable : memref<3x4xf32> to tensor<3x4xf32>
    %u = tensor.insert_slice %x into %t[%p, 0] [1, 4] [1, 1] : tensor<1x4xf32> into tensor<3x4xf32>
    bufferization.materialize_in_destination %u in restrict writable %buf : (tensor<3x4xf32>, memref<3x4xf32>) -> ()
    %zero = arith.constant 0.0 : f32
    %e = tensor.empty() : tensor<4xf32>
    %init = linalg.fill ins(%zero : f32) outs(%e : tensor<4xf32>) -> tensor<4xf32>
    %sum = linalg.reduce ins(%u : tensor<3x4xf32>) outs(%init : tensor<4xf32>) dimensions = [0]
      (%a: f32, %b: f32) { %s = arith.addf %a, %b : f32
                           linalg.yield %s : f32 }
    return %sum : tensor<4xf32>
  }
})mlir");
  ASSERT_TRUE(module);
  auto compiled = CPUModule::compile(std::move(module), dir);
  ASSERT_TRUE(bool(compiled)) << llvm::toString(compiled.takeError());
  const FunctionSignature *sig = (*compiled)->lookup("step");
  ASSERT_TRUE(sig);
  EXPECT_EQ(sig->inOut, (llvm::SmallVector<bool>{false, false, true}));
  std::vector<float> init(12, 0.5f);
  HostTensor buffer = HostTensor::from<float>(DType::F32, {3, 4}, init);
  const uint8_t *storage = buffer.data.data();
  std::vector<float> expected = init;
  for (int64_t pos : {2, 0}) {
    std::vector<float> row{1.f + pos, 2.f, 3.f, 4.f * pos};
    HostTensor x = HostTensor::from<float>(DType::F32, {1, 4}, row);
    HostTensor p = HostTensor::from<int64_t>(DType::I64, {1}, {pos});
    auto out = (*compiled)->run("step", {&x, &p}, {&buffer});
    ASSERT_TRUE(bool(out)) << llvm::toString(out.takeError());
    std::copy(row.begin(), row.end(), expected.begin() + pos * 4);
    EXPECT_EQ(buffer.data.data(), storage); // the same bytes, updated
    auto got = buffer.as<float>();
    for (int i = 0; i < 12; ++i)
      EXPECT_EQ(got[i], expected[i]) << "pos " << pos << " element " << i;
    ASSERT_EQ(out->size(), 1u);
    for (int c = 0; c < 4; ++c)
      EXPECT_EQ((*out)[0].as<float>()[c],
                expected[c] + expected[4 + c] + expected[8 + c]);
  }
  HostTensor x = HostTensor::from<float>(DType::F32, {1, 4}, init);
  HostTensor p = HostTensor::from<int64_t>(DType::I64, {1}, {0});
  std::vector<const HostTensor *> inputsOnly{&x, &p};
  auto refused = (*compiled)->run("step", inputsOnly);
  ASSERT_FALSE(bool(refused));
  EXPECT_EQ(llvm::toString(refused.takeError()),
            "function 'step' takes 2 inputs and 1 in/out buffers, got 2 and 0");
}
} // namespace
