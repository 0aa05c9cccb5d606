// detrt plugins/cpu/msda_cpu.cpp: CPU MSDA. OpenMP over rows (n, q, m); per row the shared core
// (msda::query_head) computes each sampling point's taps once and runs a vectorizable loop over D.
// On x86-64 more copies of the row loop are compiled and picked at run time, so the package stays
// portable (no -march=native) and still uses wide vectors where they exist: AVX2+FMA+F16C (the same
// loop), and AVX-512, where the taps of 16 sampling points are computed at once in vector registers
// (msda_core.h's bilinear_corners, lane by lane) and the channels accumulate in zmm registers.
#include "msda_cpu.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
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

#define DETRT_AVX512 __attribute__((target("avx512f,avx512dq,avx2,fma,f16c")))

// AVX-512 rows for D = 16 * NV, float32 inputs (float16 inputs are converted before the row loop).
// Per row, its L*P sampling points in groups of 16 lanes: the taps of each lane are msda_core.h's
// bilinear_corners (same operations, same order, so the same weights and rows); a tap outside the map
// reads a row of zeros with weight 0, so every point takes the same branch-free 4-tap path. Each tap has
// its own accumulators (more independent FMA chains), added at the end.
constexpr int kLanes = 16;
// L*P of a row taken by this path (Deformable DETR, DINO: 4 levels x 4 points; up to 4 x 8). Two rows' Taps
// then fit in 3 KiB: the stores of the next row's taps never alias the loads of this row's modulo 4 KiB,
// which the core would take for a dependency and stall on.
constexpr int kMaxPoints = 32;

struct LevelLanes {  // per sampling point i of a row (its level is i / P): the level's size and first row
  alignas(64) float wf[kMaxPoints], hf[kMaxPoints];
  alignas(64) int32_t w[kMaxPoints], h[kMaxPoints], start[kMaxPoints];
};

alignas(64) const float kZeroRow[64] = {};  // read by taps outside the map (D <= 64)

struct Taps {  // the points of one row: weight (0 outside the map) and the address of each tap's value row
  alignas(64) float weight[4][kMaxPoints];
  alignas(64) uint64_t row[4][kMaxPoints];
};

