// The k-center pass and its int8 copy, for one instruction-set variant (CMake compiles this
// file once per variant, like kernels.cpp). See quantized.hpp for why.
#include "alcore/quantized.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "alcore/distances.hpp"

#ifndef ALCORE_ISA
#error "ALCORE_ISA must name the instruction-set variant"
#endif

namespace alcore {
namespace ALCORE_ISA {
namespace {

constexpr int kRowMax = 127;
// The center's codes stay below 2^14 so that int32 sums of code products cannot overflow
// within a block of kDotBlock elements (see dot); 2^-14 of the center's largest entry is
// still negligible beside the rows' int8 error.
constexpr int kCenterMax = 16383;
constexpr int64_t kBlock = 256;  // rows per block of the pass: its lists stay in L1

// The smallest float >= r.
float round_up(double r) {
  float f = static_cast<float>(r);
  if (static_cast<double>(f) < r) f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}

// x - mean ~= scale * q with |q| <= qmax. The residual is an upper bound on the exact
// |x - mean - scale * q| of the reals, allowing for the double rounding of y = x - mean
// (relative 2^-53 an entry) and of the residual sum (relative (d + 1) 2^-53): the slack
// terms below are several times those.
typedef float v4f __attribute__((vector_size(16)));
typedef double v4d __attribute__((vector_size(32)));

template <class Q>
void quantize(const float* x, int64_t d, int64_t stride, const double* mean, double qmax,
              double* y, Q* q, double& scale, double& sq_norm, double& residual) {
  // Four lanes of doubles with a fixed summation order: vectorised and deterministic (a
  // plain loop's serial sums would not vectorise without reassociation). y has room for d
  // rounded up to 4; the padding is 0 and quantises to 0.
  const int64_t d4 = (d + 3) / 4 * 4;
  v4d top = {0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 4 <= d; j += 4) {
    v4f xv;
    v4d mv;
    std::memcpy(&xv, x + j, sizeof xv);
    std::memcpy(&mv, mean + j, sizeof mv);
    const v4d v = __builtin_convertvector(xv, v4d) - mv;
    std::memcpy(y + j, &v, sizeof v);
    const v4d a = v < 0 ? -v : v;
    top = a > top ? a : top;
  }
  for (; j < d4; ++j) {
    y[j] = j < d ? static_cast<double>(x[j]) - mean[j] : 0.0;
    top[0] = std::max(top[0], std::fabs(y[j]));
  }
  const double largest = std::max(std::max(top[0], top[1]), std::max(top[2], top[3]));
  // A float scale keeps scale * q exact in double (24 + 15 bits) and scale * scale too.
  const float s = static_cast<float>(largest / qmax);
  const double inv = s > 0 ? 1.0 / static_cast<double>(s) : 0.0;
  const v4d zero = {0, 0, 0, 0};
  const v4d hi = zero + qmax, lo = zero - qmax, magic = zero + 0x1.8p52, sv = zero + s;
  v4d e2 = zero, y2 = zero, q2 = zero;
  for (j = 0; j < d4; j += 4) {
    v4d v;
    std::memcpy(&v, y + j, sizeof v);
    // Round to nearest (|v| <= qmax << 2^51) by the add-and-subtract trick, then clamp.
    v4d r = (v * inv + magic) - magic;
    r = r > hi ? hi : r;
    r = r < lo ? lo : r;
    const v4d e = v - sv * r;
    e2 += e * e;
    y2 += v * v;
    q2 += r * r;  // integers below 2^53: exact
    for (int l = 0; l < 4; ++l) q[j + l] = static_cast<Q>(r[l]);  // d4 <= stride
  }
  for (j = d4; j < stride; ++j) q[j] = 0;
  auto sum = [](v4d v) { return (v[0] + v[1]) + (v[2] + v[3]); };
  scale = s;
  sq_norm = static_cast<double>(s) * static_cast<double>(s) * sum(q2);
  const double e = std::sqrt(sum(e2));
  residual = e * (1 + static_cast<double>(d + 8) * 0x1p-50) + (std::sqrt(sum(y2)) + e) * 0x1p-48;
}

void quantize_rows(const float* x, int64_t d, int64_t begin, int64_t end, const double* mean,
                   const RowCodes& out) {
  std::vector<double> y(static_cast<size_t>(d + 3));
  for (int64_t r = begin; r < end; ++r) {
    double scale, sq_norm, residual;
    quantize(x + r * d, d, out.stride, mean, kRowMax, y.data(), out.codes + r * out.stride,
             scale, sq_norm, residual);
    out.bounds[r].sq_norm = sq_norm;
    out.bounds[r].scale = static_cast<float>(scale);
    out.bounds[r].reach = std::numeric_limits<float>::infinity();  // no center yet
    out.residual[r] = round_up(residual);
  }
}

void quantize_point(const float* point, int64_t d, int64_t stride, const double* mean,
                    int16_t* code, CenterCode& out) {
  std::vector<double> y(static_cast<size_t>(d + 3));
  quantize(point, d, stride, mean, kCenterMax, y.data(), code, out.scale, out.sq_norm,
           out.residual);
  out.code = code;
}

// Exact integer dot products of int8 rows with the int16 center code (stride is a multiple
// of 16). |q p| <= 127 * 16383, so any partial sum over kDotBlock = 1024 elements stays
// below 127 * 16383 * 1024 < 2^31: int32 within a block, blocks summed in double (exact:
// integers below 2^53 for any realistic d).
constexpr int64_t kDotBlock = 1024;

inline double dot(const int8_t* q, const int16_t* p, int64_t stride) {
  double total = 0;
  for (int64_t b = 0; b < stride; b += kDotBlock) {
    const int64_t stop = std::min(stride, b + kDotBlock);
#if defined(__AVX2__)
    __m256i acc = _mm256_setzero_si256();
    for (int64_t j = b; j < stop; j += 16) {
      const __m256i qv =
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + j)));
      const __m256i pv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + j));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(qv, pv));
    }
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_hadd_epi32(s, s);
    s = _mm_hadd_epi32(s, s);
    total += _mm_cvtsi128_si32(s);
