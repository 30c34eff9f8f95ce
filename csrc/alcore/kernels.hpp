// Per-block kernels, compiled once per instruction set (kernels.cpp) and selected at run
// time (dispatch.cpp). Internal to csrc.
#pragma once

#include <cstdint>
#include <vector>

#include "alcore/api.hpp"

namespace alcore {

template <class T>
struct Kernels {
  // Scores `rows` rows of x into out. Returns false at the first invalid row and describes
  // it in bad (row relative to x). scratch is caller-owned, reused between calls.
  bool (*score_rows)(const T* x, int64_t rows, int64_t c, const ScoreOptions& options, T* out,
                     std::vector<T>& scratch, BadValue& bad);
  // Scores items [row0, row0 + rows) of the (t, n, c) tensor x into out.
  bool (*sample_rows)(const T* x, int64_t t, int64_t n, int64_t c, int64_t row0, int64_t rows,
                      SampleScore score, bool normalize, double atol, T* out,
                      std::vector<T>& scratch, BadValue& bad);
  // out[i] = squared L2 distance between point (d values) and row rows[i] of x (n x d),
  // summed in the order of the vector lanes (the same for every call of one variant).
  void (*sq_distances)(const T* x, int64_t d, const int64_t* rows, int64_t count,
                       const T* point, T* out);
  // For rows [row_begin, row_end) of x: the smallest squared distance to the rows listed in
  // centers (min_sq) and the position in centers of the first center reaching it (which).
  // Distances are bit-identical to sq_distances'.
  void (*nearest_centers)(const T* x, int64_t d, int64_t row_begin, int64_t row_end,
                          const int64_t* centers, int64_t n_centers, T* min_sq,
                          int64_t* which);
  // The stream gate's checks and utility (in float64) of `rows` probability rows: every
  // element in [0, 1] and |row sum - 1| <= atol, then least confidence 1 - max, margin
  // 1 - (max - second) or entropy -sum p ln p / ln c (score: least_confidence, margin or
  // entropy). Returns false at the first invalid row, setting only bad.row. A row's result
  // depends on the row alone (not on its position or the block), so one row and a batch
  // agree bit for bit. scratch is caller-owned, reused between calls.
  bool (*gate_utilities)(const T* x, int64_t rows, int64_t c, Score score, double atol,
                         double* out, std::vector<double>& scratch, BadValue& bad);
};

const Kernels<float>& kernels_f32();
const Kernels<double>& kernels_f64();

}  // namespace alcore
