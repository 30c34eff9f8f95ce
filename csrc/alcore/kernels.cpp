// Block kernels for one instruction-set variant. CMake compiles this file once per variant
// with ALCORE_ISA naming the namespace and ALCORE_VEC_BYTES the vector width.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "alcore/distances.hpp"
#include "alcore/kernels.hpp"
#include "alcore/rowreduce.hpp"
#include "alcore/vecmath.hpp"

#ifndef ALCORE_ISA
#error "ALCORE_ISA must name the instruction-set variant"
#endif

namespace alcore {
namespace ALCORE_ISA {
namespace {

template <class T>
inline T value_ceiling(bool normalize) {
  return normalize ? std::numeric_limits<T>::max() : T(1);
}

// Slow path, run once when a row failed the fast check: which element, and why.
template <class T>
BadValue describe_probs_row(const T* p, int64_t c, bool normalize, double atol) {
  BadValue bad;
  for (int64_t j = 0; j < c; ++j) {
    const T v = p[j];
    if (!std::isfinite(v)) bad.problem = Problem::not_finite;
    else if (v < 0) bad.problem = Problem::negative;
    else if (!normalize && v > 1) bad.problem = Problem::above_one;
    if (bad.problem != Problem::none) {
      bad.col = j;
      bad.value = static_cast<double>(v);
      return bad;
    }
  }
  double sum = 0;
  for (int64_t j = 0; j < c; ++j) sum += static_cast<double>(p[j]);
  bad.problem = normalize ? Problem::zero_sum : Problem::row_sum;
  bad.value = sum;
  return bad;
}

template <class T>
BadValue describe_logits_row(const T* z, int64_t c) {
  BadValue bad;
  for (int64_t j = 0; j < c; ++j) {
    if (!std::isfinite(z[j])) {
      bad.problem = Problem::not_finite;
      bad.col = j;
      bad.value = static_cast<double>(z[j]);
      break;
    }
  }
  return bad;
}

// Scalar check of one probability row (slow paths and the generic sample kernel).
template <class T>
struct RowStats {
  T sum;
  bool valid;
};

template <class T>
inline RowStats<T> probs_row_stats(const T* p, int64_t c, bool normalize, T atol) {
  const T ceiling = value_ceiling<T>(normalize);
  T sum = 0;
  bool bad = false;
  for (int64_t j = 0; j < c; ++j) {
    const T v = p[j];
    // NaN fails both comparisons, so this one test covers NaN, inf, < 0 and > ceiling.
    bad |= !(v >= T(0)) | !(v <= ceiling);
    sum += v;
  }
  const bool sum_ok = normalize ? sum > T(0) : std::fabs(sum - T(1)) <= atol;
  return {sum, !bad && sum_ok};
}

// A row whose sum failed the vector check. The scalar re-check in the slow paths sums in
// another order and can disagree at the tolerance boundary; the vector verdict stands and
// this describes it.
inline BadValue sum_problem(bool normalize, double sum, int64_t row) {
  BadValue bad;
  bad.problem = normalize ? Problem::zero_sum : Problem::row_sum;
  bad.row = row;
  bad.value = sum;
  return bad;
}

// The first invalid lane of a per-row verdict, as a row offset.
template <class VI>
int first_set_lane(VI mask, int count) {
  for (int l = 0; l < count; ++l)
    if (mask[l]) return l;
  return -1;
}

// The first row of a block with an element out of range, known to exist (slow path): the
// scalar element test is the vector one, so it finds the same elements.
template <class T>
bool first_bad_probs_row(const T* x, int64_t rows, int64_t c, const ScoreOptions& o,
                         BadValue& bad) {
  const T ceiling = value_ceiling<T>(o.normalize);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < c; ++j) {
      const T v = x[r * c + j];
      if (!(v >= T(0)) || !(v <= ceiling)) {
        bad = describe_probs_row(x + r * c, c, o.normalize, o.atol);
        bad.row = r;
        return false;
      }
    }
  }
  return false;
}

// Wide rows (C > kGroupedMaxC): one row at a time with the lanes across the row, and the
// horizontal reductions once per row, where they are cheap next to C elements of work.
template <class T, class VT>
T lane_sum(VT v) {
  T total = 0;
  for (int i = 0; i < vec::V<T>::lanes; ++i) total += v[i];
  return total;
}

// The largest and second-largest of all lanes' (first, second) candidates.
template <class T, class VT>
void lane_top2(VT first, VT second, T& top, T& runner_up) {
  top = runner_up = -std::numeric_limits<T>::infinity();
  for (int i = 0; i < vec::V<T>::lanes; ++i) {
    if (first[i] > top) {
      runner_up = std::max(top, second[i]);
      top = first[i];
    } else {
      runner_up = std::max(runner_up, first[i]);
    }
  }
}

// Calls step(vector) over a row, the tail padded with `fill`.
template <class T, class Step>
ALCORE_INLINE void for_row_vectors(const T* row, int64_t c, T fill, Step step) {
  using VT = typename vec::V<T>::type;
  constexpr int L = vec::V<T>::lanes;
  int64_t i = 0;
  for (; i + L <= c; i += L) step(vec::load<VT>(row + i));
  if (i < c) {
    T tail[L];
    for (int j = 0; j < L; ++j) tail[j] = i + j < c ? row[i + j] : fill;
    step(vec::load<VT>(tail));
  }
}

template <class T, Score S>
bool score_wide_probs(const T* x, int64_t rows, int64_t c, const ScoreOptions& o, T* out,
                      BadValue& bad) {
  using VT = typename vec::V<T>::type;
  using VI = typename vec::V<T>::itype;
  const T inf = std::numeric_limits<T>::infinity();
  const T ceiling = value_ceiling<T>(o.normalize);
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * c;
    VT sum = vec::splat<VT>(T(0)), plogp = sum, first = vec::splat<VT>(-inf), second = first;
    VI invalid = vec::splat<VI>(0);
    for_row_vectors(row, c, T(0), [&](VT p) {
      invalid |= ~(p >= T(0)) | ~(p <= ceiling);
      sum += p;
      if (S == Score::margin || S == Score::ratio) second = vec::max(second, vec::min(first, p));
      if (S != Score::entropy) first = vec::max(first, p);
      if (S == Score::entropy && !o.normalize) plogp += vec::xlogx(p);
    });
    const T total = lane_sum<T>(sum);
    const bool sum_ok = o.normalize ? total > T(0)
                                    : std::fabs(total - T(1)) <= static_cast<T>(o.atol);
    if (vec::any(invalid) || !sum_ok) {
      bad = describe_probs_row(row, c, o.normalize, o.atol);
      bad.row = r;
      return false;
    }
    const T inv = o.normalize ? T(1) / total : T(1);
    // LC and margin divide by the sum rather than multiply by its reciprocal: the
    // quotient is correctly rounded, so a one-hot row [3, 0] scores exactly 0, and it
    // stays finite for subnormal sums.
    const T denom = o.normalize ? total : T(1);
    T top, runner_up;
    lane_top2<T>(first, second, top, runner_up);
    switch (S) {
      case Score::least_confidence: out[r] = T(1) - top / denom; break;
      case Score::margin: out[r] = T(1) - (top - runner_up) / denom; break;
      case Score::ratio: out[r] = runner_up / top; break;
      case Score::entropy: {
        // Renormalised before the logarithm, as in score_grouped_probs (no cancellation
        // against ln sum); the row is still in cache.
        if (o.normalize) {
          const VT scale = vec::splat<VT>(inv);
          for_row_vectors(row, c, T(0), [&](VT p) { plogp += vec::xlogx(p * scale); });
        }
        T h = -lane_sum<T>(plogp);
        if (o.scale_entropy) h /= std::log(static_cast<T>(c));
        out[r] = h;
        break;
      }
    }
    // A sum that overflows (rows of values near the dtype's maximum) makes the quotients
    // 0 and the score plausible but wrong: NaN sends the row to the Python layer, which
    // scores it again after an exact rescaling, as for subnormal sums.
    if (o.normalize && !(total <= std::numeric_limits<T>::max()))
      out[r] = std::numeric_limits<T>::quiet_NaN();
  }
  return true;
}

