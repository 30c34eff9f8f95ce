// Vectorised natural logarithm and exponential (Cephes-style range reduction and
// polynomials) on GCC/Clang vector extensions. The vector width comes from
// ALCORE_VEC_BYTES, set per instruction-set variant by CMake, so one source yields the
// SSE2, AVX2 and AVX-512 versions. Every element of an array goes through the same vector
// code (tails are padded), so a value's result never depends on its position.
#pragma once

#include <cfloat>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <type_traits>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif


#if !defined(ALCORE_VEC_BYTES) || !defined(ALCORE_ISA)
#error "ALCORE_VEC_BYTES and ALCORE_ISA are set per instruction-set variant by CMake"
#endif

// Every definition here lives in the per-variant namespace ALCORE_ISA: the same inline
// functions and classes compiled for different vector widths must not be merged by the
// linker (that would break the one-definition rule and mix AVX-512 code with SSE layouts).
// Hot helpers are forced inline: called from inside tight loops, an out-of-line call costs
// more than the helper and blocks register allocation across iterations.
#define ALCORE_INLINE inline __attribute__((always_inline))

namespace alcore {
namespace ALCORE_ISA {
namespace vec {

template <class T>
struct V;

template <>
struct V<float> {
  typedef float type __attribute__((vector_size(ALCORE_VEC_BYTES)));
  typedef int32_t itype __attribute__((vector_size(ALCORE_VEC_BYTES)));
  typedef uint32_t utype __attribute__((vector_size(ALCORE_VEC_BYTES)));
  static constexpr int lanes = ALCORE_VEC_BYTES / 4;
};

template <>
struct V<double> {
  typedef double type __attribute__((vector_size(ALCORE_VEC_BYTES)));
  typedef int64_t itype __attribute__((vector_size(ALCORE_VEC_BYTES)));
  typedef uint64_t utype __attribute__((vector_size(ALCORE_VEC_BYTES)));
  static constexpr int lanes = ALCORE_VEC_BYTES / 8;
};

using vf = V<float>::type;
using vfi = V<float>::itype;
using vd = V<double>::type;
using vdi = V<double>::itype;

template <class VT, class S>
ALCORE_INLINE VT splat(S s) {
  VT v;
  using Element = std::remove_reference_t<decltype(v[0])>;
  for (unsigned i = 0; i < sizeof(VT) / sizeof(Element); ++i) v[i] = static_cast<Element>(s);
  return v;
}

template <class VT, class T>
ALCORE_INLINE VT load(const T* p) {
  VT v;
  std::memcpy(&v, p, sizeof(VT));
  return v;
}

template <class VT, class T>
ALCORE_INLINE void store(T* p, VT v) {
  std::memcpy(p, &v, sizeof(VT));
}

#if ALCORE_VEC_BYTES == 64 && defined(__AVX512F__)
// AVX-512, float: ln x = e ln 2 + ln m with m = x / 2^e in [1, 2) (getexp/getmant, which
// also handle subnormals), ln m = -ln(inv_i) + log1p(m * inv_i - 1) where inv_i ~ 1/m is
// looked up by the top 5 mantissa bits in a 32-entry table held in two registers
// (vpermt2ps). |m * inv_i - 1| < 1/63, so four terms of log1p give ~1e-10; the table
// entries carry one rounding (~3e-8 absolute). About half the instructions of the
// polynomial-only version below, which matters for entropy and BALD (one log per element).
struct LogTable {
  __m512 inv_lo, inv_hi, neg_log_lo, neg_log_hi;
  LogTable() {
    alignas(64) float inv[32], neg_log[32];
    for (int i = 0; i < 32; ++i) {
      const double mid = 1.0 + (i + 0.5) / 32.0;
      inv[i] = static_cast<float>(1.0 / mid);
      neg_log[i] = static_cast<float>(-std::log(static_cast<double>(inv[i])));
    }
    inv_lo = _mm512_load_ps(inv);
    inv_hi = _mm512_load_ps(inv + 16);
    neg_log_lo = _mm512_load_ps(neg_log);
    neg_log_hi = _mm512_load_ps(neg_log + 16);
  }
  static const LogTable& get() {
    static const LogTable table;
    return table;
  }
};

ALCORE_INLINE vf log(vf x) {
  const LogTable& t = LogTable::get();
  const __m512 v = (__m512)x;
  const __m512 e = _mm512_getexp_ps(v);
  const __m512 m = _mm512_getmant_ps(v, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src);
  const __m512i index = _mm512_srli_epi32(_mm512_castps_si512(m), 18);  // permute uses 5 bits
  const __m512 inv = _mm512_permutex2var_ps(t.inv_lo, index, t.inv_hi);
  const __m512 neg_log = _mm512_permutex2var_ps(t.neg_log_lo, index, t.neg_log_hi);
  const __m512 r = _mm512_fmsub_ps(m, inv, _mm512_set1_ps(1.0f));
  __m512 q = _mm512_fmadd_ps(r, _mm512_set1_ps(-0.25f), _mm512_set1_ps(1.0f / 3.0f));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(-0.5f));
  const __m512 log1p = _mm512_fmadd_ps(q, _mm512_mul_ps(r, r), r);
  const __m512 high = _mm512_fmadd_ps(e, _mm512_set1_ps(0.693359375f), neg_log);
  const __m512 low = _mm512_fmadd_ps(e, _mm512_set1_ps(-2.12194440e-4f), log1p);
  return (vf)_mm512_add_ps(high, low);
}
#else
// ln(x) for x > 0 (subnormals included): x = 2^e m with m in [sqrt(1/2), sqrt(2)), and with
// f = m - 1 (exact) and s = f / (f + 2), ln m = 2 atanh(s) = f - s f + 2 (s^3/3 + s^5/5 +
// s^7/7 + s^9/9), the series cut where |s| <= 0.172 leaves 2e-9. One correctly rounded
// division replaces the degree-9 polynomial of the Cephes form (1.6x the throughput on
// AVX2); e ln 2 is one fma with ln 2 rounded to float (its 2.7e-9 relative error is 0.05
// ulp of the result). Max error over every float in [FLT_MIN, 1]: 0.98 ulp of the float
// nearest the exact value (the Cephes form: 0.82). x <= 0 or NaN gives an unspecified finite
// value: callers mask those lanes.
ALCORE_INLINE vf log(vf x) {
  using vfu = V<float>::utype;
  const vfi small = x < FLT_MIN;
  x = small ? x * 8388608.0f : x;  // 2^23 brings subnormals into the normal range
  // Subtracting sqrt(1/2)'s bits moves the exponent boundary there; the shift keeps every
  // high bit (sign included), so the rebuilt m lies in [sqrt(1/2), sqrt(2)) for any input.
  const vfu t = (vfu)x - 0x3f3504f3u;
  vfi e = (vfi)t >> 23;
  e += small & -23;
  const vf m = (vf)((t & 0x7fffffu) + 0x3f3504f3u);
  const vf fe = __builtin_convertvector(e, vf);
  const vf f = m - 1.0f;
  const vf s = f / (f + 2.0f);
  const vf s2 = s * s;
  vf p = s2 * (2.0f / 9.0f) + (2.0f / 7.0f);
  p = p * s2 + 0.4f;
  p = p * s2 + (2.0f / 3.0f);
  p = p * (s2 * s);
  // f - (s f - p): s f - p ~ f^2 / 2 in one rounding, so the result is f's to within an ulp.
  return fe * 0.693147182464599609375f + (f - (s * f - p));
}
#endif

// e^x; results below the smallest normal float flush to 0.
ALCORE_INLINE vf exp(vf x) {
  const vfi under = x < -87.33654475f;
  x = x > 88.3762626647949f ? splat<vf>(88.3762626647949f) : x;
  x = under ? splat<vf>(0.0f) : x;
  const vf t = x * 1.44269504088896341f + 0.5f;
  vfi n = __builtin_convertvector(t, vfi);  // truncates toward zero
  vf fn = __builtin_convertvector(n, vf);
  const vfi over = fn > t;                  // floor for negative t
  n = over ? n - 1 : n;
  fn = over ? fn - 1.0f : fn;
  x = x - fn * 0.693359375f;
  x = x - fn * -2.12194440e-4f;
  const vf z = x * x;
  vf y = splat<vf>(1.9875691500e-4f);
  y = y * x + 1.3981999507e-3f;
  y = y * x + 8.3334519073e-3f;
  y = y * x + 4.1665795894e-2f;
  y = y * x + 1.6666665459e-1f;
  y = y * x + 5.0000001201e-1f;
  y = y * z + x + 1.0f;
  const vf scale = (vf)((n + 127) << 23);
  y = y * scale;
  return under ? splat<vf>(0.0f) : y;
}

ALCORE_INLINE vd log(vd x) {
  const vdi small = x < DBL_MIN;
  x = small ? x * 18014398509481984.0 : x;  // 2^54
  vdi bits = (vdi)x;
  // A logical shift (the field is masked anyway): AVX2 has no 64-bit arithmetic shift.
  vdi e = (vdi)(((V<double>::utype)bits >> 52) & 0x7ff) - 1022;
  e = small ? e - 54 : e;
  bits = (bits & (int64_t)0x800fffffffffffffULL) | (int64_t)0x3fe0000000000000ULL;
  vd m = (vd)bits;
  const vdi below = m < 0.70710678118654752440;
  e = below ? e - 1 : e;
  m = below ? m + m - 1.0 : m - 1.0;
  // (double)e without an int64 -> double conversion (AVX2 has none: it would run lane by
  // lane): 1.5 * 2^52 + e has e in its low mantissa bits for |e| < 2^51, exactly.
  const vd fe = (vd)(e + (int64_t)0x4338000000000000LL) - 6755399441055744.0;
  const vd z = m * m;
  vd p = splat<vd>(1.01875663804580931796e-4);
  p = p * m + 4.97494994976747001425e-1;
  p = p * m + 4.70579119878881725854e0;
  p = p * m + 1.44989225341610930846e1;
  p = p * m + 1.79368678507819816313e1;
  p = p * m + 7.70838733755885391666e0;
  vd q = m + 1.12873587189167450590e1;
  q = q * m + 4.52279145837532221105e1;
  q = q * m + 8.29875266912776603211e1;
  q = q * m + 7.11544750618563894466e1;
  q = q * m + 2.31251620126765340583e1;
  vd y = m * (z * p / q);
  y = y + fe * -2.121944400546905827679e-4;
  y = y - 0.5 * z;
  return m + y + fe * 0.693359375;
}

ALCORE_INLINE vd exp(vd x) {
  const vdi under = x < -708.39641853226408;
  x = x > 709.78271289338397 ? splat<vd>(709.78271289338397) : x;
  x = under ? splat<vd>(0.0) : x;
  const vd t = x * 1.4426950408889634073599 + 0.5;
  vdi n = __builtin_convertvector(t, vdi);
  vd fn = __builtin_convertvector(n, vd);
  const vdi over = fn > t;
  n = over ? n - 1 : n;
  fn = over ? fn - 1.0 : fn;
  x = x - fn * 6.93145751953125e-1;
  x = x - fn * 1.42860682030941723212e-6;
  const vd xx = x * x;
  vd p = splat<vd>(1.26177193074810590878e-4);
  p = p * xx + 3.02994407707441961300e-2;
  p = p * xx + 9.99999999999999999910e-1;
  p = p * x;
  vd q = splat<vd>(3.00198505138664455042e-6);
  q = q * xx + 2.52448340349684104192e-3;
  q = q * xx + 2.27265548208155028766e-1;
  q = q * xx + 2.00000000000000000009e0;
  vd r = p / (q - p);
  r = 1.0 + 2.0 * r;
  // 2^n in two factors so that n = 1024 (x near the overflow bound) stays representable.
  const vdi half = n >> 1;
  const vd s1 = (vd)((half + 1023) << 52);
  const vd s2 = (vd)((n - half + 1023) << 52);
  r = r * s1 * s2;
  return under ? splat<vd>(0.0) : r;
}

template <class VT>
ALCORE_INLINE VT max(VT a, VT b) {
  return a > b ? a : b;
}

template <class VT>
ALCORE_INLINE VT min(VT a, VT b) {
  return a < b ? a : b;
}

template <class VT>
ALCORE_INLINE VT abs(VT a) {
  return a < 0 ? -a : a;
}

// True if any lane of a comparison mask is set. OR-folds halves, which compiles to a few
// vector instructions instead of one extract and branch per lane.
template <class VI>
ALCORE_INLINE bool any(VI mask) {
  constexpr unsigned n = sizeof(VI) / sizeof(int64_t);
  int64_t words[n];
  std::memcpy(words, &mask, sizeof(VI));
  int64_t acc = 0;
  for (unsigned i = 0; i < n; ++i) acc |= words[i];
  return acc != 0;
}

// The element range check in one unsigned max per vector: the bits of p + 0 (which turns
// -0 into +0) read as unsigned are, for p in [0, ceiling], at most those of ceiling, and
// for NaN, infinities, negative values and values above ceiling larger.
template <class VT>
ALCORE_INLINE auto range_key(VT p) {
  using Element = std::remove_reference_t<decltype(p[0])>;
  return (typename V<Element>::utype)(p + Element(0));
}

// x * ln(x), with 0 * ln(0) = 0.
template <class VT>
ALCORE_INLINE VT xlogx(VT x) {
  const VT l = log(x);
  return x > 0 ? x * l : x * 0;
}

#if ALCORE_VEC_BYTES == 32 && defined(__AVX2__)
// AVX2, float: the logarithm behind x ln x (entropy and BALD spend one per element). The
// polynomial log above pays a division per vector, the slowest instruction in it; here a
// table replaces it. As in log(): x = 2^e m with m in [sqrt(1/2), sqrt(2)) (e ln 2 exact
// to 0.05 ulp of the result), then ln m = -ln(inv_i) + log1p(m * inv_i - 1) with inv_i ~ 1/m
// looked up by the top 3 bits of m's field: 8 entries, one register, one vpermps. Each
// inv_i is the float nearest the midpoint of its interval whose -ln(inv_i) is within 2e-12
// of a float (searched offline), so the table adds no rounding; the interval holding 1 has
// inv = 1 and ln = 0, so r = m - 1 is exact and ln x keeps its relative accuracy near 1.
// |r| < 0.0568, where the degree-5 minimax log1p errs by < 2.6e-10 absolute. Measured over
// every normal float: within 1.23 ulp of ln x, and x ln x within 1.65 ulp (the polynomial
// log: 1.86); tests/test_scores.py::test_entropy_terms_are_accurate_for_every_float32_in_range
// holds every variant's terms to its measured error.
// Subnormal x give a finite ln x off by up to 16 (so x ln x off by < 2e-37, far below any
// entropy's error bound), zero gives a finite value times 0, and x <= 0, NaN or inf give
// some value: callers check the range of every element.
ALCORE_INLINE vf log_for_xlogx(vf x) {
  const __m256i bits = _mm256_castps_si256((__m256)x);
  const __m256i t = _mm256_sub_epi32(bits, _mm256_set1_epi32(0x3f3504f3));
  const __m256 fe = _mm256_cvtepi32_ps(_mm256_srai_epi32(t, 23));
  const __m256 m = _mm256_castsi256_ps(_mm256_add_epi32(
      _mm256_and_si256(t, _mm256_set1_epi32(0x7fffff)), _mm256_set1_epi32(0x3f3504f3)));
  const __m256i index = _mm256_srli_epi32(t, 20);  // vpermps reads the low 3 bits
  const __m256 inv = _mm256_permutevar8x32_ps(
      _mm256_setr_ps(0x1.5a9d2ep+0f, 0x1.3fa98p+0f, 0x1.286f28p+0f, 0x1.1483e2p+0f, 1.0f,
                     0x1.d0bf5cp-1f, 0x1.a1677ep-1f, 0x1.7abe8ap-1f), index);
  const __m256 neg_log_inv = _mm256_permutevar8x32_ps(
      _mm256_setr_ps(-0x1.364e9ep-2f, -0x1.c6d598p-3f, -0x1.2c55b4p-3f, -0x1.3bc0dep-4f, 0.0f,
                     0x1.8c9e04p-4f, 0x1.a258p-3f, 0x1.34b2cep-2f), index);
  const __m256 r = _mm256_fmsub_ps(m, inv, _mm256_set1_ps(1.0f));
  __m256 q = _mm256_fmadd_ps(r, _mm256_set1_ps(0x1.9b2c8p-3f), _mm256_set1_ps(-0x1.00c35ep-2f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(0x1.555512p-2f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(-0x1.ffffcep-2f));
  const __m256 log1p = _mm256_fmadd_ps(q, _mm256_mul_ps(r, r), r);
  return (vf)_mm256_fmadd_ps(fe, _mm256_set1_ps(0.693147182464599609375f),
                             _mm256_add_ps(neg_log_inv, log1p));
}

// No mask for x = 0: its logarithm is finite, so the product is already (-)0.
ALCORE_INLINE vf xlogx(vf x) { return x * log_for_xlogx(x); }
#endif

// out[i] = f(in[i]) for i < n; the tail runs through the same vector code on a padded copy.
template <class T, class F>
ALCORE_INLINE void map(const T* in, T* out, int64_t n, T pad, F f) {
  using VT = typename V<T>::type;
  constexpr int L = V<T>::lanes;
  // One prefetch per 64-byte line, ~4 KB ahead (the first touch of a large input), and
  // the loop unrolled to a line: its control was a tenth of a grouped entropy's
  // instructions with 32-byte vectors.
  constexpr int kPerLine = sizeof(VT) < 64 ? static_cast<int>(64 / sizeof(VT)) : 1;
  int64_t i = 0;
  for (; i + kPerLine * L <= n; i += kPerLine * L) {
    __builtin_prefetch(in + i + 1024, 0, 0);
    for (int u = 0; u < kPerLine; ++u) store(out + i + u * L, f(load<VT>(in + i + u * L)));
  }
  for (; i + L <= n; i += L) store(out + i, f(load<VT>(in + i)));
  if (i < n) {
    T tmp[L];
    for (int j = 0; j < L; ++j) tmp[j] = i + j < n ? in[i + j] : pad;
    const VT r = f(load<VT>(tmp));
    store(tmp, r);
    for (int j = 0; i + j < n; ++j) out[i + j] = tmp[j];
  }
}

}  // namespace vec
}  // namespace ALCORE_ISA
}  // namespace alcore