#else
    typedef int8_t v16b __attribute__((vector_size(16)));
    typedef int16_t v16h __attribute__((vector_size(32)));
    typedef int32_t v16i __attribute__((vector_size(64)));
    v16i acc = {};
    for (int64_t j = b; j < stop; j += 16) {
      v16b qv;
      v16h pv;
      std::memcpy(&qv, q + j, sizeof qv);
      std::memcpy(&pv, p + j, sizeof pv);
      acc += __builtin_convertvector(qv, v16i) * __builtin_convertvector(pv, v16i);
    }
    int32_t sum = 0;
    for (int l = 0; l < 16; ++l) sum += acc[l];
    total += sum;
#endif
  }
  return total;
}

// The bound, for one row. |x_i - c| >= |x~_i - c~| - r_i - r_c (triangle inequality in the
// reals, r the residual bounds), and the exact kernel's value is >= D (1 - gamma) - eta for
// the true squared distance D. A row may be skipped only when that lower bound on its
// computed distance is >= its current minimum m (the plain greedy would not move it):
// |x~_i - c~| >= r_i + r_c + sqrt((m + eta) / (1 - gamma)) = reach_i + r_c. The squared
// norm |x~_i - c~|^2 = s_i^2 |q_i|^2 - 2 s_i t (q_i . p) + t^2 |p|^2 comes from exact
// integers; the rounding of its terms and their sum (a few ulps of their magnitudes' sum)
// is subtracted with room to spare (2^-48), and the right side gets a relative 2^-40 for its
// own rounding. NaN-free inputs; an infinite reach (no center yet) always needs the exact
// distance.
inline bool needs_exact(const RowCodes& rows, int64_t r, double p_dot, const CenterCode& c) {
  const RowBound& rb = rows.bounds[r];
  const double a = rb.sq_norm;
  const double cross = static_cast<double>(rb.scale) * c.scale * p_dot;
  const double u = a - 2 * cross + c.sq_norm;
  const double lower = u - (a + 2 * std::fabs(cross) + c.sq_norm) * 0x1p-48;
  const double reach = static_cast<double>(rb.reach) + c.residual;
  return !(lower >= reach * reach * (1 + 0x1p-40));
}