// Logits: with d = z - max and e = exp(d), s = sum(e): p_max = 1/s, p_second = e_second/s
// and H = ln s - sum(e * d) / s, without forming probabilities.
template <class T, Score S>
bool score_wide_logits(const T* x, int64_t rows, int64_t c, const ScoreOptions& o, T* out,
                       BadValue& bad) {
  using VT = typename vec::V<T>::type;
  using VI = typename vec::V<T>::itype;
  const T inf = std::numeric_limits<T>::infinity();
  const T lowest = std::numeric_limits<T>::lowest();  // padding: exp(lowest - max) = 0
  const VT zero = vec::splat<VT>(T(0));
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * c;
    VT first = vec::splat<VT>(-inf), second = first;
    VI invalid = vec::splat<VI>(0);
    for_row_vectors(row, c, lowest, [&](VT z) {
      invalid |= ~(vec::abs(z) <= std::numeric_limits<T>::max());
      second = vec::max(second, vec::min(first, z));
      first = vec::max(first, z);
    });
    if (vec::any(invalid)) {
      bad = describe_logits_row(row, c);
      bad.row = r;
      return false;
    }
    T top, runner_up;
    lane_top2<T>(first, second, top, runner_up);
    if (S == Score::ratio) {
      out[r] = std::exp(runner_up - top);
      continue;
    }
    const VT shift = vec::splat<VT>(top);
    VT sum = zero, weighted = zero;
    for_row_vectors(row, c, lowest, [&](VT z) {
      const VT d = z - shift;
      const VT e = vec::exp(d);
      sum += e;
      // e == 0 where d underflowed (possibly to -inf): the term is 0, not 0 * -inf.
      if (S == Score::entropy) weighted += e > T(0) ? e * d : zero;
    });
    const T inv = T(1) / lane_sum<T>(sum);
    if (S == Score::least_confidence) {
      out[r] = T(1) - inv;
    } else if (S == Score::margin) {
      out[r] = T(1) - (T(1) - std::exp(runner_up - top)) * inv;
    } else {
      T h = -std::log(inv) - lane_sum<T>(weighted) * inv;
      if (o.scale_entropy) h /= std::log(static_cast<T>(c));
      out[r] = h;
    }
  }
  return true;
}

// Narrow rows (C <= kGroupedMaxC), the shape of most classifiers' outputs: groups of
// `lanes` rows reduced together (rowreduce.hpp). Transcendentals run on whole vectors of a
// flat buffer, not on the partly filled row vectors.
template <class T>
void store_group(T* out, int64_t r, int count, typename vec::V<T>::type result) {
  if (count == vec::V<T>::lanes) {
    vec::store(out + r, result);
  } else {
    for (int l = 0; l < count; ++l) out[r + l] = result[l];
  }
}

// One pass over the rows of a loaded group (L rows of nv vectors each, as GroupLoader
// lays them out): per row, lane-wise running sums, the largest values (kTop) and the
// runner-up values (kSecond), and, when check is set, which elements lie outside
// [0, ceiling] (NaN fails both tests). Shared by the score and the gate kernels so both
// make the same checks in the same order.
template <class T, bool kTop, bool kSecond>
ALCORE_INLINE typename vec::V<T>::itype group_row_pass(
    const typename vec::V<T>::type* v, int nv, T ceiling, bool check,
    typename vec::V<T>::type* first, typename vec::V<T>::type* second,
    typename vec::V<T>::type* sums) {
  using VT = typename vec::V<T>::type;
  using VI = typename vec::V<T>::itype;
  constexpr int L = vec::RowGroups<T>::L;
  VI out_of_range = vec::splat<VI>(0);
  for (int l = 0; l < L; ++l) {
    VT f = vec::splat<VT>(-std::numeric_limits<T>::infinity()), sec = f,
       sum = vec::splat<VT>(T(0));
    for (int k = 0; k < nv; ++k) {
      const VT p = v[l * nv + k];
      if (check) out_of_range |= ~(p >= T(0)) | ~(p <= ceiling);
      sum += p;
      if (kSecond) sec = vec::max(sec, vec::min(f, p));
      if (kTop) f = vec::max(f, p);
    }
    first[l] = f, second[l] = sec, sums[l] = sum;
  }
  return out_of_range;
}

// Elements per tile of score_grouped_probs' entropy terms: the tile and its terms (8 KB
// each for float32) stay in L1 between the two passes over them.
constexpr int64_t kTermTileElements = 2048;

