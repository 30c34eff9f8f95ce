// Stream-based gate: decides per arriving item whether a human labels it, under a label
// budget (Zliobaite et al. 2014 strategies). Stateful, thread-safe, no allocation per item
// once the quantile window is full.
#pragma once

#include <cstdint>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

#include "alcore/api.hpp"

namespace alcore {

// The largest threshold a gate's state holds (the initial theta is at most 1e6).
constexpr double kThetaMax = 1e12;
// The largest |utility| decide_utility takes: the quantile filter's range (max - min) times
// the labels owed (< 2^63) stays finite.
constexpr double kUtilityMax = 1e150;

enum class GateStrategy : int {
  fixed = 0,                            // confidence <= 1/C + budget (1 - 1/C)
  variable_uncertainty = 1,             // confidence < theta; theta *= 1 -+ s
  randomized_variable_uncertainty = 2,  // the same against theta * N(1, delta)
  split = 3,                            // with prob. v a random budget-rate query, else (1)
  random = 4,                           // query with probability = budget
  quantile = 5,                         // balanced incremental quantile filter
};

enum class GateUtility : int { least_confidence = 0, margin = 1, entropy = 2 };

// Settings of a gate: fixed at construction (a gate with other settings is a new gate).
struct GateParams {
  GateStrategy strategy = GateStrategy::fixed;
  GateUtility utility = GateUtility::least_confidence;
  double budget = 0.1;
  int64_t window = 100;
  double theta = 1.0;  // initial threshold of the variable strategies
  double step = 0.01;  // s: threshold step
  double delta = 1.0;  // spread of the randomized threshold
  double split = 0.1;  // v: share of random queries of the split strategy
  double atol = 1e-3;  // allowed |row sum - 1|
  double tolerance_window = 50;  // w_tol of the quantile filter
  uint64_t seed = 0;
  // No prefix of the stream spends more than budget * n + 1: an item may be queried only
  // if queried + 1 <= budget * (seen including it) + 1.
  bool hard_cap = false;
  // Rows are logits: each is turned into probabilities (softmax, in float64) before its
  // utility is taken, after checking that every logit is finite.
  bool logits = false;
  // A caller's utility of one row (both set, or neither): replaces the built-in utility.
  // It gets the row as given (probabilities after their checks, or raw logits after the
  // finiteness check) and its result must be finite with |u| <= kUtilityMax.
  RowUtility<float> custom_f32 = nullptr;
  RowUtility<double> custom_f64 = nullptr;
};

struct GateState {
  double spent = 0.0;   // Zliobaite's windowed label count u_t
  double theta = 1.0;   // current threshold
  int64_t seen = 0;
  int64_t queried = 0;
  uint64_t draws = 0;   // random numbers drawn so far (counter-based generator)
  int64_t classes = -1; // fixed by the first row
  std::vector<double> history;  // quantile filter: the last `window` utilities, oldest first
};

// The last `window` utilities in arrival order and sorted, with the element of one rank
// tracked, so each arriving value costs O(log window) and no allocation once full (the
// oldest node is reused for the newest value).
class QuantileWindow {
 public:
  explicit QuantileWindow(int64_t window) : window_(window) {}
  QuantileWindow(const QuantileWindow&) = delete;  // holds iterators into its own tree
  QuantileWindow& operator=(const QuantileWindow&) = delete;
  // Adds u, dropping the oldest value once `window` are held; then tracks the lower rank of
  // the q quantile, floor((size - 1) q).
  void push(double u, double q);
  // numpy.quantile(values, q, method="linear"), bit for bit, and max - min.
  double quantile(double q) const;
  double range() const { return tree_.rbegin()->first - tree_.begin()->first; }
  std::vector<double> history() const;
  void assign(const std::vector<double>& history, double q);
  int64_t size() const { return static_cast<int64_t>(tree_.size()); }

