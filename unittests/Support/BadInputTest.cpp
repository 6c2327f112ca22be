//===- BadInputTest.cpp - checked sizes, safe input and output paths --------===//
// The shared defences against bad input: overflow-checked size arithmetic,
// regular-file checks (FIFOs), the JSON nesting limit, realpath containment,
// output-over-input refusal, and removal of temporaries on signals and after
// killed runs.

#include "quant-mlir/Support/CheckedMath.h"
#include "quant-mlir/Support/InputFiles.h"
#include "quant-mlir/Support/OutputPaths.h"
#include "quant-mlir/Support/SafeTensors.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <csignal>
#include <fstream>
#include <string>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace quant_mlir;
namespace fs = llvm::sys::fs;

namespace {

std::string errorOf(llvm::Error err) { return llvm::toString(std::move(err)); }
template <typename T> std::string errorOf(llvm::Expected<T> value) {
  return value ? std::string("<success>") : llvm::toString(value.takeError());
}

class TempDirFixture : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_FALSE(fs::createUniqueDirectory("bad-input", dir));
  }
  void TearDown() override { fs::remove_directories(dir); }
  std::string path(llvm::StringRef name) const {
    llvm::SmallString<256> p(dir);
    llvm::sys::path::append(p, name);
    return std::string(p);
  }
  void write(llvm::StringRef name, llvm::StringRef bytes) const {
    std::ofstream(path(name), std::ios::binary) << bytes.str();
  }
  llvm::SmallString<256> dir;
};

/// A pid that certainly belongs to no process: a child that has exited.
pid_t deadPid() {
  pid_t pid = fork();
  if (pid == 0)
    _exit(0);
  waitpid(pid, nullptr, 0);
  return pid;
}

TEST(CheckedMath, Overflow) {
  EXPECT_EQ(*checkedMul(INT64_MAX / 2, 2), INT64_MAX - 1);
  EXPECT_FALSE(checkedMul(INT64_MAX / 2 + 1, 2));
  EXPECT_FALSE(checkedAdd(INT64_MAX, 1));
  EXPECT_EQ(*checkedElementCount({}), 1);
  EXPECT_EQ(*checkedElementCount({2, 3, 4}), 24);
  EXPECT_EQ(errorOf(checkedElementCount({3, 0, -1}, "t")),
            "t: negative dimension -1 in shape [3, 0, -1]");
  EXPECT_EQ(errorOf(checkedElementCount({int64_t(1) << 32, int64_t(1) << 32})),
            "element count of shape [4294967296, 4294967296] overflows");
  EXPECT_EQ(errorOf(checkedElementCount({1024, 1024}, "t", 1000)),
            "t: element count of shape [1024, 1024] overflows");
  EXPECT_EQ(errorOf(checkedByteSize({int64_t(1) << 62}, 4)),
            "byte size of shape [4611686018427387904] overflows");
  EXPECT_EQ(*checkedByteSize({2, 3}, 8), 48u);
}