#if ALCORE_VEC_BYTES == 32 && defined(__AVX2__)
// Entropy of 10-class float32 probabilities on AVX2 (CIFAR-10, MNIST: the most common
// classifier shape) in one pass over each group of 8 rows, with no terms written to scratch
// and read back. Row r's first 8 values are one vector; its last 2 are packed with 3 other
// rows' into one vector, so 8 rows take 10 vectors of x ln x, as many as the flat pass, and
// the row sums are folds in registers. Every fold level is one instruction per shuffle (the
// generic masks of RowGroups become 2-3 on AVX2 when they cross 128-bit lanes), and each
// row's values are added in the same order wherever it sits (the folds are symmetric in
// their rows; a short last group runs through the same code on a padded copy).
namespace ten_classes {

constexpr int64_t kC = 10;
constexpr int kRows = 8;

// Lane i of the result = the sum of v[i]'s 8 lanes, as ((0+2)+(1+3)) + ((4+6)+(5+7)).
ALCORE_INLINE __m256 fold_rows(const __m256* v) {
  __m256 s[4], u[2];
  for (int i = 0; i < 4; ++i)
    s[i] = _mm256_add_ps(_mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                         _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 2; ++i) {
    const __m256d a = _mm256_castps_pd(s[2 * i]), b = _mm256_castps_pd(s[2 * i + 1]);
    u[i] = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(a, b)),
                         _mm256_castpd_ps(_mm256_unpackhi_pd(a, b)));
  }
  return _mm256_add_ps(_mm256_permute2f128_ps(u[0], u[1], 0x20),
                       _mm256_permute2f128_ps(u[0], u[1], 0x31));
}

ALCORE_INLINE int64_t pair_bits(const float* p) {
  int64_t bits;
  std::memcpy(&bits, p, sizeof(bits));
  return bits;
}

// Values 8 and 9 of rows a, b, c, d as [a8 a9 b8 b9 | c8 c9 d8 d9].
ALCORE_INLINE __m256 load_tails(const float* a, const float* b, const float* c,
                                const float* d) {
  return _mm256_castsi256_ps(_mm256_set_epi64x(pair_bits(d + 8), pair_bits(c + 8),
                                               pair_bits(b + 8), pair_bits(a + 8)));
}

// From tails of rows {0, 1, 4, 5} (a) and {2, 3, 6, 7} (b): lane i = row i's value 8 + 9.
ALCORE_INLINE __m256 tail_sums(__m256 a, __m256 b) {
  return _mm256_add_ps(_mm256_shuffle_ps(a, b, 0x88), _mm256_shuffle_ps(a, b, 0xdd));
}

ALCORE_INLINE __m256 row_sums(const __m256* main, __m256 tails_a, __m256 tails_b) {
  return _mm256_add_ps(fold_rows(main), tail_sums(tails_a, tails_b));
}

ALCORE_INLINE __m256 xlogx(__m256 p) { return (__m256)vec::xlogx((vec::vf)p); }

inline bool entropy(const float* x, int64_t rows, const ScoreOptions& o, float* out,
                    BadValue& bad) {
  // Valid values are [0, 1]: as unsigned integers, their bits are at most 1's. -0 is
  // larger too: it goes to the slow path below, which finds nothing wrong with it.
  const __m256i ceiling = _mm256_set1_epi32(0x3f800000);
  const __m256 one = _mm256_set1_ps(1.0f), atol = _mm256_set1_ps(static_cast<float>(o.atol));
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const float scale = o.scale_entropy ? 1.0f / std::log(static_cast<float>(kC)) : 1.0f;
  float padded[kRows * kC];  // a short last group: its rows, then valid rows [1, 0, ...]
  for (int64_t r = 0; r < rows; r += kRows) {
    const int count = static_cast<int>(std::min<int64_t>(kRows, rows - r));
    const float* src = x + r * kC;
    if (count < kRows) {
      for (int64_t i = 0; i < kRows * kC; ++i)
        padded[i] = i < count * kC ? src[i] : i % kC == 0 ? 1.0f : 0.0f;
      src = padded;
    } else {
      // One prefetch per line, 4 KB ahead: alone, the hardware prefetchers leave a thread
      // short of memory bandwidth here.
      for (int64_t e = 0; e < kRows * kC; e += 16) __builtin_prefetch(src + 1024 + e, 0, 0);
    }
    __m256 p[kRows];
    for (int l = 0; l < kRows; ++l) p[l] = _mm256_loadu_ps(src + l * kC);
    const __m256 pa = load_tails(src, src + kC, src + 4 * kC, src + 5 * kC);
    const __m256 pb = load_tails(src + 2 * kC, src + 3 * kC, src + 6 * kC, src + 7 * kC);
    __m256i key = _mm256_max_epu32(_mm256_castps_si256(pa), _mm256_castps_si256(pb));
    for (int l = 0; l < kRows; ++l) key = _mm256_max_epu32(key, _mm256_castps_si256(p[l]));
    const __m256 sum = row_sums(p, pa, pb);
    const int sum_ok = _mm256_movemask_ps(_mm256_cmp_ps(
        _mm256_and_ps(_mm256_sub_ps(sum, one), abs_mask), atol, _CMP_LE_OQ));
    const int in_range =
        _mm256_movemask_epi8(_mm256_cmpeq_epi32(_mm256_max_epu32(key, ceiling), ceiling));
    if ((sum_ok != 0xff) | (in_range != -1)) {
      // The first offending row of the group (earlier groups passed): a row with an
      // element out of range, or an earlier one whose sum fails (a NaN also fails its own
      // row's sum, so the element problem is the one reported for that row).
      bad = BadValue{};
      first_bad_probs_row(x + r * kC, count, kC, o, bad);
      const int element_lane = bad.problem != Problem::none ? static_cast<int>(bad.row) : count;
      const int l = sum_ok == 0xff ? count : __builtin_ctz(~sum_ok & 0xff);
      if (element_lane < count && element_lane <= l) {
        bad.row += r;
        return false;
      }
      if (l < count) {
        bad = sum_problem(false, static_cast<double>(_mm256_cvtss_f32(_mm256_permutevar8x32_ps(
                                     sum, _mm256_set1_epi32(l)))),
                          r + l);
        return false;
      }
    }
    __m256 t[kRows];
    for (int l = 0; l < kRows; ++l) t[l] = xlogx(p[l]);
    __m256 h = _mm256_sub_ps(_mm256_setzero_ps(), row_sums(t, xlogx(pa), xlogx(pb)));
    if (o.scale_entropy) h = _mm256_mul_ps(h, _mm256_set1_ps(scale));
    if (count == kRows) {
      _mm256_storeu_ps(out + r, h);
    } else {
      alignas(32) float lanes[kRows];
      _mm256_store_ps(lanes, h);
      for (int l = 0; l < count; ++l) out[r + l] = lanes[l];
    }
  }
  return true;
}

}  // namespace ten_classes
#endif

