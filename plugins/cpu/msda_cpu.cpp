// detrt plugins/cpu/msda_cpu.cpp: CPU MSDA. OpenMP over rows (n, q, m); per row the shared core
// (msda::query_head) computes each sampling point's taps once and runs a vectorizable loop over D.
// On x86-64 a second copy of the row loop is compiled for AVX2+FMA+F16C and picked at run time,
// so the package stays portable (no -march=native) and still uses wide vectors where they exist.
#include "msda_cpu.h"

#include <algorithm>
#include <vector>

#include "check.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(DETRT_NO_ISA_DISPATCH)
#define DETRT_MSDA_DISPATCH 1
#endif

namespace detrt {
namespace cpu {

void msda_check_levels(const int64_t* spatial_shapes, const int64_t* level_start_index, int levels, int64_t S) {
  DETRT_CHECK(levels >= 1, "spatial_shapes must have at least one level");
  int64_t start = 0;
  for (int l = 0; l < levels; ++l) {
    const int64_t h = spatial_shapes[2 * l], w = spatial_shapes[2 * l + 1];
    DETRT_CHECK(h >= 1 && w >= 1, "spatial_shapes[", l, "] must be positive, got (", h, ", ", w, ")");
    DETRT_CHECK(h <= S && w <= S && h * w <= S, "spatial_shapes[", l, "] = (", h, ", ", w,
                ") has more positions than value's S = ", S);
    DETRT_CHECK(level_start_index[l] == start, "level_start_index[", l, "] must be ", start,
                " (the sum of H*W of the levels before it), got ", level_start_index[l]);
    start += h * w;
    DETRT_CHECK(start <= S, "spatial_shapes covers more positions than value's S = ", S);
  }
  DETRT_CHECK(start == S, "spatial_shapes covers ", start, " positions but value has S = ", S);
}

namespace {

template <typename T>
struct Args {
  const T* value;
  const int* shapes;
  const int* starts;
  const T* loc;
  const T* attn;
  T* out;
  msda::Dims dims;
};

// Rows [begin, end) of the flattened (n, q, m) index; acc is scratch of D floats.
template <typename T>
DETRT_INLINE void rows(const Args<T>& a, int64_t begin, int64_t end, float* acc) {
  const int M = a.dims.M, Lq = a.dims.Lq;
  for (int64_t r = begin; r < end; ++r) {
    const int m = static_cast<int>(r % M);
    const int64_t nq = r / M;
    const int q = static_cast<int>(nq % Lq);
    const int n = static_cast<int>(nq / Lq);
    msda::query_head(a.value, a.loc, a.attn, a.shapes, a.starts, a.dims, n, q, m, acc, a.out);
  }
}

template <typename T>
void rows_baseline(const Args<T>& a, int64_t begin, int64_t end, float* acc) {
  rows(a, begin, end, acc);
}

#if defined(DETRT_MSDA_DISPATCH)
// flatten: everything the row loop calls is inlined here, so no AVX2 copy of a shared inline function
// can be picked by the linker for the baseline path.
template <typename T>
__attribute__((target("avx2,fma,f16c"), flatten)) void rows_avx2(const Args<T>& a, int64_t begin, int64_t end,
                                                                 float* acc) {
  rows(a, begin, end, acc);
}

bool cpu_has_avx2_fma() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  }();
  return has;
}
#endif

}  // namespace

const char* msda_isa() {
#if defined(DETRT_MSDA_DISPATCH)
  if (cpu_has_avx2_fma()) return "avx2+fma";
#endif
  return "baseline";
}

template <typename T>
void ms_deform_attn(const T* value, const int* spatial_shapes, const int* level_start_index,
                    const T* sampling_locations, const T* attention_weights, T* out, const msda::Dims& dims,
                    int num_threads) {
  const Args<T> a{value, spatial_shapes, level_start_index, sampling_locations, attention_weights, out, dims};
  const int64_t total = static_cast<int64_t>(dims.N) * dims.Lq * dims.M;
  if (total == 0 || dims.D == 0) {
    // Nothing to sample, but out still has to be written where it has elements.
    std::fill(reinterpret_cast<char*>(out), reinterpret_cast<char*>(out + total * dims.D), 0);
    return;
  }
  void (*fn)(const Args<T>&, int64_t, int64_t, float*) = rows_baseline<T>;
#if defined(DETRT_MSDA_DISPATCH)
  if (cpu_has_avx2_fma()) fn = rows_avx2<T>;
#endif
  // Small problems run on the calling thread: a parallel region costs more than it saves.
  const int64_t work = total * dims.L * dims.P * (dims.D + 8);
  int threads = 1;
#if defined(_OPENMP)
  threads = num_threads > 0 ? num_threads : omp_get_max_threads();
  if (work < (int64_t(1) << 15)) threads = 1;
#endif
  if (threads <= 1) {
    std::vector<float> acc(dims.D);
    fn(a, 0, total, acc.data());
    return;
  }
#if defined(_OPENMP)
  const int64_t chunk = 16;
  const int64_t chunks = (total + chunk - 1) / chunk;
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> acc(dims.D);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) fn(a, c * chunk, std::min(total, (c + 1) * chunk), acc.data());
  }
#endif
}

template void ms_deform_attn<float>(const float*, const int*, const int*, const float*, const float*, float*,
                                    const msda::Dims&, int);
template void ms_deform_attn<half_t>(const half_t*, const int*, const int*, const half_t*, const half_t*, half_t*,
                                     const msda::Dims&, int);

}  // namespace cpu
}  // namespace detrt
