//===- WorkerPool.cpp - the CPU kernels' fork-join pool ---------------------===//
// runOnWorkers: one process-wide set of worker threads that spin for a short
// while after each job before they sleep, so that the many short parallel
// calls of a forward (a decode step makes ~150 GEMV calls of 20-300 us; a
// prefill layer ~30 GEMMs with elementwise code between them) do not each
// pay for waking a sleeping thread. With llvm::DefaultThreadPool every call
// went through a condition variable: in a 2-thread 100M forward the
// kernel's wake-up path (futex, IPI) was ~5% of the samples. Each worker has
// its own slot (job, generation, done flag) on its own cache line; a job
// goes only to the workers that take part in it. See docs/performance-cpu.md.
//===----------------------------------------------------------------------===//

#include "KernelsInternal.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

using namespace quant_mlir::kernels::detail;

namespace {
/// How long an idle worker polls before it sleeps, and the calling thread
/// before it yields while it waits for the others. Long enough to bridge
/// the gaps between a decode step's GEMVs and between a layer's GEMMs,
/// short enough that an idle process gives its cores back at once.
constexpr auto kSpin = std::chrono::microseconds(300);

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

/// Set while a thread runs a job: a parallel call from inside one runs on
/// that thread alone (the pool has one job at a time).
thread_local bool inJob = false;

struct alignas(64) Slot {
  std::atomic<uint64_t> generation{0};
  std::atomic<bool> done{true};
  llvm::function_ref<void()> job;
};

class WorkerPool {
public:
  /// Runs `worker` on `threads` - 1 workers and the calling thread.
  void run(int threads, llvm::function_ref<void()> worker) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (inJob || !busy.owns_lock() || threads <= 1) {
      // Nested, or another thread's job is running: this thread alone
      // (every worker function claims tasks until none are left).
      runJob(worker);
      return;
    }
    const int helpers = threads - 1;
    grow(helpers);
    for (int i = 0; i < helpers; ++i) {
      Slot &s = *slots_[i];
      s.job = worker;
      s.done.store(false, std::memory_order_relaxed);
      s.generation.fetch_add(1, std::memory_order_seq_cst);
    }
    // A worker that is about to sleep has counted itself in sleepers_
    // before it reads its generation (both seq_cst): either it sees the
    // new generation or this load sees it and wakes it.
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lock(sleepMutex_);
      wake_.notify_all();
    }
    runJob(worker);
    for (int i = 0; i < helpers; ++i)
      waitDone(*slots_[i]);
  }

private:
  static void runJob(llvm::function_ref<void()> worker) {
    bool outer = inJob;
    inJob = true;
    worker();
    inJob = outer;
  }

  static void waitDone(Slot &s) {
    auto start = std::chrono::steady_clock::now();
    for (unsigned spin = 0; !s.done.load(std::memory_order_acquire); ++spin) {
      if (spin % 256 == 255 && std::chrono::steady_clock::now() - start > kSpin)
        std::this_thread::yield();
      else
        cpuRelax();
    }
  }

  /// Starts workers up to `n` (never stopped: kernels may run from static
  /// destructors, and joining at exit would only cost time).
  void grow(int n) {
    while (int(slots_.size()) < n) {
      slots_.push_back(std::make_unique<Slot>());
      Slot *slot = slots_.back().get();
      std::thread([this, slot] { loop(*slot); }).detach();
    }
  }

  void loop(Slot &s) {
    uint64_t seen = 0;
    for (;;) {
      auto start = std::chrono::steady_clock::now();
      uint64_t g;
      for (unsigned spin = 0;; ++spin) {
        g = s.generation.load(std::memory_order_acquire);
        if (g != seen)
          break;
        if (spin % 256 == 255 &&
            std::chrono::steady_clock::now() - start > kSpin) {
          std::unique_lock<std::mutex> lock(sleepMutex_);
          sleepers_.fetch_add(1, std::memory_order_seq_cst);
          wake_.wait(lock, [&] {
            return s.generation.load(std::memory_order_seq_cst) != seen;
          });
          sleepers_.fetch_sub(1, std::memory_order_relaxed);
          g = s.generation.load(std::memory_order_acquire);
          break;
        }
        cpuRelax();
      }
      seen = g;
      runJob(s.job);
      s.done.store(true, std::memory_order_release);
    }
  }

  std::mutex busy_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::mutex sleepMutex_;
  std::condition_variable wake_;
  std::atomic<int> sleepers_{0};
};
} // namespace

void quant_mlir::kernels::detail::runOnWorkers(
    int threads, llvm::function_ref<void()> worker) {
  // Never destroyed, like its threads.
  static WorkerPool *pool = new WorkerPool();
  pool->run(threads, worker);
}
