// pybind11 glue for alcore._core: array checks, GIL release, exception mapping. No
// algorithms here; the Python layer has already validated shapes and dtypes, so the checks
// below only guard against misuse of this private module.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <functional>

#include "alcore/api.hpp"
#include "alcore/kcenter.hpp"
#include "alcore/stream_gate.hpp"

namespace py = pybind11;

namespace {

PyObject* invalid_value_type = nullptr;

enum class Dtype { f32, f64 };

// A byte-swapped array ('>f8' on x86) has the right kind and size but the kernels would read
// its bytes as garbage numbers (or, for indices, as out-of-range offsets).
bool native_order(const py::dtype& dt) {
  const char order = dt.byteorder();
  return order == '=' || order == '|' || order == (PY_LITTLE_ENDIAN ? '<' : '>');
}

// Why the kernels cannot read `a` in place as float32/float64 (nullptr when they can, and
// then its dtype in `dtype`).
const char* unreadable_float(const py::array& a, Dtype& dtype) {
  if (!(a.flags() & py::array::c_style)) return "must be C-contiguous";
  const auto dt = a.dtype();
  if (!native_order(dt)) return "must be in native byte order";
  if (dt.kind() == 'f' && dt.itemsize() == 4) dtype = Dtype::f32;
  else if (dt.kind() == 'f' && dt.itemsize() == 8) dtype = Dtype::f64;
  else return "must be float32 or float64";
  return nullptr;
}

Dtype float_dtype(const py::array& a, const char* name) {
  Dtype dtype;
  if (const char* why = unreadable_float(a, dtype))
    throw py::type_error(std::string(name) + " " + why);
  return dtype;
}

// The mask must already be an ndarray: converting anything else would make a temporary
// whose buffer dies before the kernel reads it. The caller's argument keeps it alive.
const uint8_t* mask_pointer(const py::object& exclude, int64_t n) {
  if (exclude.is_none()) return nullptr;
  if (!py::isinstance<py::array>(exclude))
    throw py::type_error("exclude must be a numpy array (a one-byte mask) or None");
  const auto mask = py::reinterpret_borrow<py::array>(exclude);
  if (!(mask.flags() & py::array::c_style) || mask.itemsize() != 1 || mask.ndim() != 1 ||
      mask.shape(0) != n)
    throw py::type_error("exclude must be a C-contiguous one-byte mask of length n");
  return static_cast<const uint8_t*>(mask.data());
}

alcore::ScoreOptions options(int score, bool logits, bool normalize, double atol,
                             bool scale_entropy) {
  if (score < 0 || score > 3) throw py::value_error("unknown score code");
  alcore::ScoreOptions o;
  o.score = static_cast<alcore::Score>(score);
  o.logits = logits;
  o.normalize = normalize;
  o.atol = atol;
  o.scale_entropy = scale_entropy;
  return o;
}

template <class T>
py::array score_rows_typed(const py::array& x, const alcore::ScoreOptions& o) {
  const int64_t n = x.shape(0), c = x.shape(1);
  py::array_t<T> out(n);
  const T* src = static_cast<const T*>(x.data());
  T* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    alcore::score_rows<T>(src, n, c, o, dst);
  }
  return out;
}

py::array score_rows(const py::array& x, int score, bool logits, bool normalize, double atol,
                     bool scale_entropy) {
  if (x.ndim() != 2) throw py::type_error("x must be 2-D");
  const auto o = options(score, logits, normalize, atol, scale_entropy);
  return float_dtype(x, "x") == Dtype::f32 ? score_rows_typed<float>(x, o)
                                           : score_rows_typed<double>(x, o);
}

