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

template <class T>
inline bool ranks_before(const Candidate<T>& a, const Candidate<T>& b) {
  return a.score > b.score || (a.score == b.score && a.index < b.index);
}

// Keeps the k best candidates of a stream whose indices arrive in increasing order: a new
// candidate that only ties the current worst has a higher index, so it loses.
template <class T>
class TopCollector {
 public:
  explicit TopCollector(int64_t k) : k_(k) { heap_.reserve(static_cast<size_t>(k)); }

  // scores[i] belongs to index first + i; exclude (indexed like scores) may be null.
  void push_block(const T* scores, int64_t count, int64_t first, const uint8_t* exclude) {
    for (int64_t i = 0; i < count; ++i) {
      if (exclude && exclude[i]) continue;
      const T s = scores[i];
      if (static_cast<int64_t>(heap_.size()) < k_) {
        heap_.push_back({s, first + i});
        std::push_heap(heap_.begin(), heap_.end(), ranks_before<T>);
      } else if (s > heap_.front().score) {
        std::pop_heap(heap_.begin(), heap_.end(), ranks_before<T>);
        heap_.back() = {s, first + i};
        std::push_heap(heap_.begin(), heap_.end(), ranks_before<T>);
      }
    }
  }

  std::vector<Candidate<T>>& candidates() { return heap_; }

 private:
  int64_t k_;
  std::vector<Candidate<T>> heap_;  // worst candidate at front
};

// The best k of all collectors' candidates, best first.
template <class T>
std::vector<Candidate<T>> merge_top(std::vector<TopCollector<T>>& collectors, int64_t k) {
  std::vector<Candidate<T>> all;
  for (auto& c : collectors) all.insert(all.end(), c.candidates().begin(), c.candidates().end());
  const auto take = std::min<int64_t>(k, static_cast<int64_t>(all.size()));
  std::partial_sort(all.begin(), all.begin() + take, all.end(), ranks_before<T>);
  all.resize(static_cast<size_t>(take));
  return all;
}

}  // namespace alcore
