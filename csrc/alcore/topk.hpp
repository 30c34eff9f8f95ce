// Exact top-k over a stream of (score, index) pairs: higher score first, equal scores to
// the lower index. One collector per thread; merge_top combines them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace alcore {

template <class T>
struct Candidate {
  T score;
  int64_t index;
};

// A function object (not a function pointer) so the heap operations inline it.
struct RanksBefore {
  template <class T>
  bool operator()(const Candidate<T>& a, const Candidate<T>& b) const {
    return a.score > b.score || (a.score == b.score && a.index < b.index);
  }
};

// Keeps the k best candidates of a stream whose indices arrive in increasing order.
// Candidates that beat the current threshold are appended to a buffer; when it holds 2k,
// a selection (nth_element) keeps the best k and raises the threshold to the k-th best
// score. A later candidate that only ties the threshold has a higher index than every kept
// candidate with that score, so it can never enter. Amortised O(1) per candidate, where a
// binary heap pays O(log k) with unpredictable branches on every replacement.
template <class T>
class TopCollector {
 public:
  explicit TopCollector(int64_t k) : k_(k) {}

  // scores[i] belongs to index first + i; exclude (indexed like scores) may be null.
  void push_block(const T* scores, int64_t count, int64_t first, const uint8_t* exclude) {
    int64_t i = 0;
    for (; i < count && !full_; ++i) {
      if (exclude && exclude[i]) continue;
      append(scores[i], first + i);
    }
    // Almost every score fails the comparison with the threshold, so test a run of scores
    // at once (a vectorisable OR) and look closer only at runs with a hit.
    constexpr int64_t kRun = 16;
    while (i < count) {
      const int64_t end = std::min(count, i + kRun);
      const T threshold = threshold_;
      int hit = 0;
      for (int64_t j = i; j < end; ++j) hit |= scores[j] > threshold;
      if (hit) {
        for (int64_t j = i; j < end; ++j)
          if (scores[j] > threshold_ && !(exclude && exclude[j])) append(scores[j], first + j);
      }
      i = end;
    }
  }

  // The best min(k, seen) candidates, in no particular order.
  std::vector<Candidate<T>>& candidates() {
    prune();
    return buffer_;
  }

 private:
  void append(T score, int64_t index) {
    buffer_.push_back({score, index});
    if (static_cast<int64_t>(buffer_.size()) >= 2 * k_) prune();
  }

  void prune() {
    if (static_cast<int64_t>(buffer_.size()) < k_) return;
    std::nth_element(buffer_.begin(), buffer_.begin() + (k_ - 1), buffer_.end(), RanksBefore{});
    buffer_.resize(static_cast<size_t>(k_));
    threshold_ = buffer_[static_cast<size_t>(k_ - 1)].score;
    full_ = true;
  }

  int64_t k_;
  bool full_ = false;  // k candidates seen: the threshold is meaningful
  T threshold_ = T(0);
  std::vector<Candidate<T>> buffer_;
};

// The best k of all collectors' candidates, best first.
template <class T>
std::vector<Candidate<T>> merge_top(std::vector<TopCollector<T>>& collectors, int64_t k) {
  std::vector<Candidate<T>> all;
  for (auto& collector : collectors) {
    const auto& kept = collector.candidates();
    all.insert(all.end(), kept.begin(), kept.end());
  }
  const auto take = std::min<int64_t>(k, static_cast<int64_t>(all.size()));
  std::partial_sort(all.begin(), all.begin() + take, all.end(), RanksBefore{});
  all.resize(static_cast<size_t>(take));
  return all;
}

}  // namespace alcore
