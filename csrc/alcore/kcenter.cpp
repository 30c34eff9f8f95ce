#include "alcore/kcenter.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>

#include "alcore/api.hpp"
#include "alcore/kernels.hpp"
#include "alcore/parallel.hpp"
#include "alcore/quantized.hpp"

namespace alcore {
namespace {

// Error of the exact float32 kernel (distances.cpp): a squared distance of d terms, each a
// rounded difference squared, summed in any order, is within (d + 2) 2^-24 of the true one
// relatively (first order), plus at most 2^-150 a rounding that underflows. gamma and eta
// below are twice that and more, so every skip decision built on them is safe.
double kernel_gamma(int64_t d) { return static_cast<double>(d + 8) * 0x1p-23; }
double kernel_eta(int64_t d) { return static_cast<double>(d + 8) * 0x1p-149; }

// Below 16 dimensions a float32 row is no larger than the int8 copy plus its RowBound.
constexpr int64_t kQuantizeMinDim = 16;
// The cluster test costs one exact distance per center and pick; it is skipped while it
// rules out under 2 % of the rows, and tried again every kProbeEvery picks.
constexpr double kClusterUseful = 0.02;
constexpr int64_t kProbeEvery = 16;
// Labeled sets above 2 kPilots are assigned through kPilots of them (assign_with_pilots)
// while the pilot x center table stays below kMaxPilotTable entries (8 bytes each).
constexpr int64_t kPilots = 128;
constexpr int64_t kMaxPilotTable = int64_t{1} << 23;

// The largest float <= v.
float round_down(double v) {
  float f = static_cast<float>(v);
  if (static_cast<double>(f) > v) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
  return f;
}

// The greedy's state: for every item the smallest computed squared distance to a center
// (-1 for centers) and the cluster (position in centers_) of the center reaching it. One
// pass over all rows per pick (quantized.cpp) skips a row by either of two rigorous tests
// and computes the exact float32 distance of the rest:
// - cluster test (triangle inequality, pays off on clustered data): if the new center c is
//   at least twice as far from x's center a as x is, |x - c| >= |x - a|, so x stays.
// - quantised bound (pays off where nothing is clustered, e.g. isotropic Gaussians, where
//   the cluster test rules out nothing and every pick must look at every row): a lower
//   bound on |x - c| from an int8 copy, a quarter of the float32 traffic.
// Each test keeps a margin above the float32 kernel's rounding (kernel_gamma), so a skipped
// row is one whose computed distance could not have lowered its computed minimum: the
// picks equal the unpruned greedy's. A flat pass in row order replaces per-cluster member
// lists: their upkeep (gathering candidates, removing moved members, re-scanning every
// touched cluster for its farthest member) was O(n) scattered work a pick on isotropic data,
// and the exact distances of those scattered rows ran at a third of streaming speed.
class Greedy {
 public:
  Greedy(const float* x, int64_t n, int64_t d, bool prune, int chunks)
      : x_(x), n_(n), d_(d), chunks_(chunks), gamma_(kernel_gamma(d)), eta_(kernel_eta(d)),
        min_sq_(static_cast<size_t>(n), std::numeric_limits<float>::infinity()),
        owner_(static_cast<size_t>(n), -1) {
    // A gamma near 1 (millions of dimensions) would make every bound vacuous.
    prune_ = prune && gamma_ < 0.25;
    quantizable_ = prune_ && d >= kQuantizeMinDim;
  }

  // Starts from many centers at once: each item's nearest center by one blocked pass over
  // the matrix (compute-bound), where adding them one by one would re-read it per center.
  // With many centers, pilots first (assign_with_pilots) skip most of that work on
  // clustered data.
  void add_centers(const int64_t* centers, int64_t count) {
    centers_.assign(centers, centers + count);
    if (!(prune_ && count > 2 * kPilots && kPilots * count <= kMaxPilotTable &&
          count < std::numeric_limits<int32_t>::max() && assign_with_pilots())) {
      const Kernels<float>& kern = kernels_f32();
      std::vector<int64_t> which(static_cast<size_t>(n_));
      run_chunks(n_, chunks_, [&](int, int64_t begin, int64_t end) {
        kern.nearest_centers(x_, d_, begin, end, centers, count, min_sq_.data() + begin,
                             which.data() + begin);
      });
      for (int64_t i = 0; i < n_; ++i)
        owner_[static_cast<size_t>(i)] = static_cast<int32_t>(which[static_cast<size_t>(i)]);
    }
    for (int64_t j = 0; j < count; ++j) min_sq_[static_cast<size_t>(centers[j])] = -1.0f;
  }