template <class T, Score S, int NV>
bool score_grouped_probs(const T* x, int64_t rows, int64_t c, const ScoreOptions& o, T* out,
                         std::vector<T>& scratch, BadValue& bad) {
#if ALCORE_VEC_BYTES == 32 && defined(__AVX2__)
  if constexpr (std::is_same<T, float>::value && S == Score::entropy)
    if (!o.normalize && c == ten_classes::kC) return ten_classes::entropy(x, rows, o, out, bad);
#endif
  using G = vec::RowGroups<T>;
  using VT = typename G::VT;
  using VI = typename G::VI;
  constexpr int L = G::L;
  const G& groups = G::get();
  const T ceiling = value_ceiling<T>(o.normalize);
  const T atol = static_cast<T>(o.atol);
  // neutral[0, c) is a valid row with nothing to report, for padding a short group;
  // neutral[1, c + 1) is all zeros, the x ln x terms of that row.
  std::vector<T> neutral(static_cast<size_t>(c + 1), T(0));
  neutral[0] = T(1);
  // Entropy of probabilities reads the rows first in its x ln x pass (below), so the row
  // pass finds them in cache.
  vec::GroupLoader<T> loader(c, T(0), neutral.data(), !(S == Score::entropy && !o.normalize));
  vec::GroupLoader<T> term_loader(c, T(0), neutral.data() + 1, false);
  const int nv = NV > 0 ? NV : loader.vectors_per_row();
  const int64_t total = rows * c;
  // Entropy of rows to renormalise: q = p / sum first, then -sum q ln q. The shorter
  // ln(sum) - sum(p ln p) / sum cancels (ln sum can dwarf the entropy: 10-130 float32 ulp
  // lost for counts, 6e-17 instead of 0 for [3, 0]). The row pass writes q to scratch
  // (whole-vector stores, each row's overhang overwritten by the next row, hence the
  // padding) and the logarithm then runs over that flat buffer in full vectors.
  const bool renormalise = S == Score::entropy && o.normalize;
  if (renormalise) scratch.resize(static_cast<size_t>(total + nv * L));
  // Entropy of probabilities: x ln x of a tile of rows in full vectors (the element range
  // check rides along; the row pass below then checks only the sums), then the tile's
  // groups, which reload the rows and their terms while both are still in L1 (a whole
  // block and its terms are twice its size).
  const bool terms_first = S == Score::entropy && !o.normalize;
  if (terms_first) scratch.resize(static_cast<size_t>(total));
  const int64_t tile =
      terms_first ? std::max<int64_t>(L, kTermTileElements / c / L * L) : rows;
  VT v[L * G::kMaxVectors], first[L], second[L], sums[L];
  // An element out of range in rows [from, rows), every row before `from` valid (from is
  // a group boundary): the first offending row is the first row with such an element,
  // unless a row before it fails the sum check, by the verdict the loop below would give.
  const auto first_problem = [&](int64_t from) {
    first_bad_probs_row(x + from * c, rows - from, c, o, bad);
    const int64_t element_row = bad.problem != Problem::none ? bad.row + from : rows;
    for (int64_t r = from; r < element_row; r += L) {
      const int count = loader.template load<NV>(x, r, rows, v);
      group_row_pass<T, S != Score::entropy, S == Score::margin || S == Score::ratio>(
          v, nv, ceiling, S != Score::entropy || renormalise, first, second, sums);
      const VT sum = groups.fold_sum(sums);
      const VI bad_sum = o.normalize ? ~(sum > T(0)) : ~(vec::abs(sum - T(1)) <= atol);
      for (int l = 0; l < count && r + l < element_row; ++l)
        if (bad_sum[l]) {
          bad = sum_problem(o.normalize, static_cast<double>(sum[l]), r + l);
          return false;
        }
    }
    if (bad.problem != Problem::none) bad.row = element_row;
    return false;
  };
  for (int64_t t0 = 0; t0 < rows; t0 += tile) {
    const int64_t t1 = std::min(rows, t0 + tile);
    if (terms_first) {
      using VU = typename vec::V<T>::utype;
      VU largest = vec::splat<VU>(0);
      vec::map(x + t0 * c, scratch.data() + t0 * c, (t1 - t0) * c, T(1), [&](VT p) {
        largest = vec::max(largest, vec::range_key(p));
        return vec::xlogx(p);
      });
      if (vec::any(largest > vec::range_key(vec::splat<VT>(ceiling))))
        return first_problem(t0);
    }
    for (int64_t r = t0; r < t1; r += L) {
      const int count = loader.template load<NV>(x, r, rows, v);
      const VI out_of_range = group_row_pass<T, S != Score::entropy,
                                             S == Score::margin || S == Score::ratio>(
          v, nv, ceiling, S != Score::entropy || renormalise, first, second, sums);
      if (vec::any(out_of_range)) return first_problem(r);
      const VT sum = groups.fold_sum(sums);
      const VI bad_sum = o.normalize ? ~(sum > T(0)) : ~(vec::abs(sum - T(1)) <= atol);
      if (vec::any(bad_sum)) {
        // Rows of earlier groups passed; any element problem was caught above.
        const int l = first_set_lane(bad_sum, count);
        bad = sum_problem(o.normalize, static_cast<double>(sum[l]), r + l);
        return false;
      }
      VT result;
      if (renormalise) {
        // A subnormal sum makes inv infinite and the score non-finite: the Python layer
        // scores such rows again after an exact rescaling.
        // An overflowing sum (inv 0) would give entropy 0: NaN sends it back the same way.
        const VT inv = T(1) / sum;
        for (int l = 0; l < count; ++l) {
          const T scale = sum[l] <= std::numeric_limits<T>::max()
                              ? inv[l] : std::numeric_limits<T>::quiet_NaN();
          for (int k = 0; k < nv; ++k)
            vec::store(scratch.data() + (r + l) * c + k * L, v[l * nv + k] * scale);
        }
        continue;
      } else if (S == Score::entropy) {
        term_loader.template load<NV>(scratch.data(), r, rows, v);
        result = -groups.row_sums(v, nv);
        if (o.scale_entropy) result *= T(1) / std::log(static_cast<T>(c));
      } else if (S == Score::least_confidence) {
        // A quotient, not a product with 1 / sum: as in score_wide_probs.
        const VT top = groups.fold_max(first);
        result = T(1) - (o.normalize ? top / sum : top);
      } else {
        groups.fold_top2(first, second);
        const VT gap = first[0] - second[0];
        result = S == Score::margin ? T(1) - (o.normalize ? gap / sum : gap)
                                    : second[0] / first[0];
      }
      if (o.normalize && S != Score::ratio)  // an overflowing sum: as in score_wide_probs
        for (int l = 0; l < count; ++l)
          if (!(sum[l] <= std::numeric_limits<T>::max()))
            result[l] = std::numeric_limits<T>::quiet_NaN();
      store_group(out, r, count, result);
    }
  }
  if (renormalise) {
    vec::map(scratch.data(), scratch.data(), total, T(1), [](VT q) { return vec::xlogx(q); });
    for (int64_t r = 0; r < rows; r += L) {
      const int count = term_loader.template load<NV>(scratch.data(), r, rows, v);
      VT result = -groups.row_sums(v, nv);
      if (o.scale_entropy) result *= T(1) / std::log(static_cast<T>(c));
      store_group(out, r, count, result);
    }
  }
  return true;
}

