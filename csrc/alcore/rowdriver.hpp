// Helpers shared by the row kernels' drivers (api.cpp, custom.cpp): block sizes, the
// per-dtype kernel table, the argument checks and the first-bad-row collector. Internal to
// csrc.
#pragma once

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <utility>

#include <vector>

#include "alcore/api.hpp"
#include "alcore/kernels.hpp"
#include "alcore/parallel.hpp"
#include "alcore/topk.hpp"

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

// The two drivers of every row score (built-in and custom): rows are scored in blocks of
// rows_per(kBlockElements, c) on the threads, by score_block(row0, rows, out, scratch, bad),
// which returns false at its first bad row (bad.row relative to the block); each chunk owns
// one default-constructed Scratch. The lowest bad row of all is thrown, so the error does
// not depend on the thread count.

// Every row's score into out[n].
template <class Scratch, class S, class ScoreBlock>
void score_all_blocks(int64_t n, int64_t c, S* out, const ScoreBlock& score_block) {
  const int64_t block = rows_per(kBlockElements, c);
  FirstBad first_bad;
  parallel_chunks(n, rows_per(kMinElementsPerThread, c), [&](int, int64_t begin, int64_t end) {
    Scratch scratch;
    BadValue bad;
    for (int64_t r = begin; r < end; r += block) {
      if (!score_block(r, std::min(block, end - r), out + r, scratch, bad)) {
        bad.row += r;
        first_bad.offer(bad);
        return;
      }
    }
  });
  first_bad.throw_if_any();
}

// The k best rows (higher first, ties to the lower index), reduced while they are scored,
// without an n-sized score array unless all_scores (n values) is given; exclude (n bytes,
// nonzero = never return) may be null; out_scores (k values) may be null.
template <class Scratch, class S, class ScoreBlock>
void top_of_blocks(int64_t n, int64_t c, const uint8_t* exclude, int64_t k,
                   int64_t* out_indices, S* out_scores, S* all_scores,
                   const ScoreBlock& score_block) {
  const int64_t block = rows_per(kBlockElements, c);
  // One read of the thread limit per call: the collectors and the loop agree on the count.
  const int chunks = planned_chunks(n, rows_per(kMinElementsPerThread, c));
  std::vector<TopCollector<S>> collectors(static_cast<size_t>(chunks), TopCollector<S>(k));
  FirstBad first_bad;
  run_chunks(n, chunks, [&](int chunk, int64_t begin, int64_t end) {
    Scratch scratch;
    std::vector<S> local(all_scores ? 0 : static_cast<size_t>(block));
    BadValue bad;
    TopCollector<S>& top = collectors[static_cast<size_t>(chunk)];
    for (int64_t r = begin; r < end; r += block) {
      const int64_t rows = std::min(block, end - r);
      S* scores = all_scores ? all_scores + r : local.data();
      if (!score_block(r, rows, scores, scratch, bad)) {
        bad.row += r;
        first_bad.offer(bad);
        return;
      }
      top.push_block(scores, rows, r, exclude ? exclude + r : nullptr);
    }
  });
  first_bad.throw_if_any();
  const auto best = merge_top(collectors, k);
  if (static_cast<int64_t>(best.size()) < k)
    throw std::invalid_argument("k exceeds the number of rows not excluded");
  for (int64_t i = 0; i < k; ++i) {
    out_indices[i] = best[static_cast<size_t>(i)].index;
    if (out_scores) out_scores[i] = best[static_cast<size_t>(i)].score;
  }
}

}  // namespace detail
}  // namespace alcore