  // The non-center item farthest from every center (lowest index among equals), or -1.
  int64_t farthest(float& sq) const {
    int64_t best = -1;
    sq = -1.0f;
    for (int64_t i = 0; i < n_; ++i)
      if (min_sq_[static_cast<size_t>(i)] > sq) sq = min_sq_[static_cast<size_t>(i)], best = i;
    return best;
  }

  // Adds center c; returns the next farthest item (or -1) and its squared distance in sq.
  int64_t add_center(int64_t c, float& sq) {
    PassInput in;
    in.x = x_;
    in.d = d_;
    in.point = x_ + c * d_;
    in.exact_all = !prune_;
    in.gamma = gamma_;
    in.eta = eta_;
    in.min_sq = min_sq_.data();
    in.owner = owner_.data();
    const int64_t m = static_cast<int64_t>(centers_.size());
    const bool clusters = prune_ && m > 0 && m < std::numeric_limits<int32_t>::max();
    const bool use_limits = clusters && (cluster_useful_ || picks_ % kProbeEvery == 0);
    if (use_limits) {
      in.limit = cluster_limits(in.point);
    }
    // The int8 copy is built once a pass left over a quarter of the rows to the exact
    // kernel (no structure for the cluster test): on clustered data it is never needed, and
    // the first pass from no center computes every distance anyway.
    if (quantizable_ && !codes_ && last_candidates_ * 4 > n_) quantize();
    if (codes_) {
      in.rows = rows_;
      kcenter_kernels().quantize_point(in.point, d_, rows_.stride, mean_.data(),
                                       center_code_.data(), in.center);
    }
    min_sq_[static_cast<size_t>(c)] = -1.0f;
    in.new_owner = static_cast<int32_t>(std::min<int64_t>(m, std::numeric_limits<int32_t>::max()));
    centers_.push_back(c);
    ++picks_;
    std::vector<PassResult> results(static_cast<size_t>(chunks_));
    const KCenterKernels& kern = kcenter_kernels();
    run_chunks(n_, chunks_, [&](int chunk, int64_t begin, int64_t end) {
      kern.pass(in, begin, end, results[static_cast<size_t>(chunk)]);
    });
    int32_t best_bits = -1;
    int64_t best = -1, candidates = 0;
    for (const PassResult& r : results) {  // chunks in row order: the lowest index wins ties
      if (r.best_bits > best_bits) best_bits = r.best_bits, best = r.best_index;
      candidates += r.candidates;
      exact_ += r.exact;
    }
    candidates_ += candidates;
    last_candidates_ = candidates;
    if (use_limits)
      cluster_useful_ = static_cast<double>(candidates) <
                        (1 - kClusterUseful) * static_cast<double>(n_ - m - 1);
    sq = -1.0f;
    if (best >= 0) std::memcpy(&sq, &best_bits, sizeof sq);
    return best;
  }

  int64_t exact_count() const { return exact_; }
  int64_t candidate_count() const { return candidates_; }

