// Public C++ API of the alcore core. No Python here: plain pointers and sizes in, results
// out, std::invalid_argument (or its subclass InvalidValue) for bad arguments.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace alcore {

// Per-row uncertainty scores computed from one probability (or logit) row.
enum class Score : int { least_confidence = 0, margin = 1, ratio = 2, entropy = 3 };

// Per-item scores computed from T Monte-Carlo / ensemble probability rows.
// kl_consensus is not listed: the mean KL divergence of the members from their mean equals
// the mutual information (BALD) exactly, so both use the bald kernel.
enum class SampleScore : int { bald = 0, variation_ratio = 1, vote_entropy = 2 };

struct ScoreOptions {
  Score score = Score::margin;
  bool logits = false;        // rows are logits; softmax is applied inside the kernel
  bool normalize = false;     // rows are non-negative weights, divided by their sum
  double atol = 1e-3;         // |row sum - 1| allowed when normalize is false
  bool scale_entropy = false; // entropy divided by ln C (lies in [0, 1])
};

// What made an input value invalid. The core reports the first offending element (lowest
// row, then lowest column) so the message is the same for every thread count.
enum class Problem : int {
  none = 0,
  not_finite = 1,  // NaN or +-inf
  negative = 2,    // probability < 0
  above_one = 3,   // probability > 1 (only when normalize is false)
  row_sum = 4,     // |row sum - 1| > atol
  zero_sum = 5,    // normalize=true and the row sums to 0
  utility = 6,     // a custom utility returned NaN or +-inf for a valid row (value)
  too_large = 7,   // a caller's utility beyond +-kUtilityMax (stream_gate.hpp)
};

struct BadValue {
  Problem problem = Problem::none;
  int64_t member = -1;  // sample index for (T, N, C) inputs, -1 otherwise
  int64_t row = -1;
  int64_t col = -1;     // -1 when the problem concerns the whole row (its sum)
  double value = 0.0;   // the offending element, or the row sum
};

class InvalidValue : public std::invalid_argument {
 public:
  explicit InvalidValue(const BadValue& bad);
  BadValue bad;
};

// Valid-looking input the core cannot compute with (e.g. values whose float32 squares
// overflow). The message is worded for the public argument, so the bindings pass it on as
// the package's InvalidInputError.
class OutOfRange : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Scores rows of x (n x c, row-major) into out[n].
template <class T>
void score_rows(const T* x, int64_t n, int64_t c, const ScoreOptions& options, T* out);

// The k best rows of x by the chosen score (higher first, ties to the lower index), in one
// pass over x. exclude (n bytes, nonzero = never return) may be null. all_scores, if not
// null, receives every row's score (n values). Writes k indices to out_indices and their
// scores to out_scores.
template <class T>
void select_top(const T* x, int64_t n, int64_t c, const ScoreOptions& options,
                const uint8_t* exclude, int64_t k, int64_t* out_indices, T* out_scores,
                T* all_scores);

// The k highest of scores[n] (ties to the lower index), sorted best first.
template <class T>
void top_k(const T* scores, int64_t n, const uint8_t* exclude, int64_t k, int64_t* out_indices);

// Scores of samples x (t x n x c, row-major: member-major) into out[n].
template <class T>
void sample_scores(const T* x, int64_t t, int64_t n, int64_t c, SampleScore score,
                   bool normalize, double atol, T* out);

// For each row of m (rows x cols): the k smallest values, ascending (equal values to the
// lower column), written to out_values/out_columns (rows x k). NaN is never smallest.
void smallest_k_per_row(const float* m, int64_t rows, int64_t cols, int64_t k,
                        float* out_values, int64_t* out_columns);

// A user-defined utility of one row (custom.cpp): row points to the row's c values, extra
// to its m float64 extra inputs (null when m = 0). Returns the row's score, higher = more
// informative; a non-finite result is reported as Problem::utility for that row. Called
// concurrently from several threads, so it must not keep state between calls.
template <class T>
using RowUtility = double (*)(const T* row, int64_t c, const double* extra);

// Validates every row as score_rows does (options.score is ignored; logits/normalize/atol
// apply) and scores it with fn into out[n] (float64, as fn returns). extra is n x m,
// row-major, or null when m = 0.
template <class T>
void score_rows_custom(const T* x, int64_t n, int64_t c, const ScoreOptions& options,
                       RowUtility<T> fn, const double* extra, int64_t m, double* out);

// select_top with the score computed by fn: the k best rows (ties to the lower index,
// independent of the thread count), exclude and all_scores as in select_top.
template <class T>
void select_top_custom(const T* x, int64_t n, int64_t c, const ScoreOptions& options,
                       RowUtility<T> fn, const double* extra, int64_t m,
                       const uint8_t* exclude, int64_t k, int64_t* out_indices,
                       double* out_scores, double* all_scores);

void set_num_threads(int n);
int get_num_threads();
// Name of the instruction-set variant the kernels run with ("avx512", "avx2", "baseline").
std::string isa_name();

}  // namespace alcore
