// Density of arriving stream items among the last W items (a ring buffer), for density-
// aware stream decisions (alcore/stream_density.py documents the definitions).
#pragma once

#include <cstdint>
#include <vector>

// Slots per block of the ring (see StreamDensity::blocks_).
#define ALCORE_DENSITY_BLOCK 64

namespace alcore {

enum class DensityKind : int {
  // scikit-activeml's StreamDensityBasedAL local density factor: how many window items the
  // new item becomes the nearest neighbour of (strictly nearer than every item they met).
  ldf = 0,
  // Mean cosine similarity to the k most similar window items, clipped at 0 (1 with an
  // empty window).
  similarity = 1,
};

// One stream's window. Not thread safe: the Python layer serialises calls. Every method
// validates its whole input before changing anything, so a rejected call changes nothing.
template <class T>
class StreamDensity {
 public:
  StreamDensity(int64_t window, int64_t d, DensityKind kind, int64_t k);

  // The density of each of the n rows of x (n x d) against the window as it is before that
  // row joins, each row joining after its density is taken (so n calls with one row give
  // the same densities and state as one call with n). Throws InvalidValue (problem
  // not_finite: a NaN/inf element; zero_sum: a row of norm 0 under similarity) before any
  // change.
  void steps(const T* x, int64_t n, double* out);

  // The same densities without changing the window (each row against the window as it
  // is, not against the rows before it).
  void peek(const T* x, int64_t n, double* out) const;

  int64_t window() const { return window_; }
  int64_t dim() const { return d_; }
  DensityKind kind() const { return kind_; }
  int64_t k() const { return k_; }
  int64_t count() const { return count_; }
  int64_t next() const { return next_; }
  // Ring contents: window x d rows (stored form: unit rows under similarity) and, under
  // ldf, each slot's squared distance to its nearest neighbour so far (inf if none).
  std::vector<T> rows() const;
  const std::vector<T>& min_sq() const { return min_sq_; }
  // Restores a state read with the accessors above; throws std::invalid_argument when the
  // sizes or counters do not fit this window.
  void set_state(const T* rows, int64_t n_rows, const T* min_sq, int64_t n_min, int64_t count,
                 int64_t next);

 private:
  void check(const T* x, int64_t n) const;
  void stored(const T* x, T* out) const;
  void distances(const T* blocks, int64_t count, const T* points, int64_t n_points, T* dist,
                 int64_t stride) const;
  double finish(const T* point, T* dist, bool update);
  double density(const T* x, bool update);

  int64_t window_, d_;
  DensityKind kind_;
  int64_t k_;
  int64_t count_ = 0, next_ = 0;
  // Slots in blocks of kBlock: block b holds d x kBlock values (dimension-major), so one
  // pass over a block is contiguous and vectorises across slots (no horizontal sums).
  std::vector<T> blocks_, min_sq_;
  mutable std::vector<T> dist_;      // squared distances of the current point, per slot
  mutable std::vector<T> scratch_;   // partial selection of the k nearest
  std::vector<T> point_;             // the current row, normalised under similarity
};

}  // namespace alcore