 private:
  // Nearest centers through kPilots of them, spread by farthest-first among the centers:
  // each row's nearest pilot a (blocked pass), then only the centers c with limit(a, c) <
  // min_sq (the cluster test of cluster_limits, per pilot sorted by limit so the list is a
  // prefix found by binary search): any other center is provably no nearer than a. On
  // clustered data that is the few centers of the row's own cluster instead of all; blocks
  // where the lists are long (no structure) take the plain blocked pass instead. The minima
  // are the same computed values either way (the owner may be another center at the same
  // distance, which nothing downstream distinguishes).
  bool assign_with_pilots() {
    const Kernels<float>& kern = kernels_f32();
    const int64_t m = static_cast<int64_t>(centers_.size());
    const int64_t* centers = centers_.data();
    std::vector<int64_t> pilot_pos, pilot_rows;
    std::vector<float> nearest(static_cast<size_t>(m), std::numeric_limits<float>::infinity());
    std::vector<float> table(static_cast<size_t>(kPilots * m));  // pilot x center limits
    std::vector<int32_t> order(static_cast<size_t>(kPilots * m));
    int64_t next = 0;
    for (int64_t p = 0; p < kPilots; ++p) {
      pilot_pos.push_back(next);
      pilot_rows.push_back(centers[next]);
      float* row = table.data() + p * m;
      kern.sq_distances(x_, d_, centers, m, x_ + centers[next] * d_, row);
      for (int64_t j = 0; j < m; ++j) nearest[static_cast<size_t>(j)] =
          std::min(nearest[static_cast<size_t>(j)], row[j]);
      for (int64_t q : pilot_pos) nearest[static_cast<size_t>(q)] = -1.0f;
      next = std::max_element(nearest.begin(), nearest.end()) - nearest.begin();
    }
    const double scale = (1 - gamma_) / (4 * (1 + gamma_)) * (1 - 0x1p-40);
    for (int64_t p = 0; p < kPilots; ++p) {
      float* row = table.data() + p * m;
      int32_t* ids = order.data() + p * m;
      for (int64_t j = 0; j < m; ++j) {
        const double a2 = std::max(0.0, static_cast<double>(row[j]) - eta_);
        row[j] = round_down(a2 * scale - eta_);
        ids[j] = static_cast<int32_t>(j);
      }
      std::sort(ids, ids + m, [&](int32_t u, int32_t v) {
        return row[u] < row[v] || (row[u] == row[v] && u < v);
      });
      std::vector<float> sorted(static_cast<size_t>(m));
      for (int64_t t = 0; t < m; ++t) sorted[static_cast<size_t>(t)] = row[ids[t]];
      std::copy(sorted.begin(), sorted.end(), row);
    }
    run_chunks(n_, chunks_, [&](int, int64_t begin, int64_t end) {
      constexpr int64_t kRows = 64;
      std::vector<int64_t> which(kRows), list;
      std::vector<float> dist;
      std::vector<int64_t> length(kRows);
      // After kGiveUp blocks in a row without structure, the next kRest blocks skip the
      // pilots (their pass would be wasted) before another try.
      constexpr int kGiveUp = 4, kRest = 60;
      int misses = 0, rest = 0;
      for (int64_t b = begin; b < end; b += kRows) {
        const int64_t stop = std::min(end, b + kRows), len = stop - b;
        float* min_sq = min_sq_.data() + b;
        if (rest > 0) {
          --rest;
          kern.nearest_centers(x_, d_, b, stop, centers, m, min_sq, which.data());
          for (int64_t t = 0; t < len; ++t)
            owner_[static_cast<size_t>(b + t)] = static_cast<int32_t>(which[static_cast<size_t>(t)]);
          continue;
        }
        kern.nearest_centers(x_, d_, b, stop, pilot_rows.data(), kPilots, min_sq, which.data());
        int64_t total = 0;
        for (int64_t t = 0; t < len; ++t) {
          const float* keys = table.data() + which[static_cast<size_t>(t)] * m;
          length[static_cast<size_t>(t)] = std::lower_bound(keys, keys + m, min_sq[t]) - keys;
          total += length[static_cast<size_t>(t)];
        }
        if (2 * total > len * m) {  // no structure here: all centers, blocked
          kern.nearest_centers(x_, d_, b, stop, centers, m, min_sq, which.data());
          for (int64_t t = 0; t < len; ++t)
            owner_[static_cast<size_t>(b + t)] = static_cast<int32_t>(which[static_cast<size_t>(t)]);
          if (++misses == kGiveUp) misses = 0, rest = kRest;
          continue;
        }
        misses = 0;
        for (int64_t t = 0; t < len; ++t) {
          const int64_t a = which[static_cast<size_t>(t)], count = length[static_cast<size_t>(t)];
          const int32_t* ids = order.data() + a * m;
          int32_t best = static_cast<int32_t>(pilot_pos[static_cast<size_t>(a)]);
          list.resize(static_cast<size_t>(count));
          dist.resize(static_cast<size_t>(count));
          for (int64_t u = 0; u < count; ++u) list[static_cast<size_t>(u)] = centers[ids[u]];
          kern.sq_distances(x_, d_, list.data(), count, x_ + (b + t) * d_, dist.data());
          for (int64_t u = 0; u < count; ++u) {
            if (dist[static_cast<size_t>(u)] < min_sq[t]) {
              min_sq[t] = dist[static_cast<size_t>(u)];
              best = ids[u];
            }
          }
          owner_[static_cast<size_t>(b + t)] = best;
        }
      }
    });
    return true;
  }

