#include "alcore/stream_density.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "alcore/api.hpp"

namespace alcore {

namespace {

constexpr int64_t kBlock = ALCORE_DENSITY_BLOCK;

// Squared L2 distances of point to the first `count` slots of the blocked ring, by direct
// differences summed over dimensions in order 0..d-1 (so equal rows give exactly 0 and
// small integers give exact results), then the local density factor pass. Written once
// and compiled per instruction set below; the AVX2 copy is chosen unless alcore runs its
// baseline kernels (dispatch.cpp, ALCORE_ISA).
template <class T>
__attribute__((always_inline)) inline void distances_body(const T* blocks, int64_t d,
                                                          int64_t count, const T* points,
                                                          int64_t n_points, T* dist,
                                                          int64_t stride) {
  // Block-major: a block (d x kBlock values, 16 kB at d = 64 in float32) stays in L1 while
  // every point is measured against it, so a batch reads the window once. Each (block,
  // point) pair runs the same loop whatever n_points is: one point or a batch gives
  // bit-identical distances.
  for (int64_t b = 0; b * kBlock < count; ++b) {
    const T* block = blocks + b * d * kBlock;
    const int64_t m = std::min(kBlock, count - b * kBlock);
    for (int64_t q = 0; q < n_points; ++q) {
      const T* point = points + q * d;
      T acc[kBlock] = {};
      for (int64_t j = 0; j < d; ++j) {
        const T xj = point[j];
        const T* col = block + j * kBlock;
        for (int64_t i = 0; i < kBlock; ++i) {
          const T t = col[i] - xj;
          acc[i] += t * t;
        }
      }
      T* out = dist + q * stride + b * kBlock;
      for (int64_t i = 0; i < m; ++i) out[i] = acc[i];
    }
  }
}

// How many slots the point is strictly nearer to than their nearest so far (updating them
// when update), and the point's own nearest squared distance (inf for an empty window).
template <class T>
__attribute__((always_inline)) inline int64_t ldf_body(const T* dist, T* min_sq, int64_t count,
                                                       bool update, T& nearest) {
  int64_t ldf = 0;
  T low = std::numeric_limits<T>::infinity();
  if (update) {
    for (int64_t i = 0; i < count; ++i) {
      const T di = dist[i];
      const bool nearer = di < min_sq[i];
      ldf += nearer;
      min_sq[i] = nearer ? di : min_sq[i];
      low = di < low ? di : low;
    }
  } else {
    for (int64_t i = 0; i < count; ++i) {
      const T di = dist[i];
      ldf += di < min_sq[i];
      low = di < low ? di : low;
    }
  }
  nearest = low;
  return ldf;
}

#if defined(__x86_64__) || defined(_M_X64)
#define ALCORE_DENSITY_AVX2 __attribute__((target("avx2,fma")))
#else
#define ALCORE_DENSITY_AVX2
#endif

template <class T>
ALCORE_DENSITY_AVX2 void distances_avx2(const T* blocks, int64_t d, int64_t count,
                                        const T* points, int64_t n_points, T* dist,
                                        int64_t stride) {
  distances_body(blocks, d, count, points, n_points, dist, stride);
}
template <class T>
void distances_base(const T* blocks, int64_t d, int64_t count, const T* points,
                    int64_t n_points, T* dist, int64_t stride) {
  distances_body(blocks, d, count, points, n_points, dist, stride);
}
template <class T>
ALCORE_DENSITY_AVX2 int64_t ldf_avx2(const T* dist, T* min_sq, int64_t count, bool update,
                                     T& nearest) {
  return ldf_body(dist, min_sq, count, update, nearest);
}
template <class T>
int64_t ldf_base(const T* dist, T* min_sq, int64_t count, bool update, T& nearest) {
  return ldf_body(dist, min_sq, count, update, nearest);
}

bool use_avx2() {
#if defined(__x86_64__) || defined(_M_X64)
  static const bool yes = isa_name() != "baseline";
  return yes;
#else
  return false;
#endif
}

}  // namespace

template <class T>
StreamDensity<T>::StreamDensity(int64_t window, int64_t d, DensityKind kind, int64_t k)
    : window_(window), d_(d), kind_(kind), k_(k) {
  if (window < 1 || d < 1 || k < 1)
    throw std::invalid_argument("window, d and k must be >= 1");
  const int64_t n_blocks = (window + kBlock - 1) / kBlock;
  blocks_.assign(static_cast<size_t>(n_blocks * d * kBlock), T(0));
  min_sq_.assign(static_cast<size_t>(window), std::numeric_limits<T>::infinity());
  dist_.resize(static_cast<size_t>(n_blocks * kBlock));
  point_.resize(static_cast<size_t>(d));
}

template <class T>
std::vector<T> StreamDensity<T>::rows() const {
  std::vector<T> out(static_cast<size_t>(window_ * d_));
  for (int64_t s = 0; s < window_; ++s) {
    const T* block = blocks_.data() + (s / kBlock) * d_ * kBlock + s % kBlock;
    for (int64_t j = 0; j < d_; ++j) out[s * d_ + j] = block[j * kBlock];
  }
  return out;
}

template <class T>
void StreamDensity<T>::check(const T* x, int64_t n) const {
  for (int64_t i = 0; i < n; ++i) {
    const T* row = x + i * d_;
    double sq = 0.0;
    for (int64_t j = 0; j < d_; ++j) {
      if (!std::isfinite(row[j])) {
        BadValue bad;
        bad.problem = Problem::not_finite, bad.row = i, bad.col = j, bad.value = row[j];
        throw InvalidValue(bad);
      }
      sq += static_cast<double>(row[j]) * row[j];
    }
    if (kind_ == DensityKind::similarity && !(sq > 0.0)) {
      BadValue bad;
      bad.problem = Problem::zero_sum, bad.row = i, bad.value = 0.0;
      throw InvalidValue(bad);
    }
  }
}

template <class T>
void StreamDensity<T>::distances(const T* blocks, int64_t count, const T* points,
                                 int64_t n_points, T* dist, int64_t stride) const {
  if (use_avx2()) distances_avx2(blocks, d_, count, points, n_points, dist, stride);
  else distances_base(blocks, d_, count, points, n_points, dist, stride);
}

// x as the window stores it: a copy, or under similarity the unit row (cos = 1 - |a - b|^2
// / 2 for unit rows, so the same difference kernel ranks by similarity; the norm is taken
// in float64).
template <class T>
void StreamDensity<T>::stored(const T* x, T* out) const {
  if (kind_ != DensityKind::similarity) {
    std::copy(x, x + d_, out);
    return;
  }
  double sq = 0.0;
  for (int64_t j = 0; j < d_; ++j) sq += static_cast<double>(x[j]) * x[j];
  const double inv = 1.0 / std::sqrt(sq);
  for (int64_t j = 0; j < d_; ++j) out[j] = static_cast<T>(x[j] * inv);
}

// The density of the stored row `point` from its squared distances to the count_ filled
// slots (dist, by slot; the filled slots are 0..count_-1 until the ring wraps, then all);
// with update, the point then joins the window.
template <class T>
double StreamDensity<T>::finish(const T* point, T* dist, bool update) {
  double result;
  T nearest = std::numeric_limits<T>::infinity();
  if (kind_ == DensityKind::ldf) {
    const int64_t ldf = use_avx2() ? ldf_avx2(dist, min_sq_.data(), count_, update, nearest)
                                   : ldf_base(dist, min_sq_.data(), count_, update, nearest);
    result = static_cast<double>(ldf);
  } else if (count_ == 0) {
    result = 1.0;
  } else {
    // The k smallest squared distances, kept sorted by insertion: after the first k a slot
    // enters only when nearer than the k-th, rare on a stream, so this is one compare per
    // slot. Summed in ascending order, the mean does not depend on the slots' positions.
    const int64_t k = std::min(k_, count_);
    scratch_.resize(static_cast<size_t>(k));
    T* best = scratch_.data();
    int64_t filled = 0;
    for (int64_t i = 0; i < count_; ++i) {
      const T di = dist[i];
      if (filled == k && !(di < best[k - 1])) continue;
      int64_t pos = filled < k ? filled++ : k - 1;
      while (pos > 0 && di < best[pos - 1]) {
        best[pos] = best[pos - 1];
        --pos;
      }
      best[pos] = di;
    }
    double sum = 0.0;
    for (int64_t i = 0; i < k; ++i) sum += 1.0 - 0.5 * static_cast<double>(best[i]);
    result = std::max(0.0, sum / static_cast<double>(k));
  }
  if (update) {
    T* block = blocks_.data() + (next_ / kBlock) * d_ * kBlock + next_ % kBlock;
    for (int64_t j = 0; j < d_; ++j) block[j * kBlock] = point[j];
    min_sq_[next_] = nearest;
    next_ = next_ + 1 == window_ ? 0 : next_ + 1;
    count_ = std::min(count_ + 1, window_);
  }
  return result;
}

template <class T>
double StreamDensity<T>::density(const T* x, bool update) {
  stored(x, point_.data());
  if (count_ > 0) distances(blocks_.data(), count_, point_.data(), 1, dist_.data(), 0);
  return finish(point_.data(), dist_.data(), update);
}

// Rows in chunks of up to kChunk (at most the window, so a chunk overwrites distinct
// slots): the window is read once per chunk for all its rows, and the chunk's rows are
// measured against each other with the same kernel (a small blocked copy of them), so that
// row i sees exactly the window one-by-one calls would show it: the slots rows j < i of
// the chunk took over hold those rows, at the same distances, bit for bit.
template <class T>
void StreamDensity<T>::steps(const T* x, int64_t n, double* out) {
  check(x, n);
  if (n == 1) {
    out[0] = density(x, true);
    return;
  }
  constexpr int64_t kChunk = 32;
  const int64_t stride = static_cast<int64_t>(dist_.size());
  const int64_t chunk_max = std::min(kChunk, window_);
  const int64_t chunk_blocks = (chunk_max + kBlock - 1) / kBlock;
  const int64_t chunk_stride = chunk_blocks * kBlock;
  std::vector<T> points(static_cast<size_t>(chunk_max * d_));
  std::vector<T> rows_dist(static_cast<size_t>(chunk_max * stride));
  std::vector<T> mini(static_cast<size_t>(chunk_blocks * d_ * kBlock), T(0));
  std::vector<T> among(static_cast<size_t>(chunk_max * chunk_stride));
  for (int64_t c0 = 0; c0 < n; c0 += chunk_max) {
    const int64_t nb = std::min(chunk_max, n - c0);
    for (int64_t q = 0; q < nb; ++q) {
      T* p = points.data() + q * d_;
      stored(x + (c0 + q) * d_, p);
      T* lane = mini.data() + (q / kBlock) * d_ * kBlock + q % kBlock;
      for (int64_t j = 0; j < d_; ++j) lane[j * kBlock] = p[j];
    }
    if (count_ > 0)
      distances(blocks_.data(), count_, points.data(), nb, rows_dist.data(), stride);
    distances(mini.data(), nb, points.data(), nb, among.data(), chunk_stride);
    const int64_t next0 = next_;
    for (int64_t i = 0; i < nb; ++i) {
      T* row = rows_dist.data() + i * stride;
      for (int64_t j = 0; j < i; ++j) {
        int64_t slot = next0 + j;
        if (slot >= window_) slot -= window_;
        row[slot] = among[i * chunk_stride + j];
      }
      out[c0 + i] = finish(points.data() + i * d_, row, true);
    }
  }
}

template <class T>
void StreamDensity<T>::peek(const T* x, int64_t n, double* out) const {
  check(x, n);
  // density(.., false) writes only the scratch buffers, never the window.
  auto* self = const_cast<StreamDensity<T>*>(this);
  for (int64_t i = 0; i < n; ++i) out[i] = self->density(x + i * d_, false);
}

template <class T>
void StreamDensity<T>::set_state(const T* rows, int64_t n_rows, const T* min_sq, int64_t n_min,
                                 int64_t count, int64_t next) {
  if (n_rows != window_ * d_ || n_min != window_)
    throw std::invalid_argument("state sizes do not match window x d");
  if (count < 0 || count > window_ || next < 0 || next >= window_ ||
      (count < window_ && next != count))
    throw std::invalid_argument("state counters out of range");
  for (int64_t s = 0; s < window_; ++s) {
    T* block = blocks_.data() + (s / kBlock) * d_ * kBlock + s % kBlock;
    for (int64_t j = 0; j < d_; ++j) block[j * kBlock] = rows[s * d_ + j];
  }
  std::copy(min_sq, min_sq + n_min, min_sq_.begin());
  count_ = count, next_ = next;
}

template class StreamDensity<float>;
template class StreamDensity<double>;

}  // namespace alcore