// Logits: with d = z - max and e = exp(d), s = sum(e): p_max = 1/s, p_second = e_second/s
// and H = ln s - sum(e * d) / s, without forming probabilities.
template <class T, Score S, int NV>
bool score_grouped_logits(const T* x, int64_t rows, int64_t c, const ScoreOptions& o,
                          T* out, std::vector<T>& scratch, BadValue& bad) {
  using G = vec::RowGroups<T>;
  using VT = typename G::VT;
  using VI = typename G::VI;
  constexpr int L = G::L;
  const G& groups = G::get();
  const T inf = std::numeric_limits<T>::infinity();
  const VT zero = vec::splat<VT>(T(0));
  const std::vector<T> neutral(static_cast<size_t>(c), T(0));
  // Padding lanes hold the lowest finite value: exp(lowest - max) = 0 adds nothing.
  vec::GroupLoader<T> loader(c, std::numeric_limits<T>::lowest(), neutral.data());
  const int nv = NV > 0 ? NV : loader.vectors_per_row();
  VT v[L * G::kMaxVectors], first[L], second[L], sums[L], terms[L];
  for (int64_t r = 0; r < rows; r += L) {
    const int count = loader.template load<NV>(x, r, rows, v);
    VI invalid = vec::splat<VI>(0);
    for (int l = 0; l < L; ++l) {
      VT f = vec::splat<VT>(-inf), sec = f;
      for (int k = 0; k < nv; ++k) {
        const VT z = v[l * nv + k];
        invalid |= ~(vec::abs(z) <= std::numeric_limits<T>::max());
        if (S == Score::margin || S == Score::ratio) sec = vec::max(sec, vec::min(f, z));
        f = vec::max(f, z);
      }
      first[l] = f, second[l] = sec;
    }
    if (vec::any(invalid)) {
      for (int l = 0; l < count; ++l) {
        bad = describe_logits_row(x + (r + l) * c, c);
        if (bad.problem != Problem::none) {
          bad.row = r + l;
          return false;
        }
      }
    }
    VT top, gap;
    if (S == Score::margin || S == Score::ratio) {
      groups.fold_top2(first, second);
      top = first[0], gap = second[0] - first[0];
    } else {
      top = groups.fold_max(first);
    }
    VT result;
    if (S == Score::ratio) {
      result = vec::exp(gap);
    } else {
      // exp on the row vectors themselves: some lanes are padding (exp(lowest - max) = 0),
      // but nothing goes through memory, which costs more here than the idle lanes.
      for (int l = 0; l < L; ++l) {
        const VT shift = vec::splat<VT>(top[l]);
        VT sum = zero, weighted = zero;
        for (int k = 0; k < nv; ++k) {
          const VT d = v[l * nv + k] - shift;
          const VT e = vec::exp(d);
          sum += e;
          // e == 0 where d underflowed (possibly to -inf): the term is 0, not 0 * -inf.
          if (S == Score::entropy) weighted += e > T(0) ? e * d : zero;
        }
        sums[l] = sum;
        terms[l] = weighted;
      }
      const VT inv = T(1) / groups.fold_sum(sums);
      if (S == Score::least_confidence) {
        result = T(1) - inv;
      } else if (S == Score::margin) {
        result = T(1) - (T(1) - vec::exp(gap)) * inv;
      } else {
        result = -vec::log(inv) - groups.fold_sum(terms) * inv;
        if (o.scale_entropy) result *= T(1) / std::log(static_cast<T>(c));
      }
    }
    store_group(out, r, count, result);
  }
  return true;
}

// Vectors per row as a compile-time constant for the common widths (C <= 2 * lanes).
template <class F>
bool with_vectors_per_row(int64_t c, int lanes, F f) {
  const int64_t nv = (c + lanes - 1) / lanes;
  if (nv == 1) return f(std::integral_constant<int, 1>{});
  if (nv == 2) return f(std::integral_constant<int, 2>{});
  return f(std::integral_constant<int, 0>{});
}

template <class T>
bool score_grouped(const T* x, int64_t rows, int64_t c, const ScoreOptions& o, T* out,
                   std::vector<T>& scratch, BadValue& bad) {
  return with_vectors_per_row(c, vec::V<T>::lanes, [&](auto nv) {
    constexpr int NV = decltype(nv)::value;
#define ALCORE_SCORE_CASE(S)                                                               \
  case S:                                                                                  \
    return o.logits ? score_grouped_logits<T, S, NV>(x, rows, c, o, out, scratch, bad)     \
                    : score_grouped_probs<T, S, NV>(x, rows, c, o, out, scratch, bad);
    switch (o.score) {
      ALCORE_SCORE_CASE(Score::least_confidence)
      ALCORE_SCORE_CASE(Score::margin)
      ALCORE_SCORE_CASE(Score::ratio)
      ALCORE_SCORE_CASE(Score::entropy)
    }
    return false;
  });
#undef ALCORE_SCORE_CASE
}

template <class T>
bool score_block(const T* x, int64_t rows, int64_t c, const ScoreOptions& o, T* out,
                 std::vector<T>& scratch, BadValue& bad) {
  if (c <= vec::kGroupedMaxC) return score_grouped(x, rows, c, o, out, scratch, bad);
#define ALCORE_SCORE_CASE(S)                                                \
  case S:                                                                   \
    return o.logits ? score_wide_logits<T, S>(x, rows, c, o, out, bad)      \
                    : score_wide_probs<T, S>(x, rows, c, o, out, bad);
  switch (o.score) {
    ALCORE_SCORE_CASE(Score::least_confidence)
    ALCORE_SCORE_CASE(Score::margin)
    ALCORE_SCORE_CASE(Score::ratio)
    ALCORE_SCORE_CASE(Score::entropy)
  }
#undef ALCORE_SCORE_CASE
  return false;
}

// The invalid (row, member) with the lowest row, then member, in a block known to hold one,
// so the reported element does not depend on how rows were split between threads.
template <class T>
BadValue first_bad_sample(const T* x, int64_t t, int64_t n, int64_t c, int64_t row0,
                          int64_t rows, bool normalize, T atol) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t m = 0; m < t; ++m) {
      const T* p = x + (m * n + row0 + r) * c;
      if (!probs_row_stats(p, c, normalize, atol).valid) {
        BadValue bad = describe_probs_row(p, c, normalize, static_cast<double>(atol));
        bad.member = m;
        bad.row = r;
        return bad;
      }
    }
  }
  return BadValue{};
}