  // Builds the int8 copy of x - mean (quantized.hpp). Centring first makes the int8 scale
  // fit the data's spread instead of its offset: un-centred data would otherwise quantise
  // as coarsely as its largest coordinate. The mean of a fixed sample of rows suffices
  // (any centre keeps the bounds rigorous; it only sets how tight they are).
  void quantize() {
    const int64_t stride = (d_ + 15) / 16 * 16;
    mean_.assign(static_cast<size_t>(d_), 0.0);
    const int64_t step = std::max<int64_t>(1, n_ / 65536);
    int64_t sampled = 0;
    for (int64_t i = 0; i < n_; i += step, ++sampled)
      for (int64_t j = 0; j < d_; ++j) mean_[static_cast<size_t>(j)] += x_[i * d_ + j];
    for (double& v : mean_) v /= static_cast<double>(sampled);
    const size_t n = static_cast<size_t>(n_);
    // Not zero-filled here: quantize_rows writes every byte, first-touching the pages on
    // the threads that use them.
    codes_.reset(new int8_t[n * static_cast<size_t>(stride)]);
    bounds_.reset(new RowBound[n]);
    residual_.reset(new float[n]);
    center_code_.resize(static_cast<size_t>(stride));
    rows_.codes = codes_.get();
    rows_.stride = stride;
    rows_.bounds = bounds_.get();
    rows_.residual = residual_.get();
    const KCenterKernels& kern = kcenter_kernels();
    run_chunks(n_, chunks_, [&](int, int64_t begin, int64_t end) {
      kern.quantize_rows(x_, d_, begin, end, mean_.data(), rows_);
      for (int64_t i = begin; i < end; ++i) {
        const float m = min_sq_[static_cast<size_t>(i)];
        bounds_[i].reach = m < 0 ? 0.0f : reach_of(residual_[i], m, eta_, gamma_);
      }
    });
  }

  // limit[j + 1] for the cluster of center j: a row x of it with min_sq <= limit cannot get
  // nearer to the new center c. With A^2 = (f(a, c) - eta) / (1 + gamma) <= |a - c|^2 and
  // mu^2 = (min_sq + eta) / (1 - gamma) >= |x - a|^2, mu <= A / 2 gives |x - c| >=
  // |a - c| - |x - a| >= mu, so f(x, c) >= mu^2 (1 - gamma) - eta = min_sq.
  const float* cluster_limits(const float* point) {
    const int64_t m = static_cast<int64_t>(centers_.size());
    center_sq_.resize(static_cast<size_t>(m));
    limit_.resize(static_cast<size_t>(m + 1));
    const Kernels<float>& kern = kernels_f32();
    const int chunks = static_cast<int>(std::min<int64_t>(chunks_, std::max<int64_t>(1, m / 4096)));
    run_chunks(m, chunks, [&](int, int64_t begin, int64_t end) {
      kern.sq_distances(x_, d_, centers_.data() + begin, end - begin, point,
                        center_sq_.data() + begin);
    });
    limit_[0] = -std::numeric_limits<float>::infinity();  // rows without a center yet
    const double scale = (1 - gamma_) / (4 * (1 + gamma_)) * (1 - 0x1p-40);
    for (int64_t j = 0; j < m; ++j) {
      const double a2 = std::max(0.0, static_cast<double>(center_sq_[static_cast<size_t>(j)]) - eta_);
      limit_[static_cast<size_t>(j + 1)] = round_down(a2 * scale - eta_);
    }
    return limit_.data();
  }

