// Helpers shared by the row kernels' drivers (api.cpp, custom.cpp): block sizes, the
// per-dtype kernel table, the argument checks and the first-bad-row collector. Internal to
// csrc.
#pragma once

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <utility>

#include "alcore/api.hpp"
#include "alcore/kernels.hpp"

namespace alcore {
namespace detail {

// Work per thread below which threads cost more than they save (elements).
constexpr int64_t kMinElementsPerThread = 1 << 16;
// Rows per block: enough to amortise per-block work, small enough to stay in L1/L2.
constexpr int64_t kBlockElements = 16384;
// Sample tensors are read member by member, one contiguous run per member and block: longer
// runs keep the hardware prefetchers ahead of T separate streams.
constexpr int64_t kSampleBlockElements = 32768;

template <class T>
const Kernels<T>& kernels();
template <>
inline const Kernels<float>& kernels<float>() { return kernels_f32(); }
template <>
inline const Kernels<double>& kernels<double>() { return kernels_f64(); }

inline int64_t rows_per(int64_t elements, int64_t c) {
  return std::max<int64_t>(1, elements / std::max<int64_t>(1, c));
}

// The first bad value found by any chunk: chunks are contiguous, so the lowest row wins.
class FirstBad {
 public:
  void offer(const BadValue& bad) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (bad_.problem == Problem::none || key(bad) < key(bad_)) bad_ = bad;
  }
  void throw_if_any() const {
    if (bad_.problem != Problem::none) throw InvalidValue(bad_);
  }

 private:
  static std::pair<int64_t, int64_t> key(const BadValue& b) { return {b.row, b.member}; }
  std::mutex mutex_;
  BadValue bad_;
};

inline void check_dims(int64_t n, int64_t c) {
  if (n < 1) throw std::invalid_argument("need at least one row");
  if (c < 2) throw std::invalid_argument("need at least two classes");
}

inline void check_k(int64_t k, int64_t n) {
  if (k < 1 || k > n) throw std::invalid_argument("k must be in [1, n]");
}

}  // namespace detail
}  // namespace alcore