// BALD for narrow rows: per member, one grouped validation pass (row sums via folds), then
// whole-vector passes over the flat block that add the member into the running mean and
// its x ln x terms into a running total; the per-row sums of both happen once, at the end.
template <class T, int NV>
bool bald_grouped(const T* x, int64_t t, int64_t n, int64_t c, int64_t row0, int64_t rows,
                  bool normalize, double atol_d, T* out, std::vector<T>& scratch,
                  BadValue& bad) {
  using G = vec::RowGroups<T>;
  using VT = typename G::VT;
  using VI = typename G::VI;
  constexpr int L = G::L;
  const G& groups = G::get();
  const T atol = static_cast<T>(atol_d);
  const T ceiling = value_ceiling<T>(normalize);
  std::vector<T> neutral(static_cast<size_t>(c + 1), T(0));  // as in score_grouped_probs
  neutral[0] = T(1);
  vec::GroupLoader<T> loader(c, T(0), neutral.data());
  vec::GroupLoader<T> term_loader(c, T(0), neutral.data() + 1, false);
  const int nv = NV > 0 ? NV : loader.vectors_per_row();
  const int64_t total = rows * c;
  const int64_t padded = total + nv * L;  // room for the last row's whole-vector stores
  scratch.assign(static_cast<size_t>(3 * padded), T(0));
  T* mean = scratch.data();
  T* plogp = mean + padded;
  T* member = plogp + padded;  // renormalised member rows, then x ln x of the mean
  VT v[L * G::kMaxVectors];
  for (int64_t m = 0; m < t; ++m) {
    const T* block = x + (m * n + row0) * c;
    for (int64_t r = 0; r < rows; r += L) {
      const int count = loader.template load<NV>(block, r, rows, v);
      // Element ranges are checked in the whole-vector pass below; here the row sums.
      const VT sum = groups.row_sums(v, nv);
      const VI invalid = normalize ? ~(sum > T(0)) : ~(vec::abs(sum - T(1)) <= atol);
      if (vec::any(invalid)) {
        // Rows of earlier groups are not yet checked for later members: scan the block,
        // and if the scalar re-check disagrees at the tolerance boundary, report this row.
        bad = first_bad_sample(x, t, n, c, row0, rows, normalize, atol);
        if (bad.problem == Problem::none) {
          const int l = first_set_lane(invalid, count);
          bad = sum_problem(normalize, static_cast<double>(sum[l]), r + l);
          bad.member = m;
        }
        return false;
      }
      if (normalize) {
        const VT inv = T(1) / sum;
        for (int l = 0; l < count; ++l)
          for (int k = 0; k < nv; ++k)
            vec::store(member + (r + l) * c + k * L, v[l * nv + k] * inv[l]);
      }
    }
    const T* src = normalize ? member : block;
    using VU = typename vec::V<T>::utype;
    VU largest = vec::splat<VU>(0);  // the range check of vec::range_key
    int64_t i = 0;
    for (; i + L <= total; i += L) {
      const VT raw = vec::load<VT>(block + i);
      largest = vec::max(largest, vec::range_key(raw));
      const VT p = normalize ? vec::load<VT>(src + i) : raw;
      vec::store(mean + i, vec::load<VT>(mean + i) + p);
      vec::store(plogp + i, vec::load<VT>(plogp + i) + vec::xlogx(p));
    }
    for (; i < total; ++i) {  // at most L - 1 elements: same arithmetic through a padded vector
      VT p = vec::splat<VT>(T(1));
      p[0] = block[i];
      largest = vec::max(largest, vec::range_key(p));
      p[0] = src[i];
      mean[i] += src[i];
      plogp[i] += vec::xlogx(p)[0];
    }
    if (vec::any(largest > vec::range_key(vec::splat<VT>(ceiling)))) {
      bad = first_bad_sample(x, t, n, c, row0, rows, normalize, atol);
      return false;
    }
  }
  const T inv_t = T(1) / static_cast<T>(t);
  vec::map(mean, member, total, T(1), [inv_t](auto p) { return vec::xlogx(p * inv_t); });
  for (int64_t r = 0; r < rows; r += L) {
    const int count = term_loader.template load<NV>(member, r, rows, v);
    const VT mean_terms = groups.row_sums(v, nv);
    term_loader.template load<NV>(plogp, r, rows, v);
    const VT member_terms = groups.row_sums(v, nv);
    // H(mean) - mean H = -sum(mean ln mean) + sum_t sum(p ln p) / T; >= 0 up to rounding.
    store_group(out, r, count, member_terms * inv_t - mean_terms);
  }
  return true;
}

// Items [row0, row0 + rows) of a (t, n, c) tensor. Reads member by member so every read is
// a contiguous rows*c run.
template <class T>
bool sample_block(const T* x, int64_t t, int64_t n, int64_t c, int64_t row0, int64_t rows,
                  SampleScore score, bool normalize, double atol_d, T* out,
                  std::vector<T>& scratch, BadValue& bad) {
  if (score == SampleScore::bald && c <= vec::kGroupedMaxC)
    return with_vectors_per_row(c, vec::V<T>::lanes, [&](auto nv) {
      return bald_grouped<T, decltype(nv)::value>(x, t, n, c, row0, rows, normalize, atol_d,
                                                  out, scratch, bad);
    });
  const T atol = static_cast<T>(atol_d);
  const int64_t total = rows * c;
  scratch.assign(static_cast<size_t>(3 * total + rows), T(0));
  T* mean = scratch.data();                 // bald: running sum of member rows
  T* member = scratch.data() + total;       // renormalised member block, or x ln x terms
  T* terms = scratch.data() + 2 * total;    // x ln x of a member block / votes
  T* member_entropy = scratch.data() + 3 * total;
  const bool bald = score == SampleScore::bald;
  for (int64_t m = 0; m < t; ++m) {
    const T* block = x + (m * n + row0) * c;
    for (int64_t r = 0; r < rows; ++r) {
      const T* p = block + r * c;
      const RowStats<T> s = probs_row_stats(p, c, normalize, atol);
      if (!s.valid) {
        bad = first_bad_sample(x, t, n, c, row0, rows, normalize, atol);
        return false;
      }
      if (normalize && bald) {
        const T inv = T(1) / s.sum;
        for (int64_t j = 0; j < c; ++j) member[r * c + j] = p[j] * inv;
      }
      if (!bald) {
        // Hard vote: the first class holding the row maximum.
        int64_t arg = 0;
        for (int64_t j = 1; j < c; ++j)
          if (p[j] > p[arg]) arg = j;
        terms[r * c + arg] += T(1);
      }
    }
    if (!bald) continue;
    const T* src = normalize ? member : block;
    for (int64_t i = 0; i < total; ++i) mean[i] += src[i];
    vec::map(src, member, total, T(1), [](auto v) { return vec::xlogx(v); });
    for (int64_t r = 0; r < rows; ++r) {
      T acc = 0;
      for (int64_t j = 0; j < c; ++j) acc += member[r * c + j];
      member_entropy[r] -= acc;
    }
  }
  const T inv_t = T(1) / static_cast<T>(t);
  if (bald) {
    for (int64_t i = 0; i < total; ++i) mean[i] *= inv_t;
    vec::map(mean, terms, total, T(1), [](auto v) { return vec::xlogx(v); });
    for (int64_t r = 0; r < rows; ++r) {
      T acc = 0;
      for (int64_t j = 0; j < c; ++j) acc += terms[r * c + j];
      out[r] = -acc - member_entropy[r] * inv_t;
    }
    return true;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const T* votes = terms + r * c;
    if (score == SampleScore::variation_ratio) {
      T most = 0;
      for (int64_t j = 0; j < c; ++j) most = std::max(most, votes[j]);
      out[r] = T(1) - most / static_cast<T>(t);  // a division: exactly 0 when all agree
    } else {
      T acc = 0;
      for (int64_t j = 0; j < c; ++j) {
        if (votes[j] > 0) {
          const T share = votes[j] / static_cast<T>(t);
          acc -= share * std::log(share);
        }
      }
      out[r] = acc;
    }
  }
  return true;
}