// Taps of points [i0, i0 + count) of a row, count <= 16; loc and attn point at point i0.
DETRT_AVX512 inline void lane_taps(const float* loc, const float* attn, int count, const LevelLanes& lv, int i0,
                                   const float* value_nm, int64_t row_stride, Taps& t) {
  const __mmask16 live = static_cast<__mmask16>((1u << count) - 1u);
  const __mmask16 live_lo = static_cast<__mmask16>(count >= 8 ? 0xFFFFu : (1u << (2 * count)) - 1u);
  const __mmask16 live_hi = static_cast<__mmask16>(count > 8 ? (1u << (2 * count - 16)) - 1u : 0u);
  const __m512 lo = _mm512_maskz_loadu_ps(live_lo, loc), hi = _mm512_maskz_loadu_ps(live_hi, loc + 16);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512 x = _mm512_permutex2var_ps(lo, even, hi), y = _mm512_permutex2var_ps(lo, odd, hi);
  const __m512 a = _mm512_maskz_loadu_ps(live, attn);
  const __m512 wf = _mm512_load_ps(lv.wf + i0), hf = _mm512_load_ps(lv.hf + i0);
  const __m512i w = _mm512_load_si512(lv.w + i0), h = _mm512_load_si512(lv.h + i0);
  const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f), minus_one = _mm512_set1_ps(-1.0f);
  const __m512 ix = _mm512_sub_ps(_mm512_mul_ps(x, wf), half), iy = _mm512_sub_ps(_mm512_mul_ps(y, hf), half);
  // NaN and far-away locations fail the ordered compares: no tap of theirs is read
  __mmask16 in = _mm512_mask_cmp_ps_mask(live, ix, minus_one, _CMP_GT_OQ);
  in = _mm512_mask_cmp_ps_mask(in, iy, minus_one, _CMP_GT_OQ);
  in = _mm512_mask_cmp_ps_mask(in, ix, wf, _CMP_LT_OQ);
  in = _mm512_mask_cmp_ps_mask(in, iy, hf, _CMP_LT_OQ);
  const __m512 fx0 = _mm512_mask_roundscale_ps(ix, 0xFFFF, ix, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  const __m512 fy0 = _mm512_mask_roundscale_ps(iy, 0xFFFF, iy, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  const __m512i x0 = _mm512_maskz_cvttps_epi32(in, fx0), y0 = _mm512_maskz_cvttps_epi32(in, fy0);
  const __m512 lx = _mm512_sub_ps(ix, fx0), ly = _mm512_sub_ps(iy, fy0);
  const __m512 hx = _mm512_sub_ps(_mm512_add_ps(fx0, one), ix), hy = _mm512_sub_ps(_mm512_add_ps(fy0, one), iy);
  const __m512i zero = _mm512_setzero_si512(), one_i = _mm512_set1_epi32(1);
  const __mmask16 x0_in = _mm512_cmpge_epi32_mask(x0, zero), y0_in = _mm512_cmpge_epi32_mask(y0, zero);
  const __mmask16 x1_in = _mm512_cmplt_epi32_mask(_mm512_add_epi32(x0, one_i), w);
  const __mmask16 y1_in = _mm512_cmplt_epi32_mask(_mm512_add_epi32(y0, one_i), h);
  const __mmask16 mask[4] = {static_cast<__mmask16>(in & y0_in & x0_in), static_cast<__mmask16>(in & y0_in & x1_in),
                             static_cast<__mmask16>(in & y1_in & x0_in), static_cast<__mmask16>(in & y1_in & x1_in)};
  const __m512 weight[4] = {_mm512_mul_ps(_mm512_mul_ps(hx, hy), a), _mm512_mul_ps(_mm512_mul_ps(lx, hy), a),
                            _mm512_mul_ps(_mm512_mul_ps(hx, ly), a), _mm512_mul_ps(_mm512_mul_ps(lx, ly), a)};
  const __m512i row0 = _mm512_add_epi32(_mm512_load_si512(lv.start + i0),
                                        _mm512_add_epi32(_mm512_mullo_epi32(y0, w), x0));
  const __m512i row2 = _mm512_add_epi32(row0, w);
  const __m512i rows[4] = {row0, _mm512_add_epi32(row0, one_i), row2, _mm512_add_epi32(row2, one_i)};
  const __m512i base = _mm512_set1_epi64(static_cast<long long>(reinterpret_cast<uintptr_t>(value_nm)));
  const __m512i zero_row = _mm512_set1_epi64(static_cast<long long>(reinterpret_cast<uintptr_t>(kZeroRow)));
  const __m512i stride_bytes = _mm512_set1_epi64(static_cast<long long>(row_stride * sizeof(float)));
  // 64-bit addresses, 8 lanes at a time (the masked forms: GCC 12 warns about the unmasked ones' undefined source)
  for (int k = 0; k < 4; ++k) {
    _mm512_store_ps(t.weight[k] + i0, _mm512_maskz_mov_ps(mask[k], weight[k]));
    const __m512i lanes_lo = _mm512_maskz_cvtepi32_epi64(0xFF, _mm512_maskz_extracti64x4_epi64(0xFF, rows[k], 0));
    const __m512i lanes_hi = _mm512_maskz_cvtepi32_epi64(0xFF, _mm512_maskz_extracti64x4_epi64(0xFF, rows[k], 1));
    const __m512i at_lo = _mm512_add_epi64(base, _mm512_mullo_epi64(lanes_lo, stride_bytes));
    const __m512i at_hi = _mm512_add_epi64(base, _mm512_mullo_epi64(lanes_hi, stride_bytes));
    _mm512_store_si512(t.row[k] + i0, _mm512_mask_blend_epi64(static_cast<__mmask8>(mask[k]), zero_row, at_lo));
    _mm512_store_si512(t.row[k] + i0 + 8,
                       _mm512_mask_blend_epi64(static_cast<__mmask8>(mask[k] >> 8), zero_row, at_hi));
  }
}

// One output row (n, q, m): its value slice, its sampling points and its output.
template <typename TO>
struct Row {
  const float* value_nm;
  const float* loc;
  const float* attn;
  TO* out;
};

template <typename TO>
DETRT_AVX512 inline void row_taps(const Args<float, float, TO>& a, const LevelLanes& lv, const Row<TO>& row, Taps& t) {
  const int points = a.dims.L * a.dims.P;
  const int64_t row_stride = static_cast<int64_t>(a.dims.M) * a.dims.D;
  for (int i0 = 0; i0 < points; i0 += kLanes) {
    lane_taps(row.loc + 2 * i0, row.attn + i0, std::min(kLanes, points - i0), lv, i0, row.value_nm, row_stride, t);
  }
}

template <int NV, typename TO>
DETRT_AVX512 inline void row_sum(const Args<float, float, TO>& a, const Row<TO>& row, const Taps& t) {
  const int points = a.dims.L * a.dims.P;
  __m512 acc[4][NV];
  for (int k = 0; k < 4; ++k) {
    for (int v = 0; v < NV; ++v) acc[k][v] = _mm512_setzero_ps();
  }
  for (int i = 0; i < points; ++i) {
    for (int k = 0; k < 4; ++k) {
      const __m512 wk = _mm512_set1_ps(t.weight[k][i]);
      const float* value = reinterpret_cast<const float*>(t.row[k][i]);
      for (int v = 0; v < NV; ++v) acc[k][v] = _mm512_fmadd_ps(wk, _mm512_loadu_ps(value + kLanes * v), acc[k][v]);
    }
  }
  for (int v = 0; v < NV; ++v) {
    const __m512 sum = _mm512_add_ps(_mm512_add_ps(acc[0][v], acc[1][v]), _mm512_add_ps(acc[2][v], acc[3][v]));
    if constexpr (std::is_same<TO, float>::value) {
      _mm512_storeu_ps(row.out + kLanes * v, sum);
    } else {
      alignas(64) float tmp[kLanes];
      _mm512_store_ps(tmp, sum);
      for (int d = 0; d < kLanes; ++d) IoTraits<TO>::store(row.out + kLanes * v + d, tmp[d]);
    }
  }
}

// Rows [begin, end) of the flattened (n, q, m) index in a two-stage pipeline: the taps of the next row are
// computed while a row's sums run, so the sums read taps stored long before (not from stores still in
// flight) and the two overlap in the core. (n, q, m) are stepped, not divided out per row.
template <int NV, typename TO>
DETRT_AVX512 void rows_avx512_d(const Args<float, float, TO>& a, int64_t begin, int64_t end) {
  if (begin >= end) return;
  const msda::Dims& dims = a.dims;
  const int points = dims.L * dims.P;
  LevelLanes lv;
  for (int i = 0; i < kMaxPoints; ++i) {  // lanes past the last point: a 1 x 1 level, never read
    const int l = i < points ? i / dims.P : -1;
    lv.h[i] = l < 0 ? 1 : a.shapes[2 * l];
    lv.w[i] = l < 0 ? 1 : a.shapes[2 * l + 1];
    lv.start[i] = l < 0 ? 0 : a.starts[l];
    lv.hf[i] = static_cast<float>(lv.h[i]);
    lv.wf[i] = static_cast<float>(lv.w[i]);
  }
  int64_t n = begin / (static_cast<int64_t>(dims.Lq) * dims.M);
  int m = static_cast<int>(begin % dims.M), q = static_cast<int>(begin / dims.M % dims.Lq);
  auto row = [&](int64_t r) {
    return Row<TO>{a.value + (n * dims.S * dims.M + m) * dims.D, a.loc + 2 * r * points, a.attn + r * points,
                   a.out + r * dims.D};
  };
  Taps taps[2];
  Row<TO> current = row(begin);
  row_taps(a, lv, current, taps[0]);
  for (int64_t r = begin; r < end; ++r) {
    const Row<TO> this_row = current;
    if (r + 1 < end) {
      if (++m == dims.M) {
        m = 0;
        if (++q == dims.Lq) q = 0, ++n;
      }
      current = row(r + 1);
      row_taps(a, lv, current, taps[(r + 1 - begin) & 1]);
    }
    row_sum<NV>(a, this_row, taps[(r - begin) & 1]);
  }
}

bool avx512_rows_take(const msda::Dims& dims) {
  return (dims.D == 16 || dims.D == 32 || dims.D == 64) && dims.L * dims.P <= kMaxPoints;
}

// Shapes the AVX-512 loop does not take run the AVX2 loop compiled for AVX-512.
template <typename TV, typename TS, typename TO>
DETRT_AVX512 __attribute__((flatten)) void rows_avx512(const Args<TV, TS, TO>& a, int64_t begin, int64_t end,
                                                       float* acc) {
  if constexpr (std::is_same<TV, float>::value && std::is_same<TS, float>::value) {
    if (avx512_rows_take(a.dims)) {
      switch (a.dims.D) {
        case 16: return rows_avx512_d<1>(a, begin, end);
        case 32: return rows_avx512_d<2>(a, begin, end);
        default: return rows_avx512_d<4>(a, begin, end);
      }
    }
  }
  rows(a, begin, end, acc);
}

enum class Isa { kBaseline, kAvx2, kAvx512 };

// The widest variant this CPU runs. DETRT_CPU_ISA=baseline or avx2 caps it (tests compare the variants).
Isa cpu_isa() {
  static const Isa isa = [] {
    const char* forced = std::getenv("DETRT_CPU_ISA");
    const std::string cap = forced ? forced : "";
    if (cap == "baseline") return Isa::kBaseline;
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))) {
      return Isa::kBaseline;
    }
    if (cap == "avx2" || !(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))) return Isa::kAvx2;
    return Isa::kAvx512;
  }();
  return isa;
}
#endif