  const float* x_;
  int64_t n_, d_;
  int chunks_;
  double gamma_, eta_;
  bool prune_ = true;
  std::vector<float> min_sq_;
  std::vector<int32_t> owner_;
  std::vector<int64_t> centers_;
  std::vector<float> center_sq_, limit_;
  bool cluster_useful_ = true, quantizable_ = false;
  int64_t last_candidates_ = 0;
  int64_t picks_ = 0, exact_ = 0, candidates_ = 0;
  // The int8 copy (empty when not used).
  std::vector<double> mean_;
  std::unique_ptr<int8_t[]> codes_;
  std::unique_ptr<RowBound[]> bounds_;
  std::unique_ptr<float[]> residual_;
  std::vector<int16_t> center_code_;
  RowCodes rows_;
};

// Squared distances of rows with |entries| <= limit stay below FLT_MAX / 2 (|x - c|^2 <=
// d (2 limit)^2), so no distance is +inf. An infinite (or NaN) distance never lowers a
// running minimum that starts at +inf: an item would join no cluster, and the farthest
// search would find none (the pick index -1 read out of bounds).
void check_magnitude(const float* x, int64_t n, int64_t d, int chunks) {
  const double limit = std::sqrt(static_cast<double>(std::numeric_limits<float>::max()) /
                                 (8.0 * static_cast<double>(d)));
  std::vector<double> largest(static_cast<size_t>(chunks), 0.0);
  std::vector<uint8_t> non_finite(largest.size(), 0);
  run_chunks(n, chunks, [&](int chunk, int64_t begin, int64_t end) {
    float top = 0.0f;
    bool bad = false;
    for (const float* p = x + begin * d; p != x + end * d; ++p) {
      bad |= !std::isfinite(*p);
      top = std::max(top, std::fabs(*p));
    }
    largest[static_cast<size_t>(chunk)] = top;
    non_finite[static_cast<size_t>(chunk)] = bad;
  });
  if (std::find(non_finite.begin(), non_finite.end(), 1) != non_finite.end())
    throw OutOfRange("embeddings must be finite; replace NaN/inf or drop those items");
  const double top = *std::max_element(largest.begin(), largest.end());
  if (top > limit) {
    char message[256];
    std::snprintf(message, sizeof message,
                  "embeddings are too large for float32 squared distances: an entry has "
                  "magnitude %.3g, at most %.3g for %lld dimensions; rescale the embeddings "
                  "(e.g. divide them by %.3g)",
                  top, limit, static_cast<long long>(d), top / limit * 1e3);
    throw OutOfRange(message);
  }
}

}  // namespace

KCenterResult kcenter_greedy(const float* x, int64_t n, int64_t d, const int64_t* initial,
                             int64_t n_initial, int64_t k, int64_t first,
                             const std::function<void(int64_t, int64_t)>& progress,
                             bool prune) {
  if (n < 1 || d < 1) throw std::invalid_argument("need at least one item and one dimension");
  if (k < 1 || k > n - n_initial) throw std::invalid_argument("k out of range");
  for (int64_t j = 0; j < n_initial; ++j)
    if (initial[j] < 0 || initial[j] >= n) throw std::invalid_argument("initial center out of range");
  // One read of the thread limit for the whole call: every pass uses the same chunks (and
  // the picks do not depend on them).
  const int chunks = planned_chunks(n, std::max<int64_t>(1, (1 << 17) / d));
  check_magnitude(x, n, d, chunks);
  Greedy greedy(x, n, d, prune, chunks);
  if (n_initial > 0) greedy.add_centers(initial, n_initial);
  KCenterResult result;
  result.picks.reserve(static_cast<size_t>(k));
  result.radii.reserve(static_cast<size_t>(k));
  const int64_t report_every = std::max<int64_t>(1, k / 100);
  float sq;
  int64_t next = n_initial > 0 ? greedy.farthest(sq) : -1;
  for (int64_t step = 0; step < k; ++step) {
    int64_t pick = next;
    if (step == 0 && n_initial == 0) {
      if (first < 0 || first >= n) throw std::invalid_argument("first pick out of range");
      pick = first;
    }
    if (pick < 0) throw std::invalid_argument("no item left to pick");
    next = greedy.add_center(pick, sq);
    result.picks.push_back(pick);
    result.radii.push_back(sq < 0 ? 0.0f : std::sqrt(sq));
    if (progress && ((step + 1) % report_every == 0 || step + 1 == k)) progress(step + 1, k);
  }
  if (std::getenv("ALCORE_KCENTER_STATS"))
    std::fprintf(stderr, "kcenter: %lld candidates, %lld exact over %lld picks of %lld rows\n",
                 static_cast<long long>(greedy.candidate_count()),
                 static_cast<long long>(greedy.exact_count()), static_cast<long long>(k),
                 static_cast<long long>(n));
  return result;
}

}  // namespace alcore