#if defined(__AVX2__)
// needs_exact for rows r .. r + 3 as a 4-bit mask, their dot products computed together
// (the center code is loaded once for all four).
inline int needs_exact4(const RowCodes& rows, int64_t r, const CenterCode& c) {
  const int8_t* q = rows.codes + r * rows.stride;
  const int64_t stride = rows.stride;
  __m256d dots = _mm256_setzero_pd();
  for (int64_t b = 0; b < stride; b += kDotBlock) {
    const int64_t stop = std::min(stride, b + kDotBlock);
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t j = b; j < stop; j += 16) {
      const __m256i pv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.code + j));
      auto row = [&](int k) {
        return _mm256_madd_epi16(
            _mm256_cvtepi8_epi16(
                _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + k * stride + j))),
            pv);
      };
      a0 = _mm256_add_epi32(a0, row(0));
      a1 = _mm256_add_epi32(a1, row(1));
      a2 = _mm256_add_epi32(a2, row(2));
      a3 = _mm256_add_epi32(a3, row(3));
    }
    // Partial sums of one row's products only: within the block's int32 bound.
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
    const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    dots = _mm256_add_pd(dots, _mm256_cvtepi32_pd(s));
  }
  // Four 16-byte records to (sq_norm x4) and (scale x4, reach x4).
  const double* rec = reinterpret_cast<const double*>(rows.bounds + r);
  const __m256d r01 = _mm256_loadu_pd(rec), r23 = _mm256_loadu_pd(rec + 4);
  const __m256d a = _mm256_permute4x64_pd(_mm256_unpacklo_pd(r01, r23), 0xD8);
  const __m256 sr = _mm256_permutevar8x32_ps(
      _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_unpackhi_pd(r01, r23), 0xD8)),
      _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
  const __m256d s = _mm256_cvtps_pd(_mm256_castps256_ps128(sr));
  const __m256d cross = _mm256_mul_pd(_mm256_mul_pd(s, _mm256_set1_pd(c.scale)), dots);
  const __m256d cc = _mm256_set1_pd(c.sq_norm);
  const __m256d two = _mm256_set1_pd(2.0);
  const __m256d u = _mm256_add_pd(_mm256_sub_pd(a, _mm256_mul_pd(two, cross)), cc);
  const __m256d abs_cross = _mm256_andnot_pd(_mm256_set1_pd(-0.0), cross);
  const __m256d mag = _mm256_add_pd(_mm256_add_pd(a, _mm256_mul_pd(two, abs_cross)), cc);
  const __m256d lower = _mm256_sub_pd(u, _mm256_mul_pd(mag, _mm256_set1_pd(0x1p-48)));
  const __m256d reach =
      _mm256_add_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(sr, 1)), _mm256_set1_pd(c.residual));
  const __m256d right = _mm256_mul_pd(_mm256_mul_pd(reach, reach), _mm256_set1_pd(1 + 0x1p-40));
  return _mm256_movemask_pd(_mm256_cmp_pd(lower, right, _CMP_NGE_UQ));
}
#else
inline int needs_exact4(const RowCodes& rows, int64_t r, const CenterCode& c) {
  int mask = 0;
  for (int k = 0; k < 4; ++k)
    mask |= needs_exact(rows, r + k, dot(rows.codes + (r + k) * rows.stride, c.code, rows.stride),
                        c) << k;
  return mask;
}
#endif

inline int32_t float_bits(float v) {
  int32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return bits;
}