template <class T>
py::tuple select_top_typed(const py::array& x, const alcore::ScoreOptions& o,
                           const uint8_t* exclude, int64_t k, bool all) {
  const int64_t n = x.shape(0), c = x.shape(1);
  py::array_t<int64_t> indices(k);
  py::array_t<T> top_scores(k);
  py::object all_scores = py::none();
  T* all_ptr = nullptr;
  if (all) {
    py::array_t<T> a(n);
    all_ptr = a.mutable_data();
    all_scores = a;
  }
  const T* src = static_cast<const T*>(x.data());
  int64_t* idx = indices.mutable_data();
  T* top = top_scores.mutable_data();
  {
    py::gil_scoped_release release;
    alcore::select_top<T>(src, n, c, o, exclude, k, idx, top, all_ptr);
  }
  return py::make_tuple(indices, top_scores, all_scores);
}

py::tuple select_top(const py::array& x, int score, bool logits, bool normalize, double atol,
                     bool scale_entropy, const py::object& exclude, int64_t k, bool all) {
  if (x.ndim() != 2) throw py::type_error("x must be 2-D");
  const auto o = options(score, logits, normalize, atol, scale_entropy);
  const uint8_t* mask = mask_pointer(exclude, x.shape(0));
  return float_dtype(x, "x") == Dtype::f32 ? select_top_typed<float>(x, o, mask, k, all)
                                           : select_top_typed<double>(x, o, mask, k, all);
}

// The custom utility's extra inputs: None, or a C-contiguous float64 (n, m) array; the
// caller's argument keeps it alive while the kernel reads it.
const double* extra_pointer(const py::object& extra, int64_t n, int64_t& m) {
  m = 0;
  if (extra.is_none()) return nullptr;
  if (!py::isinstance<py::array>(extra))
    throw py::type_error("extra must be a numpy array or None");
  const auto a = py::reinterpret_borrow<py::array>(extra);
  if (!(a.flags() & py::array::c_style) || a.ndim() != 2 || a.shape(0) != n ||
      a.dtype().kind() != 'f' || a.itemsize() != 8 || !native_order(a.dtype()))
    throw py::type_error("extra must be a C-contiguous float64 array of shape (n, m)");
  m = a.shape(1);
  return m ? static_cast<const double*>(a.data()) : nullptr;
}

// `address` is the C address of a function of the RowUtility<T> type for x's dtype (the
// Python layer compiles one per dtype).
template <class T>
alcore::RowUtility<T> utility_pointer(uintptr_t address) {
  if (address == 0) throw py::value_error("the utility address is null");
  return reinterpret_cast<alcore::RowUtility<T>>(address);
}

template <class T>
py::array score_rows_custom_typed(const py::array& x, const alcore::ScoreOptions& o,
                                  uintptr_t address, const py::object& extra) {
  const int64_t n = x.shape(0), c = x.shape(1);
  int64_t m;
  const double* ex = extra_pointer(extra, n, m);
  const auto fn = utility_pointer<T>(address);
  py::array_t<double> out(n);
  const T* src = static_cast<const T*>(x.data());
  double* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    alcore::score_rows_custom<T>(src, n, c, o, fn, ex, m, dst);
  }
  return out;
}

py::array score_rows_custom(const py::array& x, uintptr_t address, bool logits, bool normalize,
                            double atol, const py::object& extra) {
  if (x.ndim() != 2) throw py::type_error("x must be 2-D");
  const auto o = options(0, logits, normalize, atol, false);
  return float_dtype(x, "x") == Dtype::f32
             ? score_rows_custom_typed<float>(x, o, address, extra)
             : score_rows_custom_typed<double>(x, o, address, extra);
}

