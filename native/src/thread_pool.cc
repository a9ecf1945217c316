#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace aerie {
namespace {

// Set while a thread runs a chunk: a nested ParallelFor then runs serially instead of deadlocking.
thread_local bool tls_in_parallel = false;

class Pool {
 public:
  explicit Pool(int threads) {
    for (int i = 0; i < threads - 1; ++i) workers_.emplace_back([this] { Loop(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void Run(int64_t chunks, const std::function<void(int64_t)>& body) {
    std::lock_guard<std::mutex> run_lock(run_mu_);  // one parallel region at a time
    {
      std::lock_guard<std::mutex> lock(mu_);
      body_ = &body;
      chunks_.store(chunks);
      // done_ first: a worker still leaving the previous region may claim a chunk of this one as
      // soon as next_ is reset, and its completion must not be wiped out afterwards.
      done_.store(0);
      next_.store(0);
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    Work();
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return done_.load() == chunks_.load(); });
    body_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void Work() {
    for (;;) {
      int64_t c = next_.fetch_add(1);
      if (c >= chunks_.load()) return;
      try {
        tls_in_parallel = true;
        (*body_)(c);
        tls_in_parallel = false;
      } catch (...) {
        tls_in_parallel = false;
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
      }
      if (done_.fetch_add(1) + 1 == chunks_.load()) {
        std::lock_guard<std::mutex> lock(mu_);
        done_cv_.notify_all();
      }
    }
  }
  void Loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || (generation_ != seen && body_ != nullptr); });
        if (stop_) return;
        seen = generation_;
      }
      Work();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_, run_mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t)>* body_ = nullptr;
  std::atomic<int64_t> chunks_{0}, next_{0}, done_{0};
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

Pool& GetPool() {
  static Pool pool(CpuThreadCount());
  return pool;
}

}  // namespace

int CpuThreadCount() {
  static int n = [] {
    const char* env = std::getenv("AERIE_CPU_THREADS");
    int v = env ? std::atoi(env) : 0;
    if (v <= 0) v = static_cast<int>(std::thread::hardware_concurrency());
    return std::max(1, v);
  }();
  return n;
}

void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int threads = CpuThreadCount();
  int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, static_cast<int64_t>(threads) * 4);
  if (chunks <= 1 || threads == 1 || tls_in_parallel) {
    fn(0, n);
    return;
  }
  int64_t per = (n + chunks - 1) / chunks;
  chunks = (n + per - 1) / per;
  std::function<void(int64_t)> body = [&](int64_t c) {
    int64_t b = c * per, e = std::min(n, b + per);
    if (b < e) fn(b, e);
  };
  GetPool().Run(chunks, body);
}

}  // namespace aerie
