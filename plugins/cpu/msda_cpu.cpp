// detrt plugins/cpu/msda_cpu.cpp: CPU MSDA. OpenMP over rows (n, q, m); per row the shared core
// (msda::query_head) computes each sampling point's taps once and runs a vectorizable loop over D.
// On x86-64 a second copy of the row loop is compiled for AVX2+FMA+F16C and picked at run time,
// so the package stays portable (no -march=native) and still uses wide vectors where they exist.
#include "msda_cpu.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "check.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(DETRT_NO_ISA_DISPATCH)
#include <immintrin.h>
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

template <typename TV, typename TS, typename TO>
struct Args {
  const TV* value;
  const int* shapes;
  const int* starts;
  const TS* loc;
  const TS* attn;
  TO* out;
  msda::Dims dims;
};

// query_head with D a compile-time constant: the accumulator stays in registers across the L*P points.
template <int D, typename TV, typename TS, typename TO>
DETRT_INLINE void query_head_fixed(const Args<TV, TS, TO>& a, int n, int q, int m) {
  const msda::Dims& dims = a.dims;
  const int64_t row_stride = static_cast<int64_t>(dims.M) * D;
  const TV* value_nm = a.value + (static_cast<int64_t>(n) * dims.S * dims.M + m) * D;
  float acc[D];
  for (int d = 0; d < D; ++d) acc[d] = 0.0f;
  for (int l = 0; l < dims.L; ++l) {
    for (int p = 0; p < dims.P; ++p) {
      msda::Corners c;
      msda::point_corners(a.loc, a.attn, a.shapes, a.starts, dims, n, q, m, l, p, c);
      msda::accumulate_corners(value_nm, row_stride, c, 0, D, acc);
    }
  }
  TO* out_row = a.out + ((static_cast<int64_t>(n) * dims.Lq + q) * dims.M + m) * D;
  for (int d = 0; d < D; ++d) IoTraits<TO>::store(out_row + d, acc[d]);
}

// Rows [begin, end) of the flattened (n, q, m) index; acc is scratch of D floats.
template <int DC, typename TV, typename TS, typename TO>
DETRT_INLINE void rows_d(const Args<TV, TS, TO>& a, int64_t begin, int64_t end, float* acc) {
  const int M = a.dims.M, Lq = a.dims.Lq;
  for (int64_t r = begin; r < end; ++r) {
    const int m = static_cast<int>(r % M);
    const int64_t nq = r / M;
    const int q = static_cast<int>(nq % Lq);
    const int n = static_cast<int>(nq / Lq);
    if constexpr (DC > 0) {
      query_head_fixed<DC>(a, n, q, m);
    } else {
      msda::query_head(a.value, a.loc, a.attn, a.shapes, a.starts, a.dims, n, q, m, acc, a.out);
    }
  }
}

// The channel counts of the detectors here (256 / 8 heads = 32) get a compile-time D.
template <typename TV, typename TS, typename TO>
DETRT_INLINE void rows(const Args<TV, TS, TO>& a, int64_t begin, int64_t end, float* acc) {
  switch (a.dims.D) {
    case 32: rows_d<32>(a, begin, end, acc); break;
    case 64: rows_d<64>(a, begin, end, acc); break;
    case 16: rows_d<16>(a, begin, end, acc); break;
    default: rows_d<0>(a, begin, end, acc);
  }
}

template <typename TV, typename TS, typename TO>
void rows_baseline(const Args<TV, TS, TO>& a, int64_t begin, int64_t end, float* acc) {
  rows(a, begin, end, acc);
}

void to_float_baseline(const half_t* in, float* out, int64_t count) {
  for (int64_t i = 0; i < count; ++i) out[i] = IoTraits<half_t>::load(in + i);
}

#if defined(DETRT_MSDA_DISPATCH)
// flatten: everything the row loop calls is inlined here, so no AVX2 copy of a shared inline function
// can be picked by the linker for the baseline path.
template <typename TV, typename TS, typename TO>
__attribute__((target("avx2,fma,f16c"), flatten)) void rows_avx2(const Args<TV, TS, TO>& a, int64_t begin,
                                                                 int64_t end, float* acc) {
  rows(a, begin, end, acc);
}

__attribute__((target("avx2,fma,f16c"))) void to_float_f16c(const half_t* in, float* out, int64_t count) {
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
  }
  for (; i < count; ++i) out[i] = _cvtsh_ss(in[i].bits);
}