template <class T>
py::tuple select_top_custom_typed(const py::array& x, const alcore::ScoreOptions& o,
                                  uintptr_t address, const py::object& extra,
                                  const uint8_t* exclude, int64_t k, bool all) {
  const int64_t n = x.shape(0), c = x.shape(1);
  int64_t m;
  const double* ex = extra_pointer(extra, n, m);
  const auto fn = utility_pointer<T>(address);
  py::array_t<int64_t> indices(k);
  py::array_t<double> top_scores(k);
  py::object all_scores = py::none();
  double* all_ptr = nullptr;
  if (all) {
    py::array_t<double> a(n);
    all_ptr = a.mutable_data();
    all_scores = a;
  }
  const T* src = static_cast<const T*>(x.data());
  int64_t* idx = indices.mutable_data();
  double* top = top_scores.mutable_data();
  {
    py::gil_scoped_release release;
    alcore::select_top_custom<T>(src, n, c, o, fn, ex, m, exclude, k, idx, top, all_ptr);
  }
  return py::make_tuple(indices, top_scores, all_scores);
}

py::tuple select_top_custom(const py::array& x, uintptr_t address, bool logits, bool normalize,
                            double atol, const py::object& extra, const py::object& exclude,
                            int64_t k, bool all) {
  if (x.ndim() != 2) throw py::type_error("x must be 2-D");
  const auto o = options(0, logits, normalize, atol, false);
  const uint8_t* mask = mask_pointer(exclude, x.shape(0));
  return float_dtype(x, "x") == Dtype::f32
             ? select_top_custom_typed<float>(x, o, address, extra, mask, k, all)
             : select_top_custom_typed<double>(x, o, address, extra, mask, k, all);
}

template <class T>
py::array top_k_typed(const py::array& scores, const uint8_t* exclude, int64_t k) {
  const int64_t n = scores.shape(0);
  py::array_t<int64_t> indices(k);
  const T* src = static_cast<const T*>(scores.data());
  int64_t* idx = indices.mutable_data();
  {
    py::gil_scoped_release release;
    alcore::top_k<T>(src, n, exclude, k, idx);
  }
  return indices;
}

py::array top_k(const py::array& scores, const py::object& exclude, int64_t k) {
  if (scores.ndim() != 1) throw py::type_error("scores must be 1-D");
  const uint8_t* mask = mask_pointer(exclude, scores.shape(0));
  return float_dtype(scores, "scores") == Dtype::f32 ? top_k_typed<float>(scores, mask, k)
                                                     : top_k_typed<double>(scores, mask, k);
}

template <class T>
py::array sample_scores_typed(const py::array& x, alcore::SampleScore score, bool normalize,
                              double atol) {
  const int64_t t = x.shape(0), n = x.shape(1), c = x.shape(2);
  py::array_t<T> out(n);
  const T* src = static_cast<const T*>(x.data());
  T* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    alcore::sample_scores<T>(src, t, n, c, score, normalize, atol, dst);
  }
  return out;
}

py::array sample_scores(const py::array& x, int score, bool normalize, double atol) {
  if (x.ndim() != 3) throw py::type_error("x must be 3-D");
  if (score < 0 || score > 2) throw py::value_error("unknown sample score code");
  const auto s = static_cast<alcore::SampleScore>(score);
  return float_dtype(x, "x") == Dtype::f32 ? sample_scores_typed<float>(x, s, normalize, atol)
                                           : sample_scores_typed<double>(x, s, normalize, atol);
}

py::tuple kcenter(const py::array& x, const py::array& initial, int64_t k, int64_t first,
                  const py::object& progress, bool prune) {
  if (x.ndim() != 2 || !(x.flags() & py::array::c_style) || x.dtype().kind() != 'f' ||
      x.itemsize() != 4 || !native_order(x.dtype()))
    throw py::type_error("x must be a C-contiguous 2-D native float32 array");
  if (initial.ndim() != 1 || !(initial.flags() & py::array::c_style) ||
      initial.dtype().kind() != 'i' || initial.itemsize() != 8 || !native_order(initial.dtype()))
    throw py::type_error("initial must be a C-contiguous 1-D native int64 array");
  std::function<void(int64_t, int64_t)> report;
  if (!progress.is_none()) {
    report = [&progress](int64_t done, int64_t total) {
      py::gil_scoped_acquire acquire;
      progress(done, total);
    };
  }
  const float* data = static_cast<const float*>(x.data());
  const int64_t* init = static_cast<const int64_t*>(initial.data());
  alcore::KCenterResult result;
  {
    py::gil_scoped_release release;
    result = alcore::kcenter_greedy(data, x.shape(0), x.shape(1), init, initial.shape(0), k,
                                    first, report, prune);
  }
  py::array_t<int64_t> picks(static_cast<py::ssize_t>(result.picks.size()));
  py::array_t<float> radii(static_cast<py::ssize_t>(result.radii.size()));
  std::copy(result.picks.begin(), result.picks.end(), picks.mutable_data());
  std::copy(result.radii.begin(), result.radii.end(), radii.mutable_data());
  return py::make_tuple(picks, radii);
}

