#include "alcore/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "alcore/api.hpp"

#if defined(__linux__)
#include <sched.h>
#endif

namespace alcore {
namespace {

int available_cores() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
  return std::max(1u, std::thread::hardware_concurrency());
}

std::atomic<int>& thread_limit() {
  static std::atomic<int> limit{available_cores()};
  return limit;
}

}  // namespace

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("number of threads must be >= 1");
  thread_limit().store(n);
}

int get_num_threads() { return thread_limit().load(); }

int planned_chunks(int64_t n, int64_t min_per_chunk) {
  const int64_t by_size = std::max<int64_t>(1, n / std::max<int64_t>(1, min_per_chunk));
  return static_cast<int>(std::min<int64_t>(get_num_threads(), by_size));
}

void parallel_chunks(int64_t n, int64_t min_per_chunk,
                     const std::function<void(int, int64_t, int64_t)>& fn) {
  run_chunks(n, planned_chunks(n, min_per_chunk), fn);
}

void run_chunks(int64_t n, int chunks, const std::function<void(int, int64_t, int64_t)>& fn) {
  if (chunks < 1) throw std::invalid_argument("chunks must be >= 1");
  auto bounds = [&](int i) { return n * i / chunks; };
  if (chunks == 1) {
    fn(0, 0, n);
    return;
  }
  std::vector<std::exception_ptr> errors(static_cast<size_t>(chunks));
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(chunks - 1));
  auto run = [&](int i) {
    try {
      fn(i, bounds(i), bounds(i + 1));
    } catch (...) {
      errors[static_cast<size_t>(i)] = std::current_exception();
    }
  };
  for (int i = 1; i < chunks; ++i) {
    try {
      workers.emplace_back(run, i);
    } catch (const std::system_error&) {
      run(i);  // could not start a thread: do the chunk here
    }
  }
  run(0);
  for (auto& w : workers) w.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace alcore
