#include "alcore/distances.hpp"

#include <algorithm>
#include <limits>

#include "alcore/vecmath.hpp"

namespace alcore {
namespace ALCORE_ISA {

// Direct differences, not |x|^2 + |c|^2 - 2 x.c: no cancellation, so equal inputs give
// exactly equal distances (ties stay ties) and small integers give exact results. Every
// distance of a variant goes through this one function, so the blocked and the scattered
// kernels below produce bit-identical values.
template <class T>
ALCORE_INLINE T sq_distance(const T* row, const T* point, int64_t d) {
  using VT = typename vec::V<T>::type;
  constexpr int L = vec::V<T>::lanes;
  const VT zero = vec::splat<VT>(T(0));
  VT acc0 = zero, acc1 = zero;
  int64_t j = 0;
  for (; j + 2 * L <= d; j += 2 * L) {
    const VT a = vec::load<VT>(row + j) - vec::load<VT>(point + j);
    const VT b = vec::load<VT>(row + j + L) - vec::load<VT>(point + j + L);
    acc0 += a * a;
    acc1 += b * b;
  }
  for (; j + L <= d; j += L) {
    const VT a = vec::load<VT>(row + j) - vec::load<VT>(point + j);
    acc0 += a * a;
  }
  if (j < d) {
    T row_tail[L] = {}, point_tail[L] = {};
    for (int64_t q = j; q < d; ++q) row_tail[q - j] = row[q], point_tail[q - j] = point[q];
    const VT a = vec::load<VT>(row_tail) - vec::load<VT>(point_tail);
    acc1 += a * a;
  }
  const VT acc = acc0 + acc1;
  T total = 0;
  for (int l = 0; l < L; ++l) total += acc[l];
  return total;
}

template <class T>
void sq_distances(const T* x, int64_t d, const int64_t* rows, int64_t count, const T* point,
                  T* out) {
  constexpr int64_t kAhead = 4;  // rows are scattered (cluster members): fetch ahead
  for (int64_t i = 0; i < count; ++i) {
    if (i + kAhead < count) {
      const char* next = reinterpret_cast<const char*>(x + rows[i + kAhead] * d);
      for (int64_t b = 0; b < d * static_cast<int64_t>(sizeof(T)); b += 64)
        __builtin_prefetch(next + b, 0, 0);
    }
    out[i] = sq_distance(x + rows[i] * d, point, d);
  }
}

// Rows are taken a block at a time and compared with every center while the block sits in
// L1, so the matrix is read once instead of once per center.
template <class T>
void nearest_centers(const T* x, int64_t d, int64_t row_begin, int64_t row_end,
                     const int64_t* centers, int64_t n_centers, T* min_sq, int64_t* which) {
  const int64_t block = std::max<int64_t>(1, 16384 / (d * static_cast<int64_t>(sizeof(T))));
  for (int64_t b = row_begin; b < row_end; b += block) {
    const int64_t stop = std::min(row_end, b + block);
    for (int64_t r = b; r < stop; ++r) {
      min_sq[r - row_begin] = std::numeric_limits<T>::infinity();
      which[r - row_begin] = -1;
    }
    for (int64_t j = 0; j < n_centers; ++j) {
      const T* center = x + centers[j] * d;
      for (int64_t r = b; r < stop; ++r) {
        const T dist = sq_distance(x + r * d, center, d);
        if (dist < min_sq[r - row_begin]) {
          min_sq[r - row_begin] = dist;
          which[r - row_begin] = j;
        }
      }
    }
  }
}

template void sq_distances<float>(const float*, int64_t, const int64_t*, int64_t, const float*,
                                  float*);
template void sq_distances<double>(const double*, int64_t, const int64_t*, int64_t,
                                   const double*, double*);
template void nearest_centers<float>(const float*, int64_t, int64_t, int64_t, const int64_t*,
                                     int64_t, float*, int64_t*);
template void nearest_centers<double>(const double*, int64_t, int64_t, int64_t,
                                      const int64_t*, int64_t, double*, int64_t*);

}  // namespace ALCORE_ISA
}  // namespace alcore