py::tuple smallest_k_per_row(const py::array& m, int64_t k) {
  if (m.ndim() != 2 || !(m.flags() & py::array::c_style) || m.dtype().kind() != 'f' ||
      m.itemsize() != 4 || !native_order(m.dtype()))
    throw py::type_error("m must be a C-contiguous 2-D native float32 array");
  const int64_t rows = m.shape(0), cols = m.shape(1);
  py::array_t<float> values({rows, k});
  py::array_t<int64_t> columns({rows, k});
  const float* src = static_cast<const float*>(m.data());
  float* v = values.mutable_data();
  int64_t* c = columns.mutable_data();
  {
    py::gil_scoped_release release;
    alcore::smallest_k_per_row(src, rows, cols, k, v, c);
  }
  return py::make_tuple(values, columns);
}

// The per-item call of a stream takes any object and answers None for anything but a
// C-contiguous 1-D float32/float64 ndarray in native byte order: the Python layer converts
// and checks only then. (An argument pybind11 cannot cast would instead fail overload
// resolution, whose error message alone costs microseconds.) Exactly an ndarray, not a
// subclass: a masked array's buffer holds its masked entries too.
py::object gate_decide_one(alcore::StreamGate& gate, py::handle row) {
  if (Py_TYPE(row.ptr()) != py::detail::npy_api::get().PyArray_Type_) return py::none();
  const auto a = py::reinterpret_borrow<py::array>(row);
  Dtype dtype;
  if (a.ndim() != 1 || unreadable_float(a, dtype)) return py::none();
  const bool f32 = dtype == Dtype::f32;
  const void* src = a.data();
  const int64_t c = a.shape(0);
  // Uncontended (the common case): decide with the GIL held, no release/reacquire cost.
  // Contended: release the GIL before blocking, so a long decide_many elsewhere does not
  // freeze every Python thread.
  int decision = f32 ? gate.try_decide_one(static_cast<const float*>(src), c)
                     : gate.try_decide_one(static_cast<const double*>(src), c);
  if (decision < 0) {
    py::gil_scoped_release release;
    decision = f32 ? gate.decide_one(static_cast<const float*>(src), c)
                   : gate.decide_one(static_cast<const double*>(src), c);
  }
  return py::bool_(decision == 1);
}

py::array gate_decide_many(alcore::StreamGate& gate, const py::array& rows) {
  if (rows.ndim() != 2) throw py::type_error("rows must be 2-D");
  const int64_t n = rows.shape(0), c = rows.shape(1);
  py::array_t<bool> out(n);
  auto* dst = reinterpret_cast<uint8_t*>(out.mutable_data());
  const bool f32 = float_dtype(rows, "rows") == Dtype::f32;
  const void* src = rows.data();
  {
    py::gil_scoped_release release;
    if (f32) gate.decide_many(static_cast<const float*>(src), n, c, dst);
    else gate.decide_many(static_cast<const double*>(src), n, c, dst);
  }
  return out;
}

