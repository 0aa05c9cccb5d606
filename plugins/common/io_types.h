// detrt plugins/common/io_types.h: the I/O element types of the kernels and their float32 view.
//
// Kernels are templated on the I/O type T and always compute in float32:
//   float           float32 I/O (host and device).
//   detrt::half_t   float16 I/O on the host: 16 raw IEEE binary16 bits (numpy float16 memory), converted
//                   by portable bit arithmetic (round to nearest even), so the CPU build needs no CUDA
//                   headers and no F16C instructions.
//   __half          float16 I/O under nvcc (cuda_fp16.h).
//
//   detrt::IoTraits<T>::load(const T* p) -> float       read one element as float32
//   detrt::IoTraits<T>::store(T* p, float v)            write one element, rounding to nearest even
//   detrt::IoTraits<__half>::load2(const __half* p, float& a, float& b)   (device) one half2 load of
//                   p[0], p[1]; p must be 4-byte aligned (even element offset from an aligned base).
//   detrt::half_bits_to_float(uint16_t) / float_to_half_bits(float)     the host conversions.
#ifndef DETRT_COMMON_IO_TYPES_H
#define DETRT_COMMON_IO_TYPES_H

#include <cstdint>
#include <cstring>

#include "hd.h"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

namespace detrt {

// ---- host float16 <-> float32 (after Maratyszcza's FP16 library; branch-free, vectorizable) ----
DETRT_INLINE float bits_to_float(uint32_t w) {
#if defined(DETRT_DEVICE_CODE)
  return __uint_as_float(w);
#else
  float f;
  std::memcpy(&f, &w, sizeof f);
  return f;
#endif
}

DETRT_INLINE uint32_t float_to_bits(float f) {
#if defined(DETRT_DEVICE_CODE)
  return __float_as_uint(f);
#else
  uint32_t w;
  std::memcpy(&w, &f, sizeof w);
  return w;
#endif
}

DETRT_INLINE float half_bits_to_float(uint16_t h) {
  const uint32_t w = static_cast<uint32_t>(h) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  // Normal numbers: shift the exponent/mantissa into place and rescale by 2^-112.
  const float normalized = bits_to_float((two_w >> 4) + (0xE0u << 23)) * 1.925929944387236e-34f;  // 0x1p-112
  // Subnormals: build 0.5 + m * 2^-24 exactly, subtract 0.5.
  const float denormalized = bits_to_float((two_w >> 17) | (126u << 23)) - 0.5f;
  const uint32_t result = sign | (two_w < (1u << 27) ? float_to_bits(denormalized) : float_to_bits(normalized));
  return bits_to_float(result);
}

DETRT_INLINE uint16_t float_to_half_bits(float f) {
  // Rounds to nearest even through float32 additions; overflow -> inf, NaN -> a quiet NaN.
  const float scale_to_inf = 5.192296858534828e+33f;   // 0x1p+112
  const float scale_to_zero = 7.703719777548943e-34f;  // 0x1p-110
  const float af = f < 0.0f ? -f : f;
  const float scaled_up = af * scale_to_inf;  // separate statements: no fused multiply-add
  float base = scaled_up * scale_to_zero;
  const uint32_t w = float_to_bits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  const float rounder = bits_to_float((bias >> 1) + 0x07800000u);
  base = rounder + base;
  const uint32_t bits = float_to_bits(base);
  const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
  const uint32_t mantissa_bits = bits & 0x00000FFFu;
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return static_cast<uint16_t>((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

// 16 raw bits of an IEEE binary16 value (layout-compatible with numpy float16 and __half).
struct half_t {
  uint16_t bits;
};
static_assert(sizeof(half_t) == 2, "half_t must be 2 bytes");

template <typename T>
struct IoTraits;

template <>
struct IoTraits<float> {
  static DETRT_INLINE float load(const float* p) { return *p; }
  static DETRT_INLINE void store(float* p, float v) { *p = v; }
};

template <>
struct IoTraits<half_t> {
  static DETRT_INLINE float load(const half_t* p) { return half_bits_to_float(p->bits); }
  static DETRT_INLINE void store(half_t* p, float v) { p->bits = float_to_half_bits(v); }
};

#if defined(__CUDACC__)
template <>
struct IoTraits<__half> {
  static DETRT_INLINE float load(const __half* p) { return __half2float(*p); }
  static DETRT_INLINE void store(__half* p, float v) { *p = __float2half_rn(v); }
  static __device__ __forceinline__ void load2(const __half* p, float& a, float& b) {
    const float2 f = __half22float2(*reinterpret_cast<const __half2*>(p));
    a = f.x;
    b = f.y;
  }
};
#endif

}  // namespace detrt

#endif  // DETRT_COMMON_IO_TYPES_H
