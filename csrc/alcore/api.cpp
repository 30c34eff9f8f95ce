#include "alcore/api.hpp"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <vector>

#include "alcore/kernels.hpp"
#include "alcore/parallel.hpp"
#include "alcore/rowdriver.hpp"
#include "alcore/topk.hpp"

namespace alcore {
namespace {

using namespace detail;

std::string describe(const BadValue& bad) {
  return "invalid value (problem " + std::to_string(static_cast<int>(bad.problem)) + ") at row " +
         std::to_string(bad.row);
}

}  // namespace

InvalidValue::InvalidValue(const BadValue& b) : std::invalid_argument(describe(b)), bad(b) {}

template <class T>
void score_rows(const T* x, int64_t n, int64_t c, const ScoreOptions& options, T* out) {
  check_dims(n, c);
  const Kernels<T>& k = kernels<T>();
  score_all_blocks<std::vector<T>>(
      n, c, out, [&](int64_t r, int64_t rows, T* scores, std::vector<T>& scratch,
                     BadValue& bad) {
        return k.score_rows(x + r * c, rows, c, options, scores, scratch, bad);
      });
}

template <class T>
void select_top(const T* x, int64_t n, int64_t c, const ScoreOptions& options,
                const uint8_t* exclude, int64_t k, int64_t* out_indices, T* out_scores,
                T* all_scores) {
  check_dims(n, c);
  check_k(k, n);
  const Kernels<T>& kern = kernels<T>();
  top_of_blocks<std::vector<T>>(
      n, c, exclude, k, out_indices, out_scores, all_scores,
      [&](int64_t r, int64_t rows, T* scores, std::vector<T>& scratch, BadValue& bad) {
        return kern.score_rows(x + r * c, rows, c, options, scores, scratch, bad);
      });
}

template <class T>
void top_k(const T* scores, int64_t n, const uint8_t* exclude, int64_t k, int64_t* out_indices) {
  check_k(k, n);
  const int64_t min_items = kMinElementsPerThread;
  const int chunks = planned_chunks(n, min_items);  // read once, as in select_top
  std::vector<TopCollector<T>> collectors(static_cast<size_t>(chunks), TopCollector<T>(k));
  FirstBad first_bad;
  run_chunks(n, chunks, [&](int chunk, int64_t begin, int64_t end) {
    // Check a block, then push it while it is still in L1. x - x is 0 for every finite x and
    // NaN for NaN and +-inf, so the check is one vectorisable pass.
    for (int64_t b = begin; b < end; b += kBlockElements) {
      const int64_t stop = std::min(end, b + kBlockElements);
      int non_finite = 0;
      for (int64_t i = b; i < stop; ++i) non_finite |= !(scores[i] - scores[i] == T(0));
      if (non_finite) {
        for (int64_t i = b; i < stop; ++i) {
          if (!std::isfinite(scores[i])) {
            BadValue bad;
            bad.problem = Problem::not_finite;
            bad.row = i;
            bad.value = static_cast<double>(scores[i]);
            first_bad.offer(bad);
            return;
          }
        }
      }
      collectors[static_cast<size_t>(chunk)].push_block(scores + b, stop - b, b,
                                                        exclude ? exclude + b : nullptr);
    }
  });
  first_bad.throw_if_any();
  const auto best = merge_top(collectors, k);
  if (static_cast<int64_t>(best.size()) < k)
    throw std::invalid_argument("k exceeds the number of items not excluded");
  for (int64_t i = 0; i < k; ++i) out_indices[i] = best[static_cast<size_t>(i)].index;
}

template <class T>
void sample_scores(const T* x, int64_t t, int64_t n, int64_t c, SampleScore score,
                   bool normalize, double atol, T* out) {
  if (t < 1) throw std::invalid_argument("need at least one sample");
  check_dims(n, c);
  const Kernels<T>& k = kernels<T>();
  const int64_t block = rows_per(kSampleBlockElements, c);
  FirstBad first_bad;
  parallel_chunks(n, rows_per(kMinElementsPerThread / t + 1, c),
                  [&](int, int64_t begin, int64_t end) {
                    std::vector<T> scratch;
                    BadValue bad;
                    for (int64_t r = begin; r < end; r += block) {
                      const int64_t rows = std::min(block, end - r);
                      if (!k.sample_rows(x, t, n, c, r, rows, score, normalize, atol, out + r,
                                         scratch, bad)) {
                        bad.row += r;
                        first_bad.offer(bad);
                        return;
                      }
                    }
                  });
  first_bad.throw_if_any();
}

void smallest_k_per_row(const float* m, int64_t rows, int64_t cols, int64_t k,
                        float* out_values, int64_t* out_columns) {
  if (k < 1 || k > cols) throw std::invalid_argument("k must be in [1, cols]");
  parallel_chunks(rows, std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, cols)),
                  [&](int, int64_t begin, int64_t end) {
    std::vector<float> negated(static_cast<size_t>(cols));
    for (int64_t r = begin; r < end; ++r) {
      // The largest of -m is the smallest of m, with the same lower-index tie rule.
      const float* row = m + r * cols;
      for (int64_t j = 0; j < cols; ++j)
        negated[static_cast<size_t>(j)] = row[j] == row[j] ? -row[j] : -INFINITY;
      TopCollector<float> top(k);
      top.push_block(negated.data(), cols, 0, nullptr);
      std::vector<Candidate<float>> best = top.candidates();
      std::sort(best.begin(), best.end(), RanksBefore{});
      for (int64_t i = 0; i < k; ++i) {
        out_values[r * k + i] = -best[static_cast<size_t>(i)].score;
        out_columns[r * k + i] = best[static_cast<size_t>(i)].index;
      }
    }
  });
}

#define ALCORE_INSTANTIATE(T)                                                                  \
  template void score_rows<T>(const T*, int64_t, int64_t, const ScoreOptions&, T*);            \
  template void select_top<T>(const T*, int64_t, int64_t, const ScoreOptions&, const uint8_t*, \
                              int64_t, int64_t*, T*, T*);                                      \
  template void top_k<T>(const T*, int64_t, const uint8_t*, int64_t, int64_t*);               \
  template void sample_scores<T>(const T*, int64_t, int64_t, int64_t, SampleScore, bool,       \
                                 double, T*);
ALCORE_INSTANTIATE(float)
ALCORE_INSTANTIATE(double)

}  // namespace alcore
