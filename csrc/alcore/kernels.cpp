// Block kernels for one instruction-set variant. CMake compiles this file once per variant
// with ALCORE_ISA naming the namespace and ALCORE_VEC_BYTES the vector width.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "alcore/kernels.hpp"
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

// One pass over a probability row: validity, sum and the two largest values.
template <class T>
struct RowStats {
  T sum, first, second;
  bool valid;
};

template <class T>
inline RowStats<T> probs_row_stats(const T* p, int64_t c, bool normalize, T atol) {
  const T ceiling = value_ceiling<T>(normalize);
  T sum = 0, first = -std::numeric_limits<T>::infinity(), second = first;
  bool bad = false;
  for (int64_t j = 0; j < c; ++j) {
    const T v = p[j];
    // NaN fails both comparisons, so this one test covers NaN, inf, < 0 and > ceiling.
    bad |= !(v >= T(0)) | !(v <= ceiling);
    sum += v;
    second = std::max(second, std::min(first, v));
    first = std::max(first, v);
  }
  const bool sum_ok = normalize ? sum > T(0) : std::fabs(sum - T(1)) <= atol;
  return {sum, first, second, !bad && sum_ok};
}

template <class T>
inline T top2_score(Score score, T first, T second, T inv_sum) {
  switch (score) {
    case Score::least_confidence: return T(1) - first * inv_sum;
    case Score::margin: return T(1) - (first - second) * inv_sum;
    case Score::ratio: return second / first;
    default: return T(0);
  }
}

template <class T>
bool score_probs(const T* x, int64_t rows, int64_t c, const ScoreOptions& o, T* out,
                 std::vector<T>& scratch, BadValue& bad) {
  const T atol = static_cast<T>(o.atol);
  if (o.score != Score::entropy) {
    for (int64_t r = 0; r < rows; ++r) {
      const RowStats<T> s = probs_row_stats(x + r * c, c, o.normalize, atol);
      if (!s.valid) {
        bad = describe_probs_row(x + r * c, c, o.normalize, o.atol);
        bad.row = r;
        return false;
      }
      out[r] = top2_score(o.score, s.first, s.second, o.normalize ? T(1) / s.sum : T(1));
    }
    return true;
  }
  // Entropy: validate (and renormalise into scratch if asked), then x ln x over the whole
  // block in vector code, then per-row sums.
  const int64_t total = rows * c;
  scratch.resize(static_cast<size_t>(2 * total));
  T* normalized = scratch.data();
  T* terms = scratch.data() + total;
  for (int64_t r = 0; r < rows; ++r) {
    const T* p = x + r * c;
    const RowStats<T> s = probs_row_stats(p, c, o.normalize, atol);
    if (!s.valid) {
      bad = describe_probs_row(p, c, o.normalize, o.atol);
      bad.row = r;
      return false;
    }
    if (o.normalize) {
      const T inv = T(1) / s.sum;
      for (int64_t j = 0; j < c; ++j) normalized[r * c + j] = p[j] * inv;
    }
  }
  const T* src = o.normalize ? normalized : x;
  vec::map(src, terms, total, T(1), [](auto v) { return vec::xlogx(v); });
  const T scale = o.scale_entropy ? T(-1) / std::log(static_cast<T>(c)) : T(-1);
  for (int64_t r = 0; r < rows; ++r) {
    T acc = 0;
    for (int64_t j = 0; j < c; ++j) acc += terms[r * c + j];
    out[r] = std::max(T(0), acc * scale);
  }
  return true;
}

