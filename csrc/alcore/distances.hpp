// Distance kernels of one instruction-set variant (compiled per variant, like kernels.cpp).
#pragma once

#include <cstdint>

#ifndef ALCORE_ISA
#error "ALCORE_ISA must name the instruction-set variant"
#endif

namespace alcore {
namespace ALCORE_ISA {

template <class T>
void sq_distances(const T* x, int64_t d, const int64_t* rows, int64_t count, const T* point,
                  T* out);

template <class T>
void nearest_centers(const T* x, int64_t d, int64_t row_begin, int64_t row_end,
                     const int64_t* centers, int64_t n_centers, T* min_sq, int64_t* which);

}  // namespace ALCORE_ISA
}  // namespace alcore
