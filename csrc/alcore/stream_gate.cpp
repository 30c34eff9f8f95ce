#include "alcore/stream_gate.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "alcore/api.hpp"

namespace alcore {
namespace {

// SplitMix64 of (seed, counter): the n-th random number depends only on the seed and n, so
// a gate restored from its state continues the same sequence.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

StreamGate::StreamGate(const GateParams& params) : params_(params) {
  if (!(params.budget > 0 && params.budget <= 1))
    throw std::invalid_argument("budget must be in (0, 1]");
  if (params.window < 1) throw std::invalid_argument("window must be >= 1");
  if (!(params.tolerance_window > 0)) throw std::invalid_argument("w_tol must be > 0");
  state_.theta = params.theta;
}

GateState StreamGate::state() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return state_;
}

void StreamGate::set_state(const GateState& state) {
  std::lock_guard<std::mutex> lock(mutex_);
  state_ = state;
}

double StreamGate::uniform() {
  const uint64_t bits = mix(params_.seed ^ mix(state_.draws++));
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

double StreamGate::normal() {
  // Box-Muller; 1 - u keeps the logarithm's argument in (0, 1].
  const double u1 = 1.0 - uniform(), u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

template <class T>
void StreamGate::validate(const T* rows, int64_t n, int64_t c, double* utilities) const {
  if (c < 2) throw std::invalid_argument("need at least two classes");
  if (state_.classes >= 0 && c != state_.classes)
    throw std::invalid_argument("class count differs from the gate's");
  const T atol = static_cast<T>(params_.atol);
  for (int64_t r = 0; r < n; ++r) {
    const T* p = rows + r * c;
    // Branch-free fast check (NaN fails both comparisons); the slow path names the value.
    bool bad = false;
    T sum = 0;
    for (int64_t j = 0; j < c; ++j) {
      bad |= !(p[j] >= T(0)) | !(p[j] <= T(1));
      sum += p[j];
    }
    if (!bad && std::fabs(sum - T(1)) <= atol) {
      utilities[r] = utility(p, c);  // while the row is in L1
      continue;
    }
    for (int64_t j = 0; j < c; ++j) {
      const T v = p[j];
      BadValue problem;
      if (!std::isfinite(v)) problem.problem = Problem::not_finite;
      else if (v < 0) problem.problem = Problem::negative;
      else if (v > 1) problem.problem = Problem::above_one;
      if (problem.problem != Problem::none) {
        problem.row = r, problem.col = j, problem.value = static_cast<double>(v);
        throw InvalidValue(problem);
      }
    }
    BadValue problem;
    problem.problem = Problem::row_sum, problem.row = r, problem.value = static_cast<double>(sum);
    throw InvalidValue(problem);
  }
}

template <class T>
double StreamGate::utility(const T* p, int64_t c) const {
  if (params_.utility == GateUtility::entropy) {
    double entropy = 0;
    for (int64_t j = 0; j < c; ++j) {
      const double v = static_cast<double>(p[j]);
      if (v > 0) entropy -= v * std::log(v);
    }
    return entropy / std::log(static_cast<double>(c));
  }
  T first = -1, second = -1;
  for (int64_t j = 0; j < c; ++j) {
    second = std::max(second, std::min(first, p[j]));
    first = std::max(first, p[j]);
  }
  const double top = static_cast<double>(first), next = static_cast<double>(second);
  return params_.utility == GateUtility::margin ? 1.0 - (top - next) : 1.0 - top;
}

// The balanced incremental quantile filter (Kottke et al. 2015), as scikit-activeml's
// BalancedIncrementalQuantileFilter: theta is the (1 - budget) quantile of the last
// `window` utilities (numpy's linear interpolation, reproduced bit for bit), lowered by
// range * (labels owed) / w_tol so that spending catches up with the budget.
bool StreamGate::quantile_step(double utility) {
  auto& history = state_.history;
  if (static_cast<int64_t>(history.size()) == params_.window) history.erase(history.begin());
  history.push_back(utility);
  sorted_.assign(history.begin(), history.end());
  std::sort(sorted_.begin(), sorted_.end());
  const double position = (static_cast<double>(sorted_.size()) - 1) * (1.0 - params_.budget);
  const double below = std::floor(position);
  const double t = position - below;
  const size_t lo = static_cast<size_t>(below);
  const size_t hi = std::min(lo + 1, sorted_.size() - 1);
  const double a = sorted_[lo], b = sorted_[hi], diff = b - a;
  const double theta = t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
  const double range = sorted_.back() - sorted_.front();
  ++state_.seen;
  const double owed = params_.budget * static_cast<double>(state_.seen) -
                      static_cast<double>(state_.queried);
  const bool query = utility >= theta - range * (owed / params_.tolerance_window);
  state_.queried += query;
  return query;
}

bool StreamGate::step(double utility, int64_t c) {
  if (params_.strategy == GateStrategy::quantile) return quantile_step(utility);
  const double confidence = 1.0 - utility;
  const double w = static_cast<double>(params_.window);
  const bool budget_left = state_.spent / w < params_.budget;
  bool query = false;
  switch (params_.strategy) {
    case GateStrategy::fixed: {
      const double theta = 1.0 / c + params_.budget * (1.0 - 1.0 / c);
      query = budget_left && confidence <= theta;
      break;
    }
    case GateStrategy::variable_uncertainty:
    case GateStrategy::randomized_variable_uncertainty:
      if (budget_left) {
        double theta = state_.theta;
        if (params_.strategy == GateStrategy::randomized_variable_uncertainty)
          theta *= 1.0 + params_.delta * normal();
        query = confidence < theta;
        state_.theta *= query ? 1.0 - params_.step : 1.0 + params_.step;
      }
      break;
    case GateStrategy::split:
      if (budget_left) {
        if (params_.split > uniform()) {
          query = uniform() <= params_.budget;
        } else {
          query = confidence < state_.theta;
          state_.theta *= query ? 1.0 - params_.step : 1.0 + params_.step;
        }
      }
      break;
    case GateStrategy::random: {
      const bool draw = uniform() <= params_.budget;
      query = budget_left && draw;
      break;
    }
    case GateStrategy::quantile:
      break;  // handled by quantile_step
  }
  state_.spent = state_.spent * ((w - 1.0) / w) + (query ? 1.0 : 0.0);
  ++state_.seen;
  state_.queried += query;
  return query;
}

template <class T>
bool StreamGate::decide_one(const T* row, int64_t c) {
  std::lock_guard<std::mutex> lock(mutex_);
  double u;
  validate(row, 1, c, &u);
  state_.classes = c;
  return step(u, c);
}

template <class T>
void StreamGate::decide_many(const T* rows, int64_t n, int64_t c, uint8_t* out) {
  std::lock_guard<std::mutex> lock(mutex_);
  // All rows are checked (and scored) before the first decision: a rejected call must
  // leave the state as it was.
  utilities_.resize(static_cast<size_t>(n));
  validate(rows, n, c, utilities_.data());
  if (n > 0) state_.classes = c;
  for (int64_t r = 0; r < n; ++r) out[r] = step(utilities_[static_cast<size_t>(r)], c);
}

template bool StreamGate::decide_one<float>(const float*, int64_t);
template bool StreamGate::decide_one<double>(const double*, int64_t);
template void StreamGate::decide_many<float>(const float*, int64_t, int64_t, uint8_t*);
template void StreamGate::decide_many<double>(const double*, int64_t, int64_t, uint8_t*);

}  // namespace alcore