void pass(const PassInput& in, int64_t begin, int64_t end, PassResult& out) {
  uint8_t flag[kBlock];
  int64_t exact[kBlock];
  float dist[kBlock];
  float* min_sq = in.min_sq;
  int32_t* owner = in.owner;
  const RowCodes& rows = in.rows;
  const bool quantised = rows.codes != nullptr && !in.exact_all;
  const CenterCode& c = in.center;
  int32_t best_bits = -1;
  int64_t best_index = -1, n_candidates = 0, n_exact = 0;
  for (int64_t b = begin; b < end; b += kBlock) {
    const int64_t stop = std::min(end, b + kBlock), len = stop - b;
    // Rows that may move: not a center (-1), not at distance 0 already (no distance is
    // below 0), and not ruled out by the cluster test.
    int64_t nc = 0;
    if (in.limit != nullptr) {
      const float* limit = in.limit + 1;
      for (int64_t t = 0; t < len; ++t) {
        const float m = min_sq[b + t];
        flag[t] = m > 0 && m > limit[owner[b + t]];
        nc += flag[t];
      }
      // On clustered data the candidates are few and scattered: fetch their records and
      // codes now, so the misses overlap instead of stalling the bound one by one.
      if (quantised && nc * 4 < len) {
        for (int64_t t = 0; t < len; ++t) {
          if (!flag[t]) continue;
          const char* code = reinterpret_cast<const char*>(rows.codes + (b + t) * rows.stride);
          for (int64_t k = 0; k < rows.stride; k += 64) __builtin_prefetch(code + k, 0, 0);
          __builtin_prefetch(rows.bounds + b + t, 0, 0);
        }
      }
    } else {
      for (int64_t t = 0; t < len; ++t) {
        flag[t] = min_sq[b + t] > 0;
        nc += flag[t];
      }
    }
    n_candidates += nc;
    int64_t ne = 0;
    if (nc > 0 && quantised) {
      int64_t t = 0;
      for (; t + 4 <= len; t += 4) {
        const int want = flag[t] | flag[t + 1] << 1 | flag[t + 2] << 2 | flag[t + 3] << 3;
        if (want == 0) continue;
        int mask;
        if ((want & (want - 1)) == 0) {  // one candidate (clustered data): that row only
          const int k = __builtin_ctz(static_cast<unsigned>(want));
          const int64_t r = b + t + k;
          mask = needs_exact(rows, r, dot(rows.codes + r * rows.stride, c.code, rows.stride), c)
                 << k;
        } else {
          mask = needs_exact4(rows, b + t, c) & want;
        }
        for (int k = 0; k < 4; ++k) {
          exact[ne] = b + t + k;
          ne += (mask >> k) & 1;
        }
      }
      for (; t < len; ++t) {
        const int64_t r = b + t;
        exact[ne] = r;
        ne += flag[t] &&
              needs_exact(rows, r, dot(rows.codes + r * rows.stride, c.code, rows.stride), c);
      }
    } else if (nc > 0) {
      for (int64_t t = 0; t < len; ++t) {
        exact[ne] = b + t;
        ne += flag[t];
      }
    }
    n_exact += ne;
    if (ne > 0) {
      sq_distances<float>(in.x, in.d, exact, ne, in.point, dist);
      for (int64_t t = 0; t < ne; ++t) {
        const int64_t r = exact[t];
        if (dist[t] < min_sq[r]) {
          min_sq[r] = dist[t];
          owner[r] = in.new_owner;
          if (rows.codes != nullptr)
            rows.bounds[r].reach = reach_of(rows.residual[r], dist[t], in.eta, in.gamma);
        }
      }
    }
    // The farthest row: non-negative floats order like their bits, and a center's -1 is a
    // negative int32, below every non-center's.
    int32_t top = -1;
    for (int64_t r = b; r < stop; ++r) top = std::max(top, float_bits(min_sq[r]));
    if (top > best_bits) {
      int64_t r = b;
      while (float_bits(min_sq[r]) != top) ++r;
      best_bits = top;
      best_index = r;
    }
  }
  out.best_bits = best_bits;
  out.best_index = best_index;
  out.candidates = n_candidates;
  out.exact = n_exact;
}

}  // namespace

extern const KCenterKernels table_kcenter;
const KCenterKernels table_kcenter = {&quantize_rows, &quantize_point, &pass};

}  // namespace ALCORE_ISA
}  // namespace alcore
