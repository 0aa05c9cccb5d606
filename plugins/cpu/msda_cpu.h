// detrt plugins/cpu/msda_cpu.h: the CPU multi-scale deformable attention kernel (layouts: plugins/common/msda_core.h).
#ifndef DETRT_CPU_MSDA_CPU_H
#define DETRT_CPU_MSDA_CPU_H

#include <cstdint>

#include "msda_core.h"

namespace detrt {
namespace cpu {

// Checks spatial_shapes (H, W >= 1), level_start_index (= exclusive prefix sums of H*W) and
// S = sum of H*W; throws detrt::Error naming the argument. shapes/starts are int64 as the caller has them.
void msda_check_levels(const int64_t* spatial_shapes, const int64_t* level_start_index, int levels, int64_t S);

// out = MSDA(value, ...) for T = float or detrt::half_t (attention weights of the same type); sampling
// locations TL = T, or float with a half_t T (what a float16 engine feeds the plugin).
// num_threads <= 0: OpenMP's default. Shapes must have passed msda_check_levels.
template <typename T, typename TL>
void ms_deform_attn(const T* value, const int* spatial_shapes, const int* level_start_index,
                    const TL* sampling_locations, const T* attention_weights, T* out, const msda::Dims& dims,
                    int num_threads);

// "avx512", "avx2+fma" or "baseline": which compiled variant of the float kernel this CPU runs.
const char* msda_isa();

}  // namespace cpu
}  // namespace detrt

#endif  // DETRT_CPU_MSDA_CPU_H
