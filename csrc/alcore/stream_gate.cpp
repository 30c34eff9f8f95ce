#include "alcore/stream_gate.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "alcore/api.hpp"
#include "alcore/kernels.hpp"
#include "alcore/parallel.hpp"

namespace alcore {
namespace {

// decide_many computes the utilities in blocks that stay in L2, in parallel over chunks of
// at least kRowsPerChunk rows; the decisions then run in order over the utility buffer.
constexpr int64_t kBlockRows = 1024;
constexpr int64_t kRowsPerChunk = 1 << 14;

template <class T>
const Kernels<T>& gate_kernels();
template <>
const Kernels<float>& gate_kernels<float>() { return kernels_f32(); }
template <>
const Kernels<double>& gate_kernels<double>() { return kernels_f64(); }

Score score_of(GateUtility u) {
  switch (u) {
    case GateUtility::margin: return Score::margin;
    case GateUtility::entropy: return Score::entropy;
    case GateUtility::least_confidence: break;
  }
  return Score::least_confidence;
}

// Names what is wrong with row r, which the kernel rejected, and throws.
template <class T>
[[noreturn]] void reject_row(const T* p, int64_t c, int64_t r) {
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
  T sum = 0;
  for (int64_t j = 0; j < c; ++j) sum += p[j];
  BadValue problem;
  problem.problem = Problem::row_sum, problem.row = r, problem.value = static_cast<double>(sum);
  throw InvalidValue(problem);
}

// The pieces of a decision that decide_many's fast loop shares with step(): one expression
// each, so both compile to the same arithmetic.
inline double decayed_spending(double spent, double w, bool query) {
  return spent * ((w - 1.0) / w) + (query ? 1.0 : 0.0);
}

inline double adapted_theta(double theta, double step, bool queried) {
  // Rows of confidence 0 (ties, uniform rows) are queried at any positive threshold; tens of
  // thousands of them in a row would shrink theta to 0, where nothing is queried again and
  // no growth step can bring it back. DBL_MIN keeps such a gate alive. The top (kThetaMax)
  // only matters for the randomized strategy, whose noisy comparisons can let theta climb:
  // kept finite, every saved state can be restored.
  return std::clamp(theta * (queried ? 1.0 - step : 1.0 + step),
                    std::numeric_limits<double>::min(), kThetaMax);
}

// SplitMix64 of (seed, counter): the n-th random number depends only on the seed and n, so
// a gate restored from its state continues the same sequence.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

void QuantileWindow::seek(int64_t rank) {
  for (; tracked_rank_ < rank; ++tracked_rank_) ++tracked_;
  for (; tracked_rank_ > rank; --tracked_rank_) --tracked_;
}

void QuantileWindow::push(double u, double q) {
  Tree::iterator inserted;
  if (size() == window_) {
    // Keep tracked_ on a live element: step off the oldest before it leaves.
    const Tree::iterator oldest = ring_[head_];
    if (oldest == tracked_) {
      const Tree::iterator next = std::next(oldest);
      if (next != tree_.end()) {
        tracked_ = next;  // its rank is unchanged once the oldest is gone
      } else if (oldest != tree_.begin()) {
        tracked_ = std::prev(oldest);
        --tracked_rank_;
      } else {
        tracked_ = tree_.end();
        tracked_rank_ = -1;
      }
    } else if (*oldest < *tracked_) {
      --tracked_rank_;
    }
    Tree::node_type node = tree_.extract(oldest);  // reused: no allocation
    node.value() = {u, arrivals_++};
    inserted = tree_.insert(std::move(node)).position;
    ring_[head_] = inserted;
    head_ = (head_ + 1) % static_cast<size_t>(window_);
  } else {
    inserted = tree_.insert({u, arrivals_++}).first;
    ring_.push_back(inserted);
  }
  if (tracked_ == tree_.end()) {
    tracked_ = inserted, tracked_rank_ = 0;
  } else if (*inserted < *tracked_) {
    ++tracked_rank_;
  }
  seek(static_cast<int64_t>(std::floor((static_cast<double>(size()) - 1) * q)));
}

double QuantileWindow::quantile(double q) const {
  // numpy's linear interpolation between the two order statistics around the position.
  const double position = (static_cast<double>(size()) - 1) * q;
  const double t = position - std::floor(position);
  const Tree::const_iterator lo = tracked_, after = std::next(lo);
  const double a = lo->first, b = after == tree_.end() ? a : after->first, diff = b - a;
  return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
}

std::vector<double> QuantileWindow::history() const {
  std::vector<double> out;
  out.reserve(ring_.size());
  for (size_t i = 0; i < ring_.size(); ++i) out.push_back(ring_[(head_ + i) % ring_.size()]->first);
  return out;
}

void QuantileWindow::assign(const std::vector<double>& history, double q) {
  tree_.clear();
  ring_.clear();
  head_ = 0;
  tracked_ = tree_.end();
  tracked_rank_ = -1;
  for (double u : history) push(u, q);
}

StreamGate::StreamGate(const GateParams& params) : params_(params), window_(params.window) {
  if (!(params.budget > 0 && params.budget <= 1))
    throw std::invalid_argument("budget must be in (0, 1]");
  if (params.window < 1) throw std::invalid_argument("window must be >= 1");
  if (!(params.tolerance_window > 0)) throw std::invalid_argument("w_tol must be > 0");
  if (static_cast<int>(params.strategy) < 0 || static_cast<int>(params.strategy) > 5)
    throw std::invalid_argument("unknown strategy code");
  if (static_cast<int>(params.utility) < 0 || static_cast<int>(params.utility) > 2)
    throw std::invalid_argument("unknown utility code");
  if ((params.custom_f32 == nullptr) != (params.custom_f64 == nullptr))
    throw std::invalid_argument("a custom utility needs both the float32 and float64 entry");
  state_.theta = params.theta;
}

GateState StreamGate::state() const {
  std::lock_guard<std::mutex> lock(mutex_);
  GateState out = state_;
  out.history = window_.history();
  return out;
}

void StreamGate::set_state(const GateState& state) {
  if (static_cast<int64_t>(state.history.size()) > params_.window)
    throw std::invalid_argument("history is longer than the window");
  for (double u : state.history)
    if (!std::isfinite(u)) throw std::invalid_argument("history holds a non-finite utility");
  // seen <= 2^62 keeps seen + 1 (and every later count of a realistic stream) in range.
  if (state.seen < 0 || state.seen > (int64_t{1} << 62) || state.queried < 0 ||
      state.queried > state.seen ||
      !std::isfinite(state.spent) || !std::isfinite(state.theta) || state.spent < 0 ||
      state.classes < -1 || state.classes == 0 || state.classes == 1)
    throw std::invalid_argument("counters out of range");
  std::lock_guard<std::mutex> lock(mutex_);
  state_ = state;
  state_.history.clear();
  window_.assign(state.history, 1.0 - params_.budget);
}

double StreamGate::max_utility(int64_t c) const {
  return params_.utility == GateUtility::least_confidence ? 1.0 - 1.0 / static_cast<double>(c)
                                                          : 1.0;
}

void StreamGate::adapt_threshold(bool queried) {
  state_.theta = adapted_theta(state_.theta, params_.step, queried);
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
RowUtility<T> custom_of(const GateParams& p);
template <>
RowUtility<float> custom_of<float>(const GateParams& p) { return p.custom_f32; }
template <>
RowUtility<double> custom_of<double>(const GateParams& p) { return p.custom_f64; }

// Logits: a float64 softmax per row (shifted by the row's max, so no exp overflows). A row's
// probabilities depend on the row alone, so one row and a batch agree bit for bit.
template <class T>
bool softmax_rows(const T* x, int64_t rows, int64_t c, std::vector<double>& probs,
                  BadValue& bad) {
  probs.resize(static_cast<size_t>(rows * c));
  for (int64_t r = 0; r < rows; ++r) {
    const T* z = x + r * c;
    double* q = probs.data() + r * c;
    double top = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < c; ++j) {
      if (!std::isfinite(z[j])) {
        bad.problem = Problem::not_finite, bad.row = r, bad.col = j;
        bad.value = static_cast<double>(z[j]);
        return false;
      }
      top = std::max(top, static_cast<double>(z[j]));
    }
    double sum = 0;
    for (int64_t j = 0; j < c; ++j) sum += q[j] = std::exp(static_cast<double>(z[j]) - top);
    for (int64_t j = 0; j < c; ++j) q[j] /= sum;
  }
  return true;
}

template <class T>
bool StreamGate::block_utilities(const T* x, int64_t rows, int64_t c, double* out,
                                 std::vector<double>& scratch, std::vector<double>& probs,
                                 BadValue& bad) const {
  const Score score = score_of(params_.utility);
  // The checks (and the built-in utility, which a custom one then replaces). On failure
  // `valid` rows passed them.
  bool checked;
  int64_t valid = rows;
  if (params_.logits) {
    checked = softmax_rows(x, rows, c, probs, bad);
    if (!checked) valid = bad.row;
    BadValue unexpected;  // softmax rows always pass the probability checks
    if (valid > 0 && !kernels_f64().gate_utilities(probs.data(), valid, c, score,
                                                   params_.atol, out, scratch, unexpected)) {
      bad = unexpected;
      return false;
    }
  } else {
    checked = gate_kernels<T>().gate_utilities(x, rows, c, score, params_.atol, out, scratch,
                                               bad);
    if (!checked) valid = bad.row;
  }
  const RowUtility<T> custom = custom_of<T>(params_);
  if (custom == nullptr) return checked;
  // The lowest failing row of the block, whether its input or its utility fails, so the
  // row reported does not depend on where blocks (that is, thread chunks) start.
  for (int64_t r = 0; r < valid; ++r) {
    const double u = custom(x + r * c, c, nullptr);
    if (!(std::abs(u) <= kUtilityMax)) {  // NaN fails too
      bad = BadValue{};
      bad.problem = std::isfinite(u) ? Problem::too_large : Problem::utility;
      bad.row = r, bad.value = u;
      return false;
    }
    out[r] = u;
  }
  return checked;
}

template <class T>
void StreamGate::validate(const T* rows, int64_t n, int64_t c, int64_t classes,
                          double* utilities, std::vector<double>& scratch,
                          std::vector<double>& probs) const {
  if (c < 2) throw std::invalid_argument("need at least two classes");
  if (classes >= 0 && c != classes)
    throw std::invalid_argument("class count differs from the gate's");
  // The softmax and the custom utility describe their bad value; the probability kernel
  // sets only the row.
  const auto reject = [&](int64_t r, BadValue bad) {
    if (bad.problem == Problem::none) reject_row(rows + r * c, c, r);
    bad.row = r;
    throw InvalidValue(bad);
  };
  if (n <= kBlockRows) {
    BadValue bad;
    if (!block_utilities(rows, n, c, utilities, scratch, probs, bad)) reject(bad.row, bad);
    return;
  }
  // The thread count is read once; every row's utility depends on the row alone, so the
  // result does not depend on it. The lowest chunk's first bad row is the first overall.
  const int chunks = planned_chunks(n, kRowsPerChunk);
  std::vector<BadValue> first_bad(static_cast<size_t>(chunks));
  run_chunks(n, chunks, [&](int chunk, int64_t begin, int64_t end) {
    std::vector<double> local, local_probs;
    for (int64_t b = begin; b < end; b += kBlockRows) {
      BadValue bad;
      if (!block_utilities(rows + b * c, std::min(kBlockRows, end - b), c, utilities + b,
                           local, local_probs, bad)) {
        bad.row += b;
        first_bad[static_cast<size_t>(chunk)] = bad;
        return;
      }
    }
  });
  for (const BadValue& bad : first_bad)
    if (bad.row >= 0) reject(bad.row, bad);
}

void StreamGate::check_utilities(const double* u, int64_t n) const {
  if (n > 0 && params_.strategy == GateStrategy::fixed && state_.classes < 2)
    throw std::invalid_argument("the fixed strategy needs the class count");
  for (int64_t r = 0; r < n; ++r) {
    if (std::isfinite(u[r]) && std::abs(u[r]) <= kUtilityMax) continue;
    BadValue bad;
    bad.problem = std::isfinite(u[r]) ? Problem::too_large : Problem::not_finite;
    bad.row = r, bad.value = u[r];
    throw InvalidValue(bad);
  }
}

// The balanced incremental quantile filter (Kottke et al. 2015), as scikit-activeml's
// BalancedIncrementalQuantileFilter: theta is the (1 - budget) quantile of the last
// `window` utilities (numpy's linear interpolation, reproduced bit for bit), lowered by
// range * (labels owed) / w_tol so that spending catches up with the budget.
bool StreamGate::quantile_step(double utility) {
  const double q = 1.0 - params_.budget;
  window_.push(utility, q);
  const double theta = window_.quantile(q);
  const double range = window_.range();
  const bool allowed = within_cap();
  ++state_.seen;
  const double owed = params_.budget * static_cast<double>(state_.seen) -
                      static_cast<double>(state_.queried);
  // With every utility in the window equal (a saturated or constant model: range 0) the
  // balancing term vanishes and u >= theta held for every item, so the filter queried all of
  // them (1000x a 0.1 % budget). Then only the labels owed decide, as the term's sign would.
  const bool wanted = range > 0 ? utility >= theta - range * (owed / params_.tolerance_window)
                                : owed > 0;
  const bool query = allowed && wanted;
  state_.queried += query;
  // Not used by the filter; kept so the windowed spending reads the same for every strategy.
  const double w = static_cast<double>(params_.window);
  state_.spent = decayed_spending(state_.spent, w, query);
  return query;
}

bool StreamGate::within_cap() const {
  // Evaluated before this item is counted: queried + 1 <= budget * (seen + 1) + 1.
  return !params_.hard_cap || static_cast<double>(state_.queried) <=
                                  params_.budget * static_cast<double>(state_.seen + 1);
}

bool StreamGate::step(double utility, int64_t c) {
  if (params_.strategy == GateStrategy::quantile) return quantile_step(utility);
  const double confidence = 1.0 - utility;
  const double w = static_cast<double>(params_.window);
  const bool budget_left = state_.spent / w < params_.budget && within_cap();
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
        adapt_threshold(query);
      }
      break;
    case GateStrategy::split:
      if (budget_left) {
        if (params_.split > uniform()) {
          query = uniform() <= params_.budget;
        } else {
          query = confidence < state_.theta;
          adapt_threshold(query);
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
  state_.spent = decayed_spending(state_.spent, w, query);
  ++state_.seen;
  state_.queried += query;
  return query;
}

template <class T>
bool StreamGate::decide_locked(const T* row, int64_t c) {
  double u;
  validate(row, 1, c, state_.classes, &u, scratch_, probs_);
  state_.classes = c;
  return step(u, c);
}

template <class T>
bool StreamGate::decide_one(const T* row, int64_t c) {
  std::lock_guard<std::mutex> lock(mutex_);
  return decide_locked(row, c);
}

template <class T>
int StreamGate::try_decide_one(const T* row, int64_t c) {
  std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock()) return -1;
  return decide_locked(row, c) ? 1 : 0;
}

template <class T>
void StreamGate::utilities(const T* rows, int64_t n, int64_t c, double* out) const {
  int64_t classes;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    classes = state_.classes;
  }
  std::vector<double> scratch, probs;
  validate(rows, n, c, classes, out, scratch, probs);  // reads only the immutable params
}

template <class T>
void StreamGate::decide_many(const T* rows, int64_t n, int64_t c, uint8_t* out) {
  std::lock_guard<std::mutex> lock(mutex_);
  // All rows are checked (and scored) before the first decision: a rejected call must
  // leave the state as it was.
  utilities_.resize(static_cast<size_t>(n));
  validate(rows, n, c, state_.classes, utilities_.data(), scratch_, probs_);
  if (n > 0) state_.classes = c;
  decide_utilities_locked(utilities_.data(), n, c, out);
}

bool StreamGate::decide_utility_locked(double utility) {
  check_utilities(&utility, 1);
  return step(utility, state_.classes);
}

bool StreamGate::decide_utility_one(double utility) {
  std::lock_guard<std::mutex> lock(mutex_);
  return decide_utility_locked(utility);
}

int StreamGate::try_decide_utility_one(double utility) {
  std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock()) return -1;
  return decide_utility_locked(utility) ? 1 : 0;
}