TEST(InputFiles, JSONNesting) {
  EXPECT_FALSE(checkJSONNesting(R"({"a": [[1], {"b": "[[[["}]})", 3));
  std::string deep(100000, '[');
  EXPECT_EQ(errorOf(checkJSONNesting(deep)),
            "JSON nests deeper than 64 levels");
  // Brackets inside strings (with escaped quotes) do not count.
  EXPECT_FALSE(checkJSONNesting("[\"\\\"" + deep + "\"]", 2));
}

TEST_F(TempDirFixture, RefusesFifo) {
  ASSERT_EQ(mkfifo(path("pipe").c_str(), 0600), 0);
  auto buffer = getRegularFile(path("pipe")); // must not block
  ASSERT_FALSE(buffer);
  EXPECT_EQ(buffer.getError().message(), "is a FIFO, not a regular file");
  EXPECT_EQ(errorOf(checkRegularFile(path("pipe"))),
            "cannot open '" + path("pipe") + "': is a FIFO, not a regular file");
  EXPECT_EQ(getRegularFile("/dev/null").getError().message(),
            "is a device, not a regular file");
  EXPECT_EQ(getRegularFile(dir).getError(),
            std::make_error_code(std::errc::is_a_directory));
  write("ok", "abc");
  auto ok = getRegularFile(path("ok"));
  ASSERT_TRUE(ok);
  EXPECT_EQ((*ok)->getBuffer(), "abc");

  auto reader = safetensors::Reader::open(path("pipe"));
  EXPECT_EQ(errorOf(std::move(reader)),
            path("pipe") + ": cannot open: is a FIFO, not a regular file");
}

TEST_F(TempDirFixture, SafeTensorsDeepHeader) {
  std::string header = std::string(50000, '[') + std::string(50000, ']');
  char size[8];
  llvm::support::endian::write64le(size, header.size());
  write("deep.safetensors", std::string(size, 8) + header);
  EXPECT_EQ(errorOf(safetensors::Reader::open(path("deep.safetensors"))),
            path("deep.safetensors") +
                ": header is not valid JSON: JSON nests deeper than 64 levels");
}

TEST_F(TempDirFixture, ResolveInside) {
  ASSERT_FALSE(fs::create_directory(path("model")));
  ASSERT_FALSE(fs::create_directory(path("elsewhere")));
  write("elsewhere/w.bin", "x");
  write("model/real.bin", "x");
  ASSERT_FALSE(fs::create_link("../elsewhere/w.bin", path("model/out.bin")));
  ASSERT_FALSE(fs::create_link("real.bin", path("model/in.bin")));
  std::string model = path("model");
  EXPECT_TRUE(bool(resolveInside(model, "in.bin")));
  EXPECT_TRUE(bool(resolveInside(model, "new/file.bin"))); // need not exist
  for (const char *bad : {"out.bin", "../elsewhere/w.bin", "/etc/passwd", ".",
                          "a/../../x"}) {
    auto r = resolveInside(model, bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(llvm::toString(r.takeError()),
                "'" + std::string(bad) + "' must be a relative path inside '" +
                    model + "' (no absolute path, '..' or symlink leading out)");
    }
  }
  EXPECT_EQ(errorOf(resolveOutputInside(model, "../x", "--stats-archive")),
            "--stats-archive '../x' must name a file inside '" + model +
                "' (no absolute path, '..' or symlink leading out)");
}

TEST_F(TempDirFixture, OutputOverInput) {
  ASSERT_FALSE(fs::create_directory(path("d")));
  write("d/model.onnx", "m");
  write("ids.npy", "i");
  std::vector<std::string> inputs = {path("d/model.onnx"), path("ids.npy"),
                                     path("missing")};
  EXPECT_EQ(errorOf(checkNotAnInput(path("d"), inputs, "-o")),
            "-o '" + path("d") + "' would replace the directory holding the "
            "input '" + path("d/model.onnx") + "'");
  EXPECT_EQ(errorOf(checkNotAnInput(path("d/../ids.npy"), inputs, "-o")),
            "-o '" + path("d/../ids.npy") + "' would overwrite the input '" +
                path("ids.npy") + "'");
  ASSERT_FALSE(fs::create_link(path("ids.npy"), path("alias.npy")));
  // A symlink to an input is refused too (same file after resolving).
  EXPECT_FALSE(errorOf(checkNotAnInput(path("alias.npy"), inputs, "-o")).empty());
  EXPECT_FALSE(checkNotAnInput(path("out"), inputs, "-o"));
}

TEST_F(TempDirFixture, RemovesDeadTemporaries) {
  std::string dead = ".out.tmp-" + std::to_string(deadPid()) + "-abcdef";
  std::string live = ".out.tmp-" + std::to_string(getpid() == 1 ? 2 : 1) +
                     "-abcdef"; // init never dies
  std::string user = "notes.tmp-" + std::to_string(deadPid()) + "-x";
  // Named with pid and start time: pid 1 with another start time is a
  // reused pid (its maker is gone); with init's own start time it is live.
  std::string initStart = "0";
  if (auto stat = llvm::MemoryBuffer::getFileAsStream("/proc/1/stat")) {
    llvm::SmallVector<llvm::StringRef> f;
    (*stat)->getBuffer().rsplit(')').second.split(f, ' ', -1, false);
    if (f.size() >= 20)
      initStart = f[19].str();
  }
  std::string reused = ".out.tmp-1." + initStart + "1-abcdef";
  std::string liveStart = ".out.tmp-1." + initStart + "-abcdef";
  for (const std::string &d : {dead, live, reused, liveStart}) {
    ASSERT_FALSE(fs::create_directories(path(d + "/kernels")));
    write(d + "/kernels/a.ptx", "x");
  }
  write(user, "kept: not hidden");
  auto temp = TempDir::createBeside(path("out"));
  ASSERT_TRUE(bool(temp)) << errorOf(temp.takeError());
  EXPECT_FALSE(fs::exists(path(dead)));
  EXPECT_TRUE(fs::exists(path(live)));
  EXPECT_TRUE(fs::exists(path(user)));
  if (initStart != "0") {
    EXPECT_FALSE(fs::exists(path(reused)));
    EXPECT_TRUE(fs::exists(path(liveStart)));
  }
  llvm::StringRef made = llvm::sys::path::filename(temp->path());
  EXPECT_TRUE(made.starts_with(".out.tmp-" + std::to_string(getpid()) + "."))
      << made.str();
  std::string madePath = temp->path();
  { TempDir gone = std::move(*temp); }
  EXPECT_FALSE(fs::exists(madePath));

  // The safetensors writer's temporaries, left by a killed write().
  std::string stale = "w.safetensors.tmp-" + std::to_string(deadPid()) + "-zz";
  write(stale, "partial");
  safetensors::Writer writer;
  ASSERT_FALSE(writer.addOwned("t", safetensors::DType::U8, {1}, {7}));
  ASSERT_FALSE(writer.write(path("w.safetensors")));
  EXPECT_FALSE(fs::exists(path(stale)));
}

// A process that registered a tree and then gets SIGINT, SIGTERM or SIGHUP
// removes the tree and still dies of that signal.
TEST_F(TempDirFixture, RemovesTreeOnSignal) {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    std::string tree = path("tree" + std::to_string(sig));
    ASSERT_FALSE(fs::create_directories(tree + "/kernels/deeper"));
    write("tree" + std::to_string(sig) + "/model.safetensors", "x");
    write("tree" + std::to_string(sig) + "/kernels/deeper/k.ptx", "x");
    pid_t pid = fork();
    if (pid == 0) {
      removeTreeOnSignal(tree);
      raise(sig);
      _exit(3); // not reached: the signal ends the process
    }
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == sig) << sig;
    EXPECT_FALSE(fs::exists(tree)) << sig;
  }
  // dontRemoveTreeOnSignal() withdraws the registration.
  std::string kept = path("kept");
  ASSERT_FALSE(fs::create_directory(kept));
  pid_t pid = fork();
  if (pid == 0) {
    removeTreeOnSignal(kept);
    dontRemoveTreeOnSignal(kept);
    raise(SIGTERM);
    _exit(3);
  }
  waitpid(pid, nullptr, 0);
  EXPECT_TRUE(fs::exists(kept));
}

} // namespace
