//===- main.cpp - quant-cpu-bench: CPU kernel families on layer shapes -----===//
// Times kernels::contractF32 / qlinearF32 (OpenBLAS family) against
// vcontractF32 / vqlinearF32 (generated vector micro-kernels) on the linear
// layers of the 100M / 1B Llama, alternating the two in each repetition, and
// a STREAM-like copy for the machine's bandwidth. Prints a table and CSV.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Runtime/Kernels.h"
#include "quant-mlir/Runtime/MicroKernels.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <ctime>
#include <random>
#include <thread>
#include <vector>

extern "C" {
int openblas_get_num_threads(void);
void openblas_set_num_threads(int);
}

using namespace quant_mlir;
namespace cl = llvm::cl;

static cl::opt<std::string> threadList("thread-counts", cl::init("1,2"),
                                       cl::desc("Thread counts, e.g. 1,2"));
static cl::opt<int> reps("repetitions", cl::init(5),
                         cl::desc("Alternating repetitions (the fastest is kept: on a shared machine it is the one least preempted)"));
static cl::opt<std::string> modelList("layer-shapes", cl::init("100m,1b"),
                                      cl::desc("Layer shapes: 100m, 1b"));
static cl::opt<bool> cpuClock(
    "cpu-clock", cl::init(false),
    cl::desc("Time the kernels and the copy in process CPU time (all "
             "threads summed: meant for --thread-counts=1) instead of wall "
             "time: on a shared machine a 1-thread kernel's CPU time does "
             "not count the time it waited for a core"));
static cl::opt<bool> decodeCold(
    "decode-cold", cl::init(true),
    cl::desc("Decode rows rotate through >= 256 MiB of weight copies so "
             "every run streams from memory (false: one copy, cache-hot: "
             "the kernels' compute ceiling)"));
static cl::opt<int> prefillM("prefill-rows", cl::init(256), cl::desc("Prefill rows"));

namespace {
double now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// The kernels' clock: wall time, or process CPU time with --cpu-clock.
double kernelClock() {
  if (!cpuClock)
    return now();
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

/// Copy bandwidth (read + write bytes / s) of 256 MiB, split over threads.
double copyBandwidth(int threads) {
  const size_t n = size_t(64) << 20; // floats
  std::vector<float> a(n, 1.0f), b(n, 0.0f);
  std::vector<double> times;
  for (int r = 0; r < 5; ++r) {
    double t0 = kernelClock();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        size_t lo = n * t / threads, hi = n * (t + 1) / threads;
        std::memcpy(b.data() + lo, a.data() + lo, (hi - lo) * sizeof(float));
      });
    for (auto &th : pool)
      th.join();
    times.push_back(kernelClock() - t0);
  }
  // Under --cpu-clock the time is summed over threads: per-thread GB/s.
  return 2.0 * n * sizeof(float) / *std::min_element(times.begin(), times.end()) / 1e9;
}

/// Read bandwidth (bytes / s) of 256 MiB summed with 8 independent
/// accumulators (the GEMV's traffic is reads only), split over threads.
double readBandwidth(int threads) {
  const size_t n = size_t(64) << 20;
  std::vector<float> a(n, 1.0f);
  std::vector<double> times;
  std::vector<float> sums(threads);
  for (int r = 0; r < 5; ++r) {
    double t0 = kernelClock();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        size_t lo = n * t / threads, hi = n * (t + 1) / threads;
        float acc[8] = {};
        for (size_t i = lo; i + 8 <= hi; i += 8)
          for (int j = 0; j < 8; ++j)
            acc[j] += a[i + j];
        sums[t] = acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] +
                  acc[6] + acc[7];
      });
    for (auto &th : pool)
      th.join();
    times.push_back(kernelClock() - t0);
  }
  if (sums[0] < 0)
    llvm::outs() << "";
  return double(n) * sizeof(float) /
         *std::min_element(times.begin(), times.end()) / 1e9;
}

struct Layer {
  const char *name;
  int64_t n, k;
};

struct Packed {
  int64_t n, k, groups;
  std::vector<int32_t> codes, zeros;
  std::vector<float> scales;
  Packed(std::mt19937 &rng, int64_t n, int64_t k) : n(n), k(k) {
    groups = k / 128;
    codes.resize(k / 8 * n);
    zeros.resize(groups * n / 8);
    for (auto &c : codes)
      c = int32_t(rng());
    for (auto &z : zeros)
      z = int32_t(rng());
    scales.assign(groups * n, 0.01f);
  }
  size_t bytes() const {
    return (codes.size() + zeros.size() + scales.size()) * 4;
  }
};
} // namespace