// As gate_decide_one for a caller's utility: exactly a Python float is decided here, any
// other object answers None for the Python layer to convert or refuse.
py::object gate_decide_utility_one(alcore::StreamGate& gate, py::handle utility) {
  if (!PyFloat_CheckExact(utility.ptr())) return py::none();
  const double u = PyFloat_AS_DOUBLE(utility.ptr());
  int decision = gate.try_decide_utility_one(u);
  if (decision < 0) {
    py::gil_scoped_release release;
    decision = gate.decide_utility_one(u);
  }
  return py::bool_(decision == 1);
}

py::array gate_decide_utility_many(alcore::StreamGate& gate, const py::array& utilities) {
  if (utilities.ndim() != 1 || !(utilities.flags() & py::array::c_style) ||
      utilities.dtype().kind() != 'f' || utilities.itemsize() != 8 ||
      !native_order(utilities.dtype()))
    throw py::type_error("utilities must be a C-contiguous 1-D native float64 array");
  const int64_t n = utilities.shape(0);
  py::array_t<bool> out(n);
  auto* dst = reinterpret_cast<uint8_t*>(out.mutable_data());
  const double* src = static_cast<const double*>(utilities.data());
  {
    py::gil_scoped_release release;
    gate.decide_utility_many(src, n, dst);
  }
  return out;
}

py::array gate_utilities(const alcore::StreamGate& gate, const py::array& rows) {
  if (rows.ndim() != 2) throw py::type_error("rows must be 2-D");
  const int64_t n = rows.shape(0), c = rows.shape(1);
  py::array_t<double> out(n);
  double* dst = out.mutable_data();
  const bool f32 = float_dtype(rows, "rows") == Dtype::f32;
  const void* src = rows.data();
  {
    py::gil_scoped_release release;
    if (f32) gate.utilities(static_cast<const float*>(src), n, c, dst);
    else gate.utilities(static_cast<const double*>(src), n, c, dst);
  }
  return out;
}

py::tuple gate_state(const alcore::StreamGate& gate) {
  alcore::GateState s;
  {
    py::gil_scoped_release release;  // the gate's lock may be held by a long decide_many
    s = gate.state();
  }
  return py::make_tuple(s.spent, s.theta, s.seen, s.queried, s.draws, s.classes,
                        py::cast(s.history));
}

void gate_set_state(alcore::StreamGate& gate, double spent, double theta, int64_t seen,
                    int64_t queried, uint64_t draws, int64_t classes,
                    const std::vector<double>& history) {
  alcore::GateState s;
  s.spent = spent, s.theta = theta, s.seen = seen, s.queried = queried, s.draws = draws;
  s.classes = classes, s.history = history;
  py::gil_scoped_release release;
  gate.set_state(s);
}