// Logits: softmax statistics per row without forming probabilities. With d = z - max and
// e = exp(d), s = sum(e): p_max = 1/s, p_second = e_second/s and
// H = ln s - sum(e * d) / s.
template <class T>
bool score_logits(const T* x, int64_t rows, int64_t c, const ScoreOptions& o, T* out,
                  std::vector<T>& scratch, BadValue& bad) {
  const int64_t total = rows * c;
  scratch.resize(static_cast<size_t>(2 * total + rows));
  T* shifted = scratch.data();
  T* expd = scratch.data() + total;
  T* second_gap = scratch.data() + 2 * total;
  for (int64_t r = 0; r < rows; ++r) {
    const T* z = x + r * c;
    T first = -std::numeric_limits<T>::infinity(), second = first;
    bool bad_row = false;
    for (int64_t j = 0; j < c; ++j) {
      const T v = z[j];
      bad_row |= !(std::fabs(v) <= std::numeric_limits<T>::max());
      second = std::max(second, std::min(first, v));
      first = std::max(first, v);
    }
    if (bad_row) {
      bad = describe_logits_row(z, c);
      bad.row = r;
      return false;
    }
    for (int64_t j = 0; j < c; ++j) shifted[r * c + j] = z[j] - first;
    second_gap[r] = second - first;
  }
  vec::map(shifted, expd, total, T(0), [](auto v) { return vec::exp(v); });
  const T entropy_scale = o.scale_entropy ? T(1) / std::log(static_cast<T>(c)) : T(1);
  for (int64_t r = 0; r < rows; ++r) {
    const T* e = expd + r * c;
    const T* d = shifted + r * c;
    T sum = 0;
    for (int64_t j = 0; j < c; ++j) sum += e[j];
    const T inv = T(1) / sum;
    switch (o.score) {
      case Score::least_confidence: out[r] = T(1) - inv; break;
      case Score::margin: out[r] = T(1) - (T(1) - std::exp(second_gap[r])) * inv; break;
      case Score::ratio: out[r] = std::exp(second_gap[r]); break;
      case Score::entropy: {
        T weighted = 0;
        // e == 0 where d underflowed (possibly to -inf): its term is 0, not 0 * -inf.
        for (int64_t j = 0; j < c; ++j) weighted += e[j] > T(0) ? e[j] * d[j] : T(0);
        out[r] = std::max(T(0), (std::log(sum) - weighted * inv) * entropy_scale);
        break;
      }
    }
  }
  return true;
}

template <class T>
bool score_rows(const T* x, int64_t rows, int64_t c, const ScoreOptions& o, T* out,
                std::vector<T>& scratch, BadValue& bad) {
  return o.logits ? score_logits(x, rows, c, o, out, scratch, bad)
                  : score_probs(x, rows, c, o, out, scratch, bad);
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

// Items [row0, row0 + rows) of a (t, n, c) tensor. Reads member by member so every read is
// a contiguous rows*c run.
template <class T>
bool sample_rows(const T* x, int64_t t, int64_t n, int64_t c, int64_t row0, int64_t rows,
                 SampleScore score, bool normalize, double atol_d, T* out,
                 std::vector<T>& scratch, BadValue& bad) {
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
      // Mutual information is >= 0; rounding can leave a tiny negative.
      out[r] = std::max(T(0), -acc - member_entropy[r] * inv_t);
    }
    return true;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const T* votes = terms + r * c;
    if (score == SampleScore::variation_ratio) {
      T most = 0;
      for (int64_t j = 0; j < c; ++j) most = std::max(most, votes[j]);
      out[r] = T(1) - most * inv_t;
    } else {
      T acc = 0;
      for (int64_t j = 0; j < c; ++j) {
        if (votes[j] > 0) {
          const T share = votes[j] * inv_t;
          acc -= share * std::log(share);
        }
      }
      out[r] = std::max(T(0), acc);
    }
  }
  return true;
}

}  // namespace

extern const Kernels<float> table_f32;
extern const Kernels<double> table_f64;
const Kernels<float> table_f32 = {&score_rows<float>, &sample_rows<float>};
const Kernels<double> table_f64 = {&score_rows<double>, &sample_rows<double>};

}  // namespace ALCORE_ISA
}  // namespace alcore