int main(int argc, char **argv) {
  cl::ParseCommandLineOptions(argc, argv, "CPU kernel families\n");
  auto target = initVectorKernels();
  if (!target) {
    llvm::errs() << llvm::toString(target.takeError()) << "\n";
    return 1;
  }
  llvm::outs() << "# host " << target->cpu << ", " << target->isa
               << ", micro-kernel " << target->mr << "x" << target->nr
               << ", OPENBLAS_CORETYPE="
               << (getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE")
                                               : "(unset)")
               << ", clock " << (cpuClock ? "process CPU" : "wall") << "\n";
  std::vector<int> threads;
  for (llvm::StringRef t : llvm::split(llvm::StringRef(threadList), ','))
    threads.push_back(std::stoi(t.str()));
  std::vector<Layer> layers;
  for (llvm::StringRef m : llvm::split(llvm::StringRef(modelList), ',')) {
    if (m == "100m") {
      layers.push_back({"100m qkvo 768x768", 768, 768});
      layers.push_back({"100m up 2048x768", 2048, 768});
      layers.push_back({"100m down 768x2048", 768, 2048});
    } else if (m == "1b") {
      layers.push_back({"1b qkvo 2048x2048", 2048, 2048});
      layers.push_back({"1b up 5632x2048", 5632, 2048});
      layers.push_back({"1b down 2048x5632", 2048, 5632});
    }
  }
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> unit(-1, 1);
  struct Row {
    std::string layer, kind;
    int threads;
    double blas, vec, metricBlas, metricVec;
    const char *unit;
  };
  std::vector<Row> rows;
  for (int t : threads) {
    openblas_set_num_threads(t);
    double bw = copyBandwidth(t);
    double rbw = readBandwidth(t);
    llvm::outs() << "# copy bandwidth, " << t << " thread(s): "
                 << llvm::format("%.1f", bw) << " GB/s (read + write); read "
                 << llvm::format("%.1f", rbw) << " GB/s\n";
    for (const Layer &l : layers) {
      for (int64_t m : {int64_t(prefillM), int64_t(1), int64_t(8)}) {
        std::vector<float> x(m * l.k), y(m * l.n);
        for (float &v : x)
          v = unit(rng);
        // Decode streams weights from memory: enough copies (>= 256 MiB)
        // rotate that no run finds its weights in the caches.
        const bool decode = m <= 8;
        auto copiesFor = [&](size_t bytes) {
          return decode && decodeCold
                     ? std::max<size_t>(1, (size_t(256) << 20) / bytes)
                     : 1;
        };
        std::vector<std::vector<float>> ws(copiesFor(l.n * l.k * 4));
        for (auto &w : ws) {
          w.resize(l.n * l.k);
          for (float &v : w)
            v = unit(rng) * 0.01f;
        }
        std::vector<Packed> qs;
        for (size_t i = 0, e = copiesFor(l.n * l.k / 2); i < e; ++i)
          qs.emplace_back(rng, l.n, l.k);
        size_t nextW = 0, nextQ = 0;
        auto f32 = [&](bool vec) {
          const std::vector<float> &w = ws[nextW++ % ws.size()];
          std::fill(y.begin(), y.end(), 0.0f);
          (vec ? kernels::vcontractF32 : kernels::contractF32)(
              m, l.n, l.k, x.data(), l.k, 1, w.data(), 1, l.k, y.data(),
              l.n, 1);
        };
        auto q4 = [&](bool vec) {
          const Packed &q = qs[nextQ++ % qs.size()];
          (vec ? kernels::vqlinearF32 : kernels::qlinearF32)(
              m, l.n, l.k, 4, 128, q.groups, x.data(), q.codes.data(),
              q.scales.data(), q.zeros.data(), nullptr, nullptr, y.data());
        };
        const Packed &q = qs[0];
        for (int kind = 0; kind < 2; ++kind) {
          std::function<void(bool)> fn = kind == 0 ? std::function<void(bool)>(f32)
                               : std::function<void(bool)>(q4);
          fn(false);
          fn(true);
          std::vector<double> tb, tv;
          for (int r = 0; r < reps; ++r)
            for (bool vec : {r % 2 == 0, r % 2 != 0}) {
              double t0 = kernelClock();
              fn(vec);
              (vec ? tv : tb).push_back(kernelClock() - t0);
            }
          double sb = *std::min_element(tb.begin(), tb.end()),
                 sv = *std::min_element(tv.begin(), tv.end());
          double flops = 2.0 * m * l.n * l.k;
          double bytes = kind == 0 ? double(l.n * l.k * 4) : double(q.bytes());
          rows.push_back({l.name, std::string(kind ? "q4g128" : "f32") +
                                      " M=" + std::to_string(m),
                          t, sb * 1e3, sv * 1e3,
                          decode ? bytes / sb / 1e9 : flops / sb / 1e9,
                          decode ? bytes / sv / 1e9 : flops / sv / 1e9,
                          decode ? "GB/s" : "GFLOP/s"});
          const Row &row = rows.back();
          llvm::outs() << llvm::format(
              "%-20s %-12s t=%d  blas %8.3f ms %7.1f %s  vector %8.3f ms "
              "%7.1f %s  vector/blas %.2fx\n",
              row.layer.c_str(), row.kind.c_str(), t, row.blas, row.metricBlas,
              row.unit, row.vec, row.metricVec, row.unit, row.blas / row.vec);
          llvm::outs().flush();
        }
      }
    }
  }
  llvm::outs() << "\nlayer,kind,threads,blas_ms,vector_ms,blas_metric,"
                  "vector_metric,unit\n";
  for (const Row &r : rows)
    llvm::outs() << r.layer << "," << r.kind << "," << r.threads << ","
                 << llvm::format("%.4f,%.4f,%.2f,%.2f,", r.blas, r.vec,
                                 r.metricBlas, r.metricVec)
                 << r.unit << "\n";
  return 0;
}