py::dict gate_params(const alcore::StreamGate& gate) {
  const alcore::GateParams& p = gate.params();
  py::dict d;
  d["strategy"] = static_cast<int>(p.strategy);
  d["utility"] = static_cast<int>(p.utility);
  d["budget"] = p.budget;
  d["window"] = p.window;
  d["theta"] = p.theta;
  d["step"] = p.step;
  d["delta"] = p.delta;
  d["split"] = p.split;
  d["atol"] = p.atol;
  d["w_tol"] = p.tolerance_window;
  d["seed"] = p.seed;
  d["hard_cap"] = p.hard_cap;
  d["logits"] = p.logits;
  return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "alcore native core (private; use the alcore package)";
  // Carries (problem, member, row, col, value) so the Python layer can phrase the message
  // with the argument's public name.
  invalid_value_type = PyErr_NewException("alcore._core.InvalidValue", PyExc_ValueError, nullptr);
  m.add_object("InvalidValue", py::handle(invalid_value_type));
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const alcore::InvalidValue& e) {
      const auto& b = e.bad;
      py::tuple args = py::make_tuple(static_cast<int>(b.problem), b.member, b.row, b.col,
                                      b.value);
      PyErr_SetObject(invalid_value_type, args.ptr());
    } catch (const alcore::OutOfRange& e) {
      // Public wording already (the core names the public argument): the public error type.
      py::object cls = py::module_::import("alcore._errors").attr("InvalidInputError");
      PyErr_SetString(cls.ptr(), e.what());
    }
  });

  m.def("score_rows", &score_rows, py::arg("x"), py::arg("score"), py::arg("logits"),
        py::arg("normalize"), py::arg("atol"), py::arg("scale_entropy"));
  m.def("select_top", &select_top, py::arg("x"), py::arg("score"), py::arg("logits"),
        py::arg("normalize"), py::arg("atol"), py::arg("scale_entropy"), py::arg("exclude"),
        py::arg("k"), py::arg("all_scores"));
  m.def("score_rows_custom", &score_rows_custom, py::arg("x"), py::arg("address"),
        py::arg("logits"), py::arg("normalize"), py::arg("atol"), py::arg("extra"));
  m.def("select_top_custom", &select_top_custom, py::arg("x"), py::arg("address"),
        py::arg("logits"), py::arg("normalize"), py::arg("atol"), py::arg("extra"),
        py::arg("exclude"), py::arg("k"), py::arg("all_scores"));
  m.def("top_k", &top_k, py::arg("scores"), py::arg("exclude"), py::arg("k"));
  m.def("sample_scores", &sample_scores, py::arg("x"), py::arg("score"), py::arg("normalize"),
        py::arg("atol"));
  m.def("kcenter", &kcenter, py::arg("x"), py::arg("initial"), py::arg("k"), py::arg("first"),
        py::arg("progress"), py::arg("prune"));
  m.def("smallest_k_per_row", &smallest_k_per_row, py::arg("m"), py::arg("k"));
  py::class_<alcore::StreamGate>(m, "StreamGate")
      .def(py::init([](int strategy, int utility, double budget, int64_t window, double theta,
                       double step, double delta, double split, double atol, double w_tol,
                       uint64_t seed, bool hard_cap, bool logits, uintptr_t custom_f32,
                       uintptr_t custom_f64) {
             alcore::GateParams p;
             p.strategy = static_cast<alcore::GateStrategy>(strategy);
             p.utility = static_cast<alcore::GateUtility>(utility);
             p.budget = budget, p.window = window, p.theta = theta, p.step = step;
             p.delta = delta, p.split = split, p.atol = atol, p.seed = seed;
             p.tolerance_window = w_tol, p.hard_cap = hard_cap, p.logits = logits;
             // Addresses of compiled utilities (alcore.utility), 0 for the built-in one.
             p.custom_f32 = reinterpret_cast<alcore::RowUtility<float>>(custom_f32);
             p.custom_f64 = reinterpret_cast<alcore::RowUtility<double>>(custom_f64);
             return std::make_unique<alcore::StreamGate>(p);
           }),
           py::arg("strategy"), py::arg("utility"), py::arg("budget"), py::arg("window"),
           py::arg("theta"), py::arg("step"), py::arg("delta"), py::arg("split"),
           py::arg("atol"), py::arg("w_tol"), py::arg("seed"), py::arg("hard_cap"),
           py::arg("logits"), py::arg("custom_f32"), py::arg("custom_f64"))
      .def("decide_one", &gate_decide_one, py::arg("row"))
      .def("decide_many", &gate_decide_many, py::arg("rows"))
      .def("decide_utility_one", &gate_decide_utility_one, py::arg("utility"))
      .def("decide_utility_many", &gate_decide_utility_many, py::arg("utilities"))
      .def("utilities", &gate_utilities, py::arg("rows"))
      .def("max_utility", &alcore::StreamGate::max_utility, py::arg("classes"))
      .def("params", &gate_params)
      .def("state", &gate_state)
      .def("set_state", &gate_set_state);
  m.def("set_num_threads", &alcore::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &alcore::get_num_threads);
  m.def("isa", &alcore::isa_name);
}
