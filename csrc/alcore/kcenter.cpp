#include "alcore/kcenter.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

#include "alcore/api.hpp"
#include "alcore/kernels.hpp"
#include "alcore/parallel.hpp"

namespace alcore {
namespace {

// Every item belongs to the cluster of its nearest center so far. For a new center c and a
// cluster with center a: |x - c| >= |a - c| - |x - a|, so if |a - c| >= 2 |x - a| the new
// center cannot be nearer to x and x is skipped without reading it; if that holds for the
// cluster's farthest member, the whole cluster is skipped. The test keeps a relative margin
// far above float32 rounding, so a skipped item is one whose computed distance could not
// have lowered its computed minimum either: the picks equal the unpruned greedy's.
constexpr double kMargin = 1e-4;

struct Cluster {
  int64_t center;
  std::vector<int64_t> members;
  // Largest squared distance of a non-center member to the center (-1 if none); centers
  // are at 0, so max(farthest, 0) is the cluster's squared radius.
  float farthest = -1.0f;
  int64_t farthest_item = -1;  // the lowest index with that distance
};

class Greedy {
 public:
  Greedy(const float* x, int64_t n, int64_t d, bool prune)
      : x_(x), n_(n), d_(d), prune_(prune), min_sq_(static_cast<size_t>(n),
                                                    std::numeric_limits<float>::infinity()),
        is_center_(static_cast<size_t>(n), 0), moved_(static_cast<size_t>(n), 0),
        owner_(static_cast<size_t>(n), -1) {}

  // Starts from many centers at once: each item's nearest center by one blocked pass over
  // the matrix (compute-bound), where adding them one by one would re-read it per center.
  void add_centers(const int64_t* centers, int64_t count) {
    const Kernels<float>& kern = kernels_f32();
    std::vector<int64_t> which(static_cast<size_t>(n_));
    parallel_chunks(n_, 256, [&](int, int64_t begin, int64_t end) {
      kern.nearest_centers(x_, d_, begin, end, centers, count, min_sq_.data() + begin,
                           which.data() + begin);
    });
    clusters_.resize(static_cast<size_t>(count));
    for (int64_t j = 0; j < count; ++j) clusters_[static_cast<size_t>(j)].center = centers[j];
    for (int64_t i = 0; i < n_; ++i) {
      owner_[static_cast<size_t>(i)] = which[static_cast<size_t>(i)];
      clusters_[static_cast<size_t>(which[static_cast<size_t>(i)])].members.push_back(i);
    }
    for (int64_t j = 0; j < count; ++j) is_center_[static_cast<size_t>(centers[j])] = 1;
    for (Cluster& cl : clusters_) refresh(cl);
  }

  void add_center(int64_t c) {
    const float* point = x_ + c * d_;
    const Kernels<float>& kern = kernels_f32();
    // Distances from the new center to every cluster center.
    std::vector<int64_t> centers(clusters_.size());
    for (size_t j = 0; j < clusters_.size(); ++j) centers[j] = clusters_[j].center;
    std::vector<float> center_sq(centers.size());
    kern.sq_distances(x_, d_, centers.data(), static_cast<int64_t>(centers.size()), point,
                      center_sq.data());
    // Candidates: members of clusters the bound cannot rule out.
    candidates_.clear();
    touched_.clear();
    if (clusters_.empty()) {
      candidates_.resize(static_cast<size_t>(n_));
      for (int64_t i = 0; i < n_; ++i) candidates_[static_cast<size_t>(i)] = i;
    } else {
      for (size_t j = 0; j < clusters_.size(); ++j) {
        const Cluster& cl = clusters_[j];
        // Skip x when |a - c| (1 - margin) >= 2 |x - a| (1 + margin), i.e. when
        // |x - a|^2 <= limit_sq: squared, so the per-item test needs no square root.
        const double limit =
            std::sqrt(static_cast<double>(center_sq[j])) * (1 - kMargin) / (2 * (1 + kMargin));
        const double limit_sq = prune_ ? limit * limit : -1.0;
        if (static_cast<double>(std::max(cl.farthest, 0.0f)) <= limit_sq) continue;
        touched_.push_back(static_cast<int64_t>(j));
        for (int64_t i : cl.members)
          if (static_cast<double>(min_sq_[static_cast<size_t>(i)]) > limit_sq)
            candidates_.push_back(i);
      }
    }
    // The distances themselves, in parallel.
    const int64_t count = static_cast<int64_t>(candidates_.size());
    distances_.resize(candidates_.size());
    parallel_chunks(count, std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, d_)),
                    [&](int, int64_t begin, int64_t end) {
                      kern.sq_distances(x_, d_, candidates_.data() + begin, end - begin, point,
                                        distances_.data() + begin);
                    });
    // Move every item the new center is strictly nearer to (as the plain greedy's
    // min(current, new) would change it).
    Cluster fresh;
    fresh.center = c;
    for (int64_t t = 0; t < count; ++t) {
      const int64_t i = candidates_[static_cast<size_t>(t)];
      const float dist = distances_[static_cast<size_t>(t)];
      if (dist < min_sq_[static_cast<size_t>(i)]) {
        min_sq_[static_cast<size_t>(i)] = dist;
        fresh.members.push_back(i);
        moved_[static_cast<size_t>(i)] = 1;
      }
    }
    is_center_[static_cast<size_t>(c)] = 1;
    if (!moved_[static_cast<size_t>(c)]) {
      // c was already at distance 0 of another center (a duplicate): it stays in that
      // cluster, whose farthest item may have been c itself.
      const int64_t home = owner_[static_cast<size_t>(c)];
      if (std::find(touched_.begin(), touched_.end(), home) == touched_.end())
        touched_.push_back(home);
    }
    const int64_t fresh_index = static_cast<int64_t>(clusters_.size());
    for (int64_t i : fresh.members) owner_[static_cast<size_t>(i)] = fresh_index;
    for (int64_t j : touched_) {
      Cluster& cl = clusters_[static_cast<size_t>(j)];
      auto keep = std::remove_if(cl.members.begin(), cl.members.end(),
                                 [&](int64_t i) { return moved_[static_cast<size_t>(i)] != 0; });
      cl.members.erase(keep, cl.members.end());
      refresh(cl);
    }
    for (int64_t i : fresh.members) moved_[static_cast<size_t>(i)] = 0;
    refresh(fresh);
    clusters_.push_back(std::move(fresh));
  }

