// Chooses the kernel variant for this CPU once. ALCORE_ISA=baseline|avx2|avx512 in the
// environment forces a (supported) lower variant, which the tests use to check the
// portable path on machines that have wider SIMD.
#include <cstdlib>
#include <cstring>
#include <string>

#include "alcore/kernels.hpp"
#include "alcore/quantized.hpp"

namespace alcore {

#define ALCORE_DECLARE_VARIANT(name)         \
  namespace name {                           \
  extern const Kernels<float> table_f32;     \
  extern const Kernels<double> table_f64;    \
  extern const KCenterKernels table_kcenter; \
  }
ALCORE_DECLARE_VARIANT(baseline)
#if ALCORE_X86
ALCORE_DECLARE_VARIANT(avx2)
#if ALCORE_HAVE_AVX512
ALCORE_DECLARE_VARIANT(avx512)
#endif
#endif

namespace {

struct Choice {
  const Kernels<float>* f32;
  const Kernels<double>* f64;
  const KCenterKernels* kcenter;
  const char* name;
};

Choice choose() {
  const char* forced = std::getenv("ALCORE_ISA");
  auto allowed = [&](const char* name) {
    if (!forced || !*forced) return true;
    // A forced variant caps the choice: "avx2" allows avx2 and baseline.
    static const char* order[] = {"baseline", "avx2", "avx512"};
    int cap = 2, want = 0;
    for (int i = 0; i < 3; ++i) {
      if (std::strcmp(forced, order[i]) == 0) cap = i;
      if (std::strcmp(name, order[i]) == 0) want = i;
    }
    return want <= cap;
  };
#if ALCORE_X86
  __builtin_cpu_init();
#if ALCORE_HAVE_AVX512
  if (allowed("avx512") && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl"))
    return {&avx512::table_f32, &avx512::table_f64, &avx512::table_kcenter, "avx512"};
#endif
  if (allowed("avx2") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("bmi2"))
    return {&avx2::table_f32, &avx2::table_f64, &avx2::table_kcenter, "avx2"};
#endif
  (void)allowed;
  return {&baseline::table_f32, &baseline::table_f64, &baseline::table_kcenter, "baseline"};
}

const Choice& chosen() {
  static const Choice choice = choose();
  return choice;
}

}  // namespace

const Kernels<float>& kernels_f32() { return *chosen().f32; }
const Kernels<double>& kernels_f64() { return *chosen().f64; }
const KCenterKernels& kcenter_kernels() { return *chosen().kcenter; }
std::string isa_name() { return chosen().name; }

}  // namespace alcore