// Every score lies in a documented range, but its formula can cross the bound by a few
// rounding errors: renormalising [22, 0] by its sum gives a top probability of 1 + 2^-53
// and a margin of -2.8e-17; a uniform row gives an entropy an ulp above ln C; rows summing
// to 1 - atol give a least confidence above 1 - 1/C. All scores leave through this one
// clamp. It is monotone, so the order of the scores (and their ties) is kept. Non-finite
// results pass unchanged: they mark rows with a subnormal sum, which the Python layer
// scores again after rescaling.
template <class T>
struct ScoreRange {
  T lo, hi;
};

template <class T>
T log_of_count(int64_t n) {
  // In double, then rounded once: the bound is the float nearest to ln n.
  return static_cast<T>(std::log(static_cast<double>(n)));
}

template <class T>
ScoreRange<T> score_range(const ScoreOptions& o, int64_t c) {
  switch (o.score) {
    case Score::least_confidence: return {T(0), T(1) - T(1) / static_cast<T>(c)};
    case Score::margin:
    case Score::ratio: return {T(0), T(1)};
    case Score::entropy: return {T(0), o.scale_entropy ? T(1) : log_of_count<T>(c)};
  }
  return {T(0), std::numeric_limits<T>::infinity()};
}

// BALD (and the KL consensus) and vote entropy are at most ln min(C, T): the mutual
// information is bounded by both H(y) <= ln C and H(member) = ln T, and the votes of T
// members fill at most min(C, T) classes. The variation ratio is at most 1 - 1/T.
template <class T>
ScoreRange<T> sample_range(SampleScore score, int64_t t, int64_t c) {
  if (score == SampleScore::variation_ratio)
    return {T(0), T(1) - T(1) / static_cast<T>(t)};
  return {T(0), log_of_count<T>(std::min(c, t))};
}

template <class T>
void clamp_scores(T* out, int64_t rows, ScoreRange<T> range) {
  using VT = typename vec::V<T>::type;
  const VT lo = vec::splat<VT>(range.lo), hi = vec::splat<VT>(range.hi);
  const T big = std::numeric_limits<T>::max();
  vec::map(out, out, rows, T(0), [&](VT r) {
    return vec::abs(r) <= big ? vec::min(vec::max(r, lo), hi) : r;
  });
}

template <class T>
bool score_rows(const T* x, int64_t rows, int64_t c, const ScoreOptions& o, T* out,
                std::vector<T>& scratch, BadValue& bad) {
  if (!score_block(x, rows, c, o, out, scratch, bad)) return false;
  clamp_scores(out, rows, score_range<T>(o, c));
  return true;
}

template <class T>
bool sample_rows(const T* x, int64_t t, int64_t n, int64_t c, int64_t row0, int64_t rows,
                 SampleScore score, bool normalize, double atol, T* out,
                 std::vector<T>& scratch, BadValue& bad) {
  if (!sample_block(x, t, n, c, row0, rows, score, normalize, atol, out, scratch, bad))
    return false;
  clamp_scores(out, rows, sample_range<T>(score, t, c));
  return true;
}

// The stream gate's utilities (Kernels::gate_utilities). Rows are grouped as for the scores
// (score_grouped_probs): the element check, row sum, maximum and runner-up are the same
// folds; the utility itself is formed in float64, as the gate has always defined it (the
// budget managers it reproduces compare float64 utilities).
template <class T>
bool gate_bad_elements(const T* row, int64_t c) {
  for (int64_t j = 0; j < c; ++j)
    if (!(row[j] >= T(0)) || !(row[j] <= T(1))) return true;
  return false;
}

// x ln x in float64 of every element of a flat block (the entropy terms), into out.
// float64 rows: the float64 vector log. float32 rows: the float32 vector log (<= 1 ulp),
// times x in float64, where the product of two floats is exact; at a fifth of the cost of
// the float64 log, which would dominate decide_many.
template <class T>
void xlogx_f64(const T* x, int64_t total, double* out) {
  using VD = typename vec::V<double>::type;
  constexpr int LD = vec::V<double>::lanes;
  if constexpr (std::is_same<T, double>::value) {
    vec::map(x, out, total, 1.0, [](VD p) { return vec::xlogx(p); });
  } else {
    using VT = typename vec::V<T>::type;
    constexpr int L = vec::V<T>::lanes;
    typedef T half __attribute__((vector_size(sizeof(T) * LD)));
    auto terms = [&](const T* p, double* dst) {
      const VT v = vec::load<VT>(p);
      T lg[L];
      vec::store(lg, v > T(0) ? vec::log(v) : v * 0);  // 0 ln 0 = 0
      for (int h = 0; h < L; h += LD)
        vec::store(dst + h, __builtin_convertvector(vec::load<half>(p + h), VD) *
                                __builtin_convertvector(vec::load<half>(lg + h), VD));
    };
    int64_t i = 0;
    for (; i + L <= total; i += L) terms(x + i, out + i);
    if (i < total) {
      T tail[L];
      double result[L];
      for (int j = 0; j < L; ++j) tail[j] = i + j < total ? x[i + j] : T(1);
      terms(tail, result);
      for (int j = 0; i + j < total; ++j) out[i + j] = result[j];
    }
  }
}

