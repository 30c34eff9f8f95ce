// The per-pick pass of the greedy k-center (kcenter.cpp) and the low-precision copy of the
// embeddings it reads, compiled once per instruction set (quantized.cpp) and chosen at run
// time with the other kernel tables (dispatch.cpp). Internal to csrc.
//
// Why a low-precision copy: on data without structure (isotropic Gaussian) no triangle
// bound prunes, so every pick must look at every row, and reading the float32 matrix once
// per pick is the floor of an exact float32 greedy. An int8 copy of the centred rows is a
// quarter of that traffic and gives a rigorous lower bound on each distance; the exact
// float32 distance is computed only for the few rows whose bound cannot rule out a new
// minimum, so the picks are exactly the plain greedy's.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

namespace alcore {

// What the pass reads of row i besides its codes, in one 16-byte record: a candidate row
// (scattered on clustered data) costs one cache miss here, not three.
struct alignas(16) RowBound {
  double sq_norm;  // |scale * code_i|^2 rounded to nearest (the pass allows for it)
  float scale;
  // residual[i] + sqrt((min_sq[i] + eta) / (1 - gamma)) rounded up (reach_of): the pass
  // skips row i when the bound on |x~_i - c~| exceeds reach + the center's residual. Kept
  // up to date with min_sq (it changes for few rows a pick) so the pass takes no square root.
  float reach;
};

// Row i of the copy: x_i - mean ~= scale_i * code_i with code_i in [-127, 127]^d.
struct RowCodes {
  int8_t* codes = nullptr;  // n x stride, zero-padded
  int64_t stride = 0;       // d rounded up to a multiple of 16
  RowBound* bounds = nullptr;
  float* residual = nullptr;  // an upper bound on |x_i - mean - scale_i * code_i| (exact reals)
};

// static: each translation unit (each instruction-set variant) keeps its own copy.
static inline float reach_of(float residual, float min_sq, double eta, double gamma) {
  const double r = static_cast<double>(residual) +
                   std::sqrt((static_cast<double>(min_sq) + eta) / (1.0 - gamma));
  float f = static_cast<float>(r);
  if (static_cast<double>(f) < r) f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}

// The new center, quantised to int16 so its own error is negligible beside the rows'; the
// integer dot product with an int8 row is exact.
struct CenterCode {
  const int16_t* code = nullptr;  // `stride` values, zero-padded
  double scale = 0, sq_norm = 0, residual = 0;
};

struct PassInput {
  const float* x = nullptr;  // n x d float32, row-major: the exact distances
  int64_t d = 0;
  const float* point = nullptr;  // the new center's row of x
  // The low-precision copy (its reach is updated with min_sq), or codes == nullptr: every
  // row the cluster test leaves gets its exact distance.
  RowCodes rows;
  CenterCode center;
  // Cluster test: row i cannot move when min_sq[i] <= limit[owner[i] + 1] (limit[0] is for
  // rows without an owner yet). nullptr: no cluster test.
  const float* limit = nullptr;
  bool exact_all = false;  // compute every distance (the plain greedy, for tests)
  // Error bounds of the exact float32 kernel: for the true squared distance D,
  // |computed - D| <= gamma * D + eta.
  double gamma = 0, eta = 0;
  // State, updated in place for the rows of the pass: the running minimum (-1 marks a
  // center, which is never a candidate) and the cluster of its nearest center.
  float* min_sq = nullptr;
  int32_t* owner = nullptr;
  int32_t new_owner = 0;  // the new center's cluster
};

struct PassResult {
  // The largest min_sq of a non-center row after the pass, as the bits of a non-negative
  // float (ordered like the values), and the lowest row reaching it; -1 and -1 if none.
  int32_t best_bits = -1;
  int64_t best_index = -1;
  // Rows that passed the cluster test, and rows whose exact distance was computed.
  int64_t candidates = 0, exact = 0;
};

struct KCenterKernels {
  // Fills rows [begin, end) of the copy of x - mean (all but reach).
  void (*quantize_rows)(const float* x, int64_t d, int64_t begin, int64_t end,
                        const double* mean, const RowCodes& out);
  // Quantises point - mean into code (stride values) and describes it in out.
  void (*quantize_point)(const float* point, int64_t d, int64_t stride, const double* mean,
                         int16_t* code, CenterCode& out);
  // One pick's update of rows [begin, end): new minimum and owner for every row the new
  // center is strictly nearer to (as the plain greedy's min(current, new) would change
  // it), and the farthest remaining row.
  void (*pass)(const PassInput& in, int64_t begin, int64_t end, PassResult& out);
};

const KCenterKernels& kcenter_kernels();

}  // namespace alcore