 private:
  using Tree = std::set<std::pair<double, int64_t>>;  // (value, arrival number): no ties
  void seek(int64_t rank);
  int64_t window_;
  Tree tree_;
  std::vector<Tree::iterator> ring_;  // arrival order; ring_[head_] is the oldest when full
  size_t head_ = 0;
  int64_t arrivals_ = 0;
  Tree::iterator tracked_ = tree_.end();
  int64_t tracked_rank_ = -1;
};

class StreamGate {
 public:
  explicit StreamGate(const GateParams& params);

  // One probability row of c classes. Throws InvalidValue (bad values) or
  // std::invalid_argument (class count) and leaves the state unchanged.
  template <class T>
  bool decide_one(const T* row, int64_t c);

  // As decide_one when no other caller holds the gate; otherwise returns -1 at once, having
  // checked and changed nothing (so a caller can release its own locks before blocking).
  template <class T>
  int try_decide_one(const T* row, int64_t c);

  // n rows; every row is validated before any decision, so a rejected call changes nothing.
  // Decisions are exactly those of n decide_one calls.
  template <class T>
  void decide_many(const T* rows, int64_t n, int64_t c, uint8_t* out);

  // One utility the caller computed (any finite value with |u| <= kUtilityMax; higher = more
  // informative), decided by the same strategy and state as rows. The fixed strategy needs
  // the class count (from earlier rows or set_state). Throws InvalidValue (row 0) for a bad
  // value, std::invalid_argument for the missing class count; the state is then unchanged.
  bool decide_utility_one(double utility);
  // As decide_utility_one when no other caller holds the gate; otherwise -1 at once.
  int try_decide_utility_one(double utility);
  // n utilities, all checked before any decision; exactly n decide_utility_one calls.
  void decide_utility_many(const double* utilities, int64_t n, uint8_t* out);

  // The utility the gate's strategies use, of n rows (after the checks decide_many makes,
  // the class count included). Changes nothing.
  template <class T>
  void utilities(const T* rows, int64_t n, int64_t c, double* out) const;

  // The largest utility a row of c classes can have (1 - 1/c for least confidence, else 1).
  double max_utility(int64_t c) const;

  GateState state() const;
  // Throws std::invalid_argument (state unchanged) for a history longer than the window or
  // counters out of range.
  void set_state(const GateState& state);
  // Immutable after construction, so reading needs no lock.
  const GateParams& params() const { return params_; }

 private:
  template <class T>
  bool decide_locked(const T* row, int64_t c);
  // Checks every row and writes its utility (the dispatched kernel, in parallel for large
  // n); throws at the first bad row.
  template <class T>
  void validate(const T* rows, int64_t n, int64_t c, int64_t classes, double* utilities,
                std::vector<double>& scratch, std::vector<double>& probs) const;
  bool step(double utility, int64_t c);
  // The decisions of n checked utilities in order (the state held in registers for the
  // variable strategy).
  void decide_utilities_locked(const double* u, int64_t n, int64_t c, uint8_t* out);
  bool decide_utility_locked(double utility);
  void check_utilities(const double* u, int64_t n) const;
  // Utilities of `rows` rows: probability rows through the dispatched kernel, logit rows
  // through a float64 softmax first. False at the first bad row (bad.row relative to x).
  template <class T>
  bool block_utilities(const T* x, int64_t rows, int64_t c, double* out,
                       std::vector<double>& scratch, std::vector<double>& probs,
                       BadValue& bad) const;
  // theta *= 1 - s after a query, 1 + s otherwise, kept in [DBL_MIN, kThetaMax].
  void adapt_threshold(bool queried);
  bool within_cap() const;
  double uniform();
  double normal();
  bool quantile_step(double utility);

  GateParams params_;
  GateState state_;  // its history is kept in window_ while the gate runs
  QuantileWindow window_;
  std::vector<double> utilities_;  // scratch of decide_many
  std::vector<double> scratch_;    // the kernel's, under the lock: decide_one allocates nothing
  std::vector<double> probs_;      // softmax of logit rows, under the lock
  mutable std::mutex mutex_;
};

}  // namespace alcore