template <class T, Score score, int NV>
bool gate_grouped(const T* x, int64_t rows, int64_t c, double atol_d,
                  double* out, std::vector<double>& scratch, BadValue& bad) {
  using G = vec::RowGroups<T>;
  using VT = typename G::VT;
  using VI = typename G::VI;
  constexpr int L = G::L;
  const G& groups = G::get();
  const T atol = static_cast<T>(atol_d);
  T neutral[vec::kGroupedMaxC] = {T(1)};  // a valid row, padding a short group
  vec::GroupLoader<T> loader(c, T(0), neutral);
  const int nv = NV > 0 ? NV : loader.vectors_per_row();
  VT v[L * G::kMaxVectors], first[L], second[L], sums[L];
  for (int64_t r = 0; r < rows; r += L) {
    const int count = loader.template load<NV>(x, r, rows, v);
    const VI out_of_range = group_row_pass<T, score != Score::entropy, score == Score::margin>(
        v, nv, T(1), true, first, second, sums);
    const VT sum = groups.fold_sum(sums);
    const VI bad_sum = ~(vec::abs(sum - T(1)) <= atol);
    if (vec::any(out_of_range | bad_sum)) {
      // The first row of the group failing either check (the sum verdict is the vector's).
      for (int l = 0; l < count; ++l) {
        if (bad_sum[l] || gate_bad_elements(x + (r + l) * c, c)) {
          bad.row = r + l;
          return false;
        }
      }
    }
    if (score == Score::least_confidence) {
      const VT top = groups.fold_max(first);
      for (int l = 0; l < count; ++l) out[r + l] = 1.0 - static_cast<double>(top[l]);
    } else if (score == Score::margin) {
      groups.fold_top2(first, second);
      for (int l = 0; l < count; ++l)
        out[r + l] = 1.0 - (static_cast<double>(first[0][l]) - static_cast<double>(second[0][l]));
    }
  }
  if (score != Score::entropy) return true;
  // Entropy: the x ln x terms in float64 over the flat block in full vectors, then each
  // row's sum by the grouped fold over those terms.
  using GD = vec::RowGroups<double>;
  using VD = typename GD::VT;
  constexpr int LD = GD::L;
  const int64_t total = rows * c;
  const int64_t nvd = (c + LD - 1) / LD;
  scratch.resize(static_cast<size_t>(total + nvd * LD));
  xlogx_f64(x, total, scratch.data());
  const double zeros[vec::kGroupedMaxC] = {};
  vec::GroupLoader<double> terms(c, 0.0, zeros, false);
  const GD& dgroups = GD::get();
  const double inv_log_c = 1.0 / std::log(static_cast<double>(c));
  VD w[LD * GD::kMaxVectors];
  for (int64_t r = 0; r < rows; r += LD) {
    const int count = terms.load(scratch.data(), r, rows, w);
    const VD h = -dgroups.row_sums(w, static_cast<int>(nvd));
    for (int l = 0; l < count; ++l) out[r + l] = h[l] * inv_log_c;
  }
  return true;
}

// Wide rows (c > kGroupedMaxC): one row at a time, lanes across the row.
template <class T>
bool gate_wide(const T* x, int64_t rows, int64_t c, Score score, double atol_d, double* out,
               std::vector<double>& scratch, BadValue& bad) {
  using VT = typename vec::V<T>::type;
  using VI = typename vec::V<T>::itype;
  using VD = typename vec::V<double>::type;
  const T inf = std::numeric_limits<T>::infinity();
  const double inv_log_c = 1.0 / std::log(static_cast<double>(c));
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * c;
    VT sum = vec::splat<VT>(T(0)), first = vec::splat<VT>(-inf), second = first;
    VI invalid = vec::splat<VI>(0);
    for_row_vectors(row, c, T(0), [&](VT p) {
      invalid |= ~(p >= T(0)) | ~(p <= T(1));
      sum += p;
      second = vec::max(second, vec::min(first, p));
      first = vec::max(first, p);
    });
    if (vec::any(invalid) || !(std::fabs(lane_sum<T>(sum) - T(1)) <= static_cast<T>(atol_d))) {
      bad.row = r;
      return false;
    }
    T top, runner_up;
    lane_top2<T>(first, second, top, runner_up);
    if (score == Score::least_confidence) {
      out[r] = 1.0 - static_cast<double>(top);
    } else if (score == Score::margin) {
      out[r] = 1.0 - (static_cast<double>(top) - static_cast<double>(runner_up));
    } else {
      // The grouped path's terms (xlogx_f64), summed in vector lanes.
      scratch.resize(static_cast<size_t>(c));
      xlogx_f64(row, c, scratch.data());
      VD acc = vec::splat<VD>(0.0);
      for_row_vectors(scratch.data(), c, 0.0, [&](VD t) { acc += t; });
      out[r] = -lane_sum<double>(acc) * inv_log_c;
    }
  }
  return true;
}

template <class T>
bool gate_utilities(const T* x, int64_t rows, int64_t c, Score score, double atol,
                    double* out, std::vector<double>& scratch, BadValue& bad) {
  if (c > vec::kGroupedMaxC) return gate_wide(x, rows, c, score, atol, out, scratch, bad);
  return with_vectors_per_row(c, vec::V<T>::lanes, [&](auto nv) {
    constexpr int NV = decltype(nv)::value;
    switch (score) {
      case Score::margin: return gate_grouped<T, Score::margin, NV>(x, rows, c, atol, out,
                                                                     scratch, bad);
      case Score::entropy: return gate_grouped<T, Score::entropy, NV>(x, rows, c, atol, out,
                                                                       scratch, bad);
      default: return gate_grouped<T, Score::least_confidence, NV>(x, rows, c, atol, out,
                                                                    scratch, bad);
    }
  });
}

}  // namespace

extern const Kernels<float> table_f32;
extern const Kernels<double> table_f64;
const Kernels<float> table_f32 = {&score_rows<float>, &sample_rows<float>,
                                  &sq_distances<float>, &nearest_centers<float>,
                                  &gate_utilities<float>};
const Kernels<double> table_f64 = {&score_rows<double>, &sample_rows<double>,
                                   &sq_distances<double>, &nearest_centers<double>,
                                   &gate_utilities<double>};

}  // namespace ALCORE_ISA
}  // namespace alcore
