// Reductions of many short rows at once. A group of `lanes` rows is loaded as one vector
// (or a few) per row; a transposition tree of two-source shuffles then folds the group so
// that lane i of the result holds row i's reduction. Per row this costs a handful of
// vector instructions, where a scalar loop over a 10-class row costs dozens, and where a
// gather per column (one lane per row) is microcoded and slow on several CPUs.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "alcore/vecmath.hpp"

// Per-variant namespace, as in vecmath.hpp.
namespace alcore {
namespace ALCORE_ISA {
namespace vec {

// Rows of at most this many columns take the grouped path.
constexpr int64_t kGroupedMaxC = 32;

template <class T>
struct RowGroups {
  using VT = typename V<T>::type;
  using VI = typename V<T>::itype;
  static constexpr int L = V<T>::lanes;
  static constexpr int kMaxVectors = (kGroupedMaxC + L - 1) / L;  // vectors per row, at most
  static constexpr int kLevels = L == 16 ? 4 : L == 8 ? 3 : L == 4 ? 2 : L == 2 ? 1 : 0;

  // Shuffle masks of each tree level: `low` gathers the first half of every row's partials
  // from a pair of vectors, `high` the second half. Compile-time constants, so each shuffle
  // compiles to the one or two instructions that implement it; a mask held in memory makes
  // every shuffle a generic two-source permute (two permutes and a blend on AVX2, which
  // cost more than the rest of a row's work).
  struct Masks {
    int low[kLevels > 0 ? kLevels : 1][L];
    int high[kLevels > 0 ? kLevels : 1][L];
  };
  static constexpr Masks make_masks() {
    Masks m{};
    int g = L;  // partials per row in each input vector of this level
    for (int k = 0; k < kLevels; ++k, g /= 2) {
      const int rows_in = L / g;
      for (int q = 0; q < 2 * rows_in; ++q) {
        const int base = (q < rows_in ? 0 : L) + (q % rows_in) * g;
        for (int h = 0; h < g / 2; ++h) {
          m.low[k][q * (g / 2) + h] = base + h;
          m.high[k][q * (g / 2) + h] = base + g / 2 + h;
        }
      }
    }
    return m;
  }
  static constexpr Masks kMasks = make_masks();

  template <int K, std::size_t... I>
  static ALCORE_INLINE VT low(VT a, VT b, std::index_sequence<I...>) {
    return __builtin_shuffle(a, b, VI{kMasks.low[K][I]...});
  }
  template <int K, std::size_t... I>
  static ALCORE_INLINE VT high(VT a, VT b, std::index_sequence<I...>) {
    return __builtin_shuffle(a, b, VI{kMasks.high[K][I]...});
  }

  template <int K, int COUNT, class Combine>
  static ALCORE_INLINE void fold_level(VT* v, Combine combine) {
    if constexpr (COUNT > 1) {
      constexpr auto lanes = std::make_index_sequence<L>{};
      for (int i = 0; i < COUNT / 2; ++i) {
        const VT a = v[2 * i], b = v[2 * i + 1];
        v[i] = combine(low<K>(a, b, lanes), high<K>(a, b, lanes));
      }
      fold_level<K + 1, COUNT / 2>(v, combine);
    }
  }

  template <int K, int COUNT>
  static ALCORE_INLINE void top2_level(VT* first, VT* second) {
    if constexpr (COUNT > 1) {
      constexpr auto lanes = std::make_index_sequence<L>{};
      for (int i = 0; i < COUNT / 2; ++i) {
        const VT fa = first[2 * i], fb = first[2 * i + 1];
        const VT sa = second[2 * i], sb = second[2 * i + 1];
        const VT f0 = low<K>(fa, fb, lanes), f1 = high<K>(fa, fb, lanes);
        const VT s0 = low<K>(sa, sb, lanes), s1 = high<K>(sa, sb, lanes);
        first[i] = max(f0, f1);
        second[i] = max(min(f0, f1), max(s0, s1));
      }
      top2_level<K + 1, COUNT / 2>(first, second);
    }
  }

  // Stateless; kept as an object so call sites read groups.fold_sum(...).
  static const RowGroups& get() {
    static const RowGroups groups;
    return groups;
  }

  // v[0..L) hold one row each; returns lane i = combine over row i's lanes. Destroys v.
  template <class Combine>
  ALCORE_INLINE VT fold(VT* v, Combine combine) const {
    fold_level<0, L>(v, combine);
    return v[0];
  }

