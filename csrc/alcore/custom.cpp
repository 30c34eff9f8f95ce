// Custom utilities: the caller's per-row function (a plain C function pointer; the Python
// layer compiles it with Numba) inside the same threaded, blocked pass as the built-in
// scores, with the same row validation and the same exact top-k.
#include <algorithm>
#include <cmath>
#include <vector>

#include "alcore/api.hpp"
#include "alcore/kernels.hpp"
#include "alcore/parallel.hpp"
#include "alcore/rowdriver.hpp"
#include "alcore/topk.hpp"

namespace alcore {
namespace {

using namespace detail;

// Validates and scores rows [0, rows) of a block. The rows are validated by the built-in
// least-confidence kernel (the same checks, in one place): its scores go to `checked` and
// are discarded; the block is then in cache for the calls. A call through a pointer cannot
// be inlined, so the cost per row is the call plus the user's own work. On failure, bad
// describes the lowest failing row (relative to the block): an invalid input row, or an
// earlier valid row whose utility is not finite, so the reported row does not depend on
// where blocks start (that is, on the thread count).
template <class T>
bool custom_block(const T* x, int64_t rows, int64_t c, const ScoreOptions& checks,
                  RowUtility<T> fn, const double* extra, int64_t m, double* out,
                  std::vector<T>& checked, std::vector<T>& scratch, BadValue& bad) {
  checked.resize(static_cast<size_t>(rows));
  int64_t valid = rows;
  if (!kernels<T>().score_rows(x, rows, c, checks, checked.data(), scratch, bad))
    valid = bad.row;
  for (int64_t r = 0; r < valid; ++r) {
    const double u = fn(x + r * c, c, m ? extra + r * m : nullptr);
    if (!std::isfinite(u)) {
      bad = BadValue{};
      bad.problem = Problem::utility;
      bad.row = r;
      bad.value = u;
      return false;
    }
    out[r] = u;
  }
  return valid == rows;
}

ScoreOptions check_options(const ScoreOptions& options) {
  ScoreOptions checks = options;
  checks.score = Score::least_confidence;  // the cheapest score; only its checks matter
  return checks;
}

template <class T>
void check_function(RowUtility<T> fn, const double* extra, int64_t m) {
  if (!fn) throw std::invalid_argument("the utility function pointer is null");
  if (m < 0 || (m > 0 && !extra)) throw std::invalid_argument("extra must hold n x m values");
}

// Per-chunk buffers of custom_block.
template <class T>
struct CustomScratch {
  std::vector<T> checked, scratch;
};

}  // namespace

template <class T>
void score_rows_custom(const T* x, int64_t n, int64_t c, const ScoreOptions& options,
                       RowUtility<T> fn, const double* extra, int64_t m, double* out) {
  check_dims(n, c);
  check_function(fn, extra, m);
  const ScoreOptions checks = check_options(options);
  score_all_blocks<CustomScratch<T>>(
      n, c, out, [&](int64_t r, int64_t rows, double* scores, CustomScratch<T>& s,
                     BadValue& bad) {
        return custom_block(x + r * c, rows, c, checks, fn, m ? extra + r * m : nullptr, m,
                            scores, s.checked, s.scratch, bad);
      });
}

template <class T>
void select_top_custom(const T* x, int64_t n, int64_t c, const ScoreOptions& options,
                       RowUtility<T> fn, const double* extra, int64_t m,
                       const uint8_t* exclude, int64_t k, int64_t* out_indices,
                       double* out_scores, double* all_scores) {
  check_dims(n, c);
  check_k(k, n);
  check_function(fn, extra, m);
  const ScoreOptions checks = check_options(options);
  top_of_blocks<CustomScratch<T>>(
      n, c, exclude, k, out_indices, out_scores, all_scores,
      [&](int64_t r, int64_t rows, double* scores, CustomScratch<T>& s, BadValue& bad) {
        return custom_block(x + r * c, rows, c, checks, fn, m ? extra + r * m : nullptr, m,
                            scores, s.checked, s.scratch, bad);
      });
}

#define ALCORE_INSTANTIATE(T)                                                                \
  template void score_rows_custom<T>(const T*, int64_t, int64_t, const ScoreOptions&,        \
                                     RowUtility<T>, const double*, int64_t, double*);        \
  template void select_top_custom<T>(const T*, int64_t, int64_t, const ScoreOptions&,        \
                                     RowUtility<T>, const double*, int64_t, const uint8_t*, \
                                     int64_t, int64_t*, double*, double*);
ALCORE_INSTANTIATE(float)
ALCORE_INSTANTIATE(double)

}  // namespace alcore