// DETRT_CPU_ISA=baseline forces the portable variant (tests compare the two).
bool cpu_has_avx2_fma() {
  static const bool has = [] {
    const char* forced = std::getenv("DETRT_CPU_ISA");
    if (forced && std::string(forced) == "baseline") return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  }();
  return has;
}
#endif

template <typename TV, typename TS, typename TO>
void run_rows(const Args<TV, TS, TO>& a, int num_threads) {
  const msda::Dims& dims = a.dims;
  const int64_t total = static_cast<int64_t>(dims.N) * dims.Lq * dims.M;
  void (*fn)(const Args<TV, TS, TO>&, int64_t, int64_t, float*) = rows_baseline<TV, TS, TO>;
#if defined(DETRT_MSDA_DISPATCH)
  if (cpu_has_avx2_fma()) fn = rows_avx2<TV, TS, TO>;
#endif
  // Small problems run on the calling thread: a parallel region costs more than it saves.
  const int64_t work = total * dims.L * dims.P * (dims.D + 8);
  int threads = 1;
#if defined(_OPENMP)
  threads = num_threads > 0 ? num_threads : omp_get_max_threads();
  if (work < (int64_t(1) << 15)) threads = 1;
#else
  (void)num_threads;
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

// float16 -> float32 copy.
void to_float(const half_t* in, float* out, int64_t count, int num_threads) {
  void (*fn)(const half_t*, float*, int64_t) = to_float_baseline;
#if defined(DETRT_MSDA_DISPATCH)
  if (cpu_has_avx2_fma()) fn = to_float_f16c;
#endif
#if defined(_OPENMP)
  const int threads = count < (int64_t(1) << 16) ? 1 : (num_threads > 0 ? num_threads : omp_get_max_threads());
  const int64_t chunk = int64_t(1) << 14;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t c = 0; c < (count + chunk - 1) / chunk; ++c) {
    fn(in + c * chunk, out + c * chunk, std::min(chunk, count - c * chunk));
  }
#else
  (void)num_threads;
  fn(in, out, count);
#endif
}

}  // namespace

const char* msda_isa() {
#if defined(DETRT_MSDA_DISPATCH)
  if (cpu_has_avx2_fma()) return "avx2+fma";
#endif
  return "baseline";
}

template <typename T, typename TL>
void ms_deform_attn(const T* value, const int* spatial_shapes, const int* level_start_index,
                    const TL* sampling_locations, const T* attention_weights, T* out, const msda::Dims& dims,
                    int num_threads) {
  const int64_t total = static_cast<int64_t>(dims.N) * dims.Lq * dims.M;
  if (total == 0 || dims.D == 0) return;  // no output element
  if constexpr (std::is_same<T, half_t>::value) {
    // Inputs to float32 once, with vector conversions (F16C where present): the row loop then runs the
    // float32 code and only the output is rounded to float16.
    const int64_t n_value = static_cast<int64_t>(dims.N) * dims.S * dims.M * dims.D;
    const int64_t n_attn = total * dims.L * dims.P;
    std::unique_ptr<float[]> value32(new float[n_value]), attn32(new float[n_attn]), loc32;
    to_float(value, value32.get(), n_value, num_threads);
    to_float(attention_weights, attn32.get(), n_attn, num_threads);
    const float* loc = nullptr;
    if constexpr (std::is_same<TL, half_t>::value) {
      loc32.reset(new float[2 * n_attn]);
      to_float(sampling_locations, loc32.get(), 2 * n_attn, num_threads);
      loc = loc32.get();
    } else {
      loc = sampling_locations;  // float16 engines keep the locations float32
    }
    run_rows(Args<float, float, T>{value32.get(), spatial_shapes, level_start_index, loc, attn32.get(), out, dims},
             num_threads);
  } else {
    run_rows(Args<T, T, T>{value, spatial_shapes, level_start_index, sampling_locations, attention_weights, out, dims},
             num_threads);
  }
}

template void ms_deform_attn<float, float>(const float*, const int*, const int*, const float*, const float*, float*,
                                           const msda::Dims&, int);
template void ms_deform_attn<half_t, half_t>(const half_t*, const int*, const int*, const half_t*, const half_t*,
                                             half_t*, const msda::Dims&, int);
template void ms_deform_attn<half_t, float>(const half_t*, const int*, const int*, const float*, const half_t*,
                                            half_t*, const msda::Dims&, int);

}  // namespace cpu
}  // namespace detrt
