// Greedy k-center (farthest-first traversal, Sener & Savarese's core-set selection), exact,
// pruned by the triangle inequality (clustered data) and by a lower bound from an int8 copy
// of the rows (any data); see kcenter.cpp and quantized.hpp.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace alcore {

struct KCenterResult {
  std::vector<int64_t> picks;  // in pick order
  std::vector<float> radii;    // coverage radius (L2) after each pick
};

// x: n x d float32, row-major. initial: indices of the existing centers (labeled items),
// unique, in [0, n). When there are none, `first` is the first pick. Picks k more items, each
// the one farthest from every center so far (ties to the lower index), never a center again.
// progress(done, k) is called from the calling thread now and then. With prune = false every
// distance is computed (the plain running-minimum greedy, for tests); the picks are
// identical either way. Memory beside x: 8 bytes an item, plus (with prune, d >= 16, once a
// pick leaves over a quarter of the rows to the exact kernel, i.e. on data without cluster
// structure) the int8 copy, (d rounded up to 16) + 20 bytes an item; with over 256 initial
// centers, a 128 x n_initial table (8 bytes an entry). ALCORE_KCENTER_STATS set in the
// environment prints how many rows were candidates and exact distances to stderr (a
// diagnostic for tests and benchmarks).
KCenterResult kcenter_greedy(const float* x, int64_t n, int64_t d, const int64_t* initial,
                             int64_t n_initial, int64_t k, int64_t first,
                             const std::function<void(int64_t, int64_t)>& progress,
                             bool prune = true);

}  // namespace alcore
