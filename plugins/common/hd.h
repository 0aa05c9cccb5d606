// detrt plugins/common/hd.h: qualifiers shared by the CPU and CUDA builds of the op cores.
//
//   DETRT_HD      __host__ __device__ under nvcc, empty elsewhere (g++/clang build of plugins/cpu).
//   DETRT_INLINE  DETRT_HD + forceinline: every core function is small and is inlined into the
//                 kernels, so no out-of-line copy compiled for one ISA can be shared by another.
//   DETRT_DEVICE_CODE  defined while nvcc compiles device code (__CUDA_ARCH__), for the few places
//                 where host and device spell an operation differently.
#ifndef DETRT_COMMON_HD_H
#define DETRT_COMMON_HD_H

#if defined(__CUDACC__)
#define DETRT_HD __host__ __device__
#define DETRT_INLINE __host__ __device__ __forceinline__
#else
#define DETRT_HD
#if defined(__GNUC__) || defined(__clang__)
#define DETRT_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define DETRT_INLINE __forceinline
#else
#define DETRT_INLINE inline
#endif
#endif

#if defined(__CUDA_ARCH__)
#define DETRT_DEVICE_CODE 1
#endif

#endif  // DETRT_COMMON_HD_H
