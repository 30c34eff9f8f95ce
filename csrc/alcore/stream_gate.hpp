// Stream-based gate: decides per arriving item whether a human labels it, under a label
// budget (Zliobaite et al. 2014 strategies). Stateful, thread-safe, no allocation per item.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

namespace alcore {

enum class GateStrategy : int {
  fixed = 0,                            // confidence <= 1/C + budget (1 - 1/C)
  variable_uncertainty = 1,             // confidence < theta; theta *= 1 -+ s
  randomized_variable_uncertainty = 2,  // the same against theta * N(1, delta)
  split = 3,                            // with prob. v a random budget-rate query, else (1)
  random = 4,                           // query with probability = budget
  quantile = 5,                         // balanced incremental quantile filter
};

enum class GateUtility : int { least_confidence = 0, margin = 1, entropy = 2 };

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

class StreamGate {
 public:
  explicit StreamGate(const GateParams& params);

  // One probability row of c classes. Throws InvalidValue (bad values) or
  // std::invalid_argument (class count) and leaves the state unchanged.
  template <class T>
  bool decide_one(const T* row, int64_t c);

  // n rows; every row is validated before any decision, so a rejected call changes nothing.
  // Decisions are exactly those of n decide_one calls.
  template <class T>
  void decide_many(const T* rows, int64_t n, int64_t c, uint8_t* out);

  GateState state() const;
  void set_state(const GateState& state);
  const GateParams& params() const { return params_; }

 private:
  // Checks every row and writes its utility; throws at the first bad row.
  template <class T>
  void validate(const T* rows, int64_t n, int64_t c, double* utilities) const;
  template <class T>
  double utility(const T* row, int64_t c) const;
  bool step(double utility, int64_t c);
  double uniform();
  double normal();
  bool quantile_step(double utility);

  GateParams params_;
  GateState state_;
  std::vector<double> sorted_;     // scratch of the quantile filter
  std::vector<double> utilities_;  // scratch of decide_many
  mutable std::mutex mutex_;
};

}  // namespace alcore