void StreamGate::decide_utility_many(const double* utilities, int64_t n, uint8_t* out) {
  std::lock_guard<std::mutex> lock(mutex_);
  check_utilities(utilities, n);
  decide_utilities_locked(utilities, n, state_.classes, out);
}

void StreamGate::decide_utilities_locked(const double* u, int64_t n, int64_t c, uint8_t* out) {
  if (params_.strategy != GateStrategy::variable_uncertainty) {
    for (int64_t r = 0; r < n; ++r) out[r] = step(u[r], c);
    return;
  }
  // step() for the variable strategy with the state in registers (out[] is a byte array,
  // which may alias the state's members: through `this` every item would reload them).
  const double w = static_cast<double>(params_.window), budget = params_.budget;
  const double s = params_.step;
  const bool hard_cap = params_.hard_cap;
  double spent = state_.spent, theta = state_.theta;
  int64_t seen = state_.seen, queried = state_.queried;
  for (int64_t r = 0; r < n; ++r) {
    // within_cap() and the budget test of step(), in the same order.
    const bool allowed =
        !hard_cap || static_cast<double>(queried) <= budget * static_cast<double>(seen + 1);
    bool query = false;
    if (spent / w < budget && allowed) {
      query = 1.0 - u[r] < theta;
      theta = adapted_theta(theta, s, query);
    }
    spent = decayed_spending(spent, w, query);
    ++seen;
    queried += query;
    out[r] = query;
  }
  state_.spent = spent, state_.theta = theta, state_.seen = seen, state_.queried = queried;
}

template bool StreamGate::decide_one<float>(const float*, int64_t);
template bool StreamGate::decide_one<double>(const double*, int64_t);
template int StreamGate::try_decide_one<float>(const float*, int64_t);
template int StreamGate::try_decide_one<double>(const double*, int64_t);
template void StreamGate::utilities<float>(const float*, int64_t, int64_t, double*) const;
template void StreamGate::utilities<double>(const double*, int64_t, int64_t, double*) const;
template void StreamGate::decide_many<float>(const float*, int64_t, int64_t, uint8_t*);
template void StreamGate::decide_many<double>(const double*, int64_t, int64_t, uint8_t*);

}  // namespace alcore