// float storage on 64-byte lines: the AVX-512 rows read a value row as whole zmm loads, which split in two
// wherever a row does not start on a line (numpy's arrays are 16-byte aligned; torch's, 64).
struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using AlignedFloats = std::unique_ptr<float[], FreeDeleter>;

AlignedFloats aligned_floats(int64_t count) {
  const size_t bytes = std::max<size_t>(64, (static_cast<size_t>(count) * sizeof(float) + 63) / 64 * 64);
  float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (p == nullptr) throw std::bad_alloc();
  return AlignedFloats(p);
}

// fn(begin, count) over [0, count) in chunks, on up to num_threads threads where count is large.
template <typename Fn>
void for_chunks(int64_t count, int num_threads, Fn fn) {
  const int64_t chunk = int64_t(1) << 14;
#if defined(_OPENMP)
  const int threads = count < (int64_t(1) << 16) ? 1 : (num_threads > 0 ? num_threads : omp_get_max_threads());
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
#else
  (void)num_threads;
#endif
  for (int64_t c = 0; c < (count + chunk - 1) / chunk; ++c) fn(c * chunk, std::min(chunk, count - c * chunk));
}

template <typename TV, typename TS, typename TO>
void run_rows(const Args<TV, TS, TO>& given, int num_threads) {
  Args<TV, TS, TO> a = given;
  const msda::Dims& dims = a.dims;
  const int64_t total = static_cast<int64_t>(dims.N) * dims.Lq * dims.M;
  void (*fn)(const Args<TV, TS, TO>&, int64_t, int64_t, float*) = rows_baseline<TV, TS, TO>;
  AlignedFloats aligned;
#if defined(DETRT_MSDA_DISPATCH)
  if (cpu_isa() == Isa::kAvx512) fn = rows_avx512<TV, TS, TO>;
  if (cpu_isa() == Isa::kAvx2) fn = rows_avx2<TV, TS, TO>;
  if constexpr (std::is_same<TV, float>::value) {
    if (cpu_isa() == Isa::kAvx512 && avx512_rows_take(dims) && reinterpret_cast<uintptr_t>(a.value) % 64 != 0) {
      const int64_t count = static_cast<int64_t>(dims.N) * dims.S * dims.M * dims.D;
      aligned = aligned_floats(count);
      for_chunks(count, num_threads, [&](int64_t begin, int64_t n) {
        std::memcpy(aligned.get() + begin, a.value + begin, n * sizeof(float));
      });
      a.value = aligned.get();
    }
  }
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
  if (cpu_isa() != Isa::kBaseline) fn = to_float_f16c;
#endif
  for_chunks(count, num_threads, [&](int64_t begin, int64_t n) { fn(in + begin, out + begin, n); });
}

}  // namespace

const char* msda_isa() {
#if defined(DETRT_MSDA_DISPATCH)
  if (cpu_isa() == Isa::kAvx512) return "avx512";
  if (cpu_isa() == Isa::kAvx2) return "avx2+fma";
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
    AlignedFloats value32 = aligned_floats(n_value);
    std::unique_ptr<float[]> attn32(new float[n_attn]), loc32;
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