  // The non-center item farthest from every center (lowest index among equals), or -1.
  int64_t farthest(float& sq) const {
    int64_t best = -1;
    sq = -1.0f;
    for (const Cluster& cl : clusters_) {
      if (cl.farthest_item < 0) continue;
      if (cl.farthest > sq || (cl.farthest == sq && cl.farthest_item < best)) {
        sq = cl.farthest;
        best = cl.farthest_item;
      }
    }
    return best;
  }

 private:
  void refresh(Cluster& cl) const {
    cl.farthest = -1.0f;
    cl.farthest_item = -1;
    for (int64_t i : cl.members) {
      if (is_center_[static_cast<size_t>(i)]) continue;
      const float v = min_sq_[static_cast<size_t>(i)];
      if (v > cl.farthest || (v == cl.farthest && i < cl.farthest_item)) {
        cl.farthest = v;
        cl.farthest_item = i;
      }
    }
  }

  const float* x_;
  int64_t n_, d_;
  bool prune_;
  std::vector<float> min_sq_;
  std::vector<uint8_t> is_center_, moved_;
  std::vector<int64_t> owner_;  // cluster of each item
  std::vector<Cluster> clusters_;
  std::vector<int64_t> candidates_, touched_;
  std::vector<float> distances_;
};

// Squared distances of rows with |entries| <= limit stay below FLT_MAX / 2 (|x - c|^2 <=
// d (2 limit)^2), so no distance is +inf. An infinite (or NaN) distance never lowers a
// running minimum that starts at +inf: an item would join no cluster, and the farthest
// search would find none (the pick index -1 read out of bounds).
void check_magnitude(const float* x, int64_t n, int64_t d) {
  const double limit = std::sqrt(static_cast<double>(std::numeric_limits<float>::max()) /
                                 (8.0 * static_cast<double>(d)));
  // One read of the thread limit sizes the per-chunk results and runs the loop.
  const int chunks = planned_chunks(n, std::max<int64_t>(1, (1 << 16) / d));
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
  check_magnitude(x, n, d);
  Greedy greedy(x, n, d, prune);
  if (n_initial > 0) greedy.add_centers(initial, n_initial);
  KCenterResult result;
  result.picks.reserve(static_cast<size_t>(k));
  result.radii.reserve(static_cast<size_t>(k));
  const int64_t report_every = std::max<int64_t>(1, k / 100);
  for (int64_t step = 0; step < k; ++step) {
    int64_t pick;
    if (step == 0 && n_initial == 0) {
      if (first < 0 || first >= n) throw std::invalid_argument("first pick out of range");
      pick = first;
    } else {
      float sq;
      pick = greedy.farthest(sq);
      if (pick < 0) throw std::invalid_argument("no item left to pick");
    }
    greedy.add_center(pick);
    float sq;
    greedy.farthest(sq);
    result.picks.push_back(pick);
    result.radii.push_back(sq < 0 ? 0.0f : std::sqrt(sq));
    if (progress && ((step + 1) % report_every == 0 || step + 1 == k)) progress(step + 1, k);
  }
  return result;
}

}  // namespace alcore