  ALCORE_INLINE VT fold_sum(VT* v) const {
    return fold(v, [](VT a, VT b) { return a + b; });
  }

  // Per row of a group loaded by GroupLoader (nv vectors per row): the sum of its lanes.
  ALCORE_INLINE VT row_sums(const VT* v, int nv) const {
    VT partial[L];
    for (int l = 0; l < L; ++l) {
      VT acc = v[l * nv];
      for (int k = 1; k < nv; ++k) acc += v[l * nv + k];
      partial[l] = acc;
    }
    return fold_sum(partial);
  }

  ALCORE_INLINE VT fold_max(VT* v) const {
    return fold(v, [](VT a, VT b) { return max(a, b); });
  }

  // Per row: the largest and second-largest value (equal when the maximum repeats).
  // first[i], second[i] hold row i's lane-wise candidates. Destroys both arrays.
  ALCORE_INLINE void fold_top2(VT* first, VT* second) const {
    top2_level<0, L>(first, second);
  }
};

// Loads groups of L rows of c <= kGroupedMaxC columns as row vectors: row r of the group is
// vectors [r * nv, (r + 1) * nv), lanes past column c set to `fill`. Rows past the end of
// the data (a short last group) are copies of `neutral_row`. With prefetch, each load asks
// for the group four groups ahead; without it (data just written or read, in cache) the
// loop issuing those hints is a tenth of the instructions of a grouped entropy.
template <class T>
class GroupLoader {
 public:
  using VT = typename V<T>::type;
  using VI = typename V<T>::itype;
  static constexpr int L = V<T>::lanes;

  GroupLoader(int64_t c, T fill, const T* neutral_row, bool prefetch = true)
      : c_(c), nv_(static_cast<int>((c + L - 1) / L)), fill_(fill), neutral_(neutral_row),
        prefetch_(prefetch) {
    for (int l = 0; l < L; ++l) tail_mask_[l] = l < c - (nv_ - 1) * L ? -1 : 0;
  }

  int vectors_per_row() const { return nv_; }

  // Rows [r, r + L) of x (rows in total); returns how many are real. NV > 0 states the
  // vectors per row at compile time, so the loops unroll and stay in registers.
  template <int NV = 0>
  int load(const T* x, int64_t r, int64_t rows, VT* out) {
    const int nv_ = NV > 0 ? NV : this->nv_;
    const int count = static_cast<int>(std::min<int64_t>(L, rows - r));
    // Whole-vector loads read up to L - 1 elements past a row: fine inside x, not past it.
    const bool direct = (r + L - 1) * c_ + nv_ * L <= rows * c_;
    const T* src = x + r * c_;
    // Ask for the group four groups ahead: the hardware prefetchers alone leave a single
    // thread short of memory bandwidth here.
    const int64_t group_elements = L * c_;
    if (prefetch_)
      for (int64_t e = 0; e < group_elements; e += 64 / sizeof(T))
        __builtin_prefetch(src + 4 * group_elements + e, 0, 0);
    if (!direct) {
      // A short last group (or a single row, as the stream gate's decide_one): built lane by
      // lane, the same vectors the direct loads give, without copies through memory (small
      // copies become library calls, and their stores stall the vector loads after them).
      for (int l = 0; l < L; ++l) {
        if (l > count) {  // every further row is the neutral one, already built
          for (int v = 0; v < nv_; ++v) out[l * nv_ + v] = out[count * nv_ + v];
          continue;
        }
        const T* row = l < count ? src + l * c_ : neutral_;
        for (int v = 0; v < nv_; ++v) {
          VT t = splat<VT>(fill_);
          for (int j = 0; j < L && v * L + j < c_; ++j) t[j] = row[v * L + j];
          out[l * nv_ + v] = t;
        }
      }
      return count;
    }
    const VT fill = splat<VT>(fill_);
    for (int l = 0; l < L; ++l) {
      const T* row = src + l * c_;
      for (int v = 0; v < nv_ - 1; ++v) out[l * nv_ + v] = vec::load<VT>(row + v * L);
      const VT last = vec::load<VT>(row + (nv_ - 1) * L);
      out[l * nv_ + nv_ - 1] = tail_mask_ ? last : fill;
    }
    return count;
  }

 private:
  int64_t c_;
  int nv_;
  T fill_;
  const T* neutral_;
  bool prefetch_;
  VI tail_mask_;
};

}  // namespace vec
}  // namespace ALCORE_ISA
}  // namespace alcore
