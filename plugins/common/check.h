// detrt plugins/common/check.h: the one throwing check of the native code (host side only).
//
//   detrt::Error                 std::invalid_argument; what() is one line naming the argument and the
//                                problem. The Python binding maps it to ValueError; the TensorRT glue
//                                catches it at its noexcept boundary and reports a status instead.
//   DETRT_CHECK(cond, parts...)  if !cond, throw detrt::Error(concatenation of parts), e.g.
//                                DETRT_CHECK(h > 0, "spatial_shapes[", l, "] must be positive, got ", h);
//   DETRT_CHECK_CUDA(expr)       (only where the CUDA runtime API is visible) evaluates a cudaError_t
//                                expression and throws detrt::Error("<expr>: <cudaGetErrorString>")
//                                if it is not cudaSuccess.
// Nothing here aborts or exits: the caller decides how an error surfaces.
#ifndef DETRT_COMMON_CHECK_H
#define DETRT_COMMON_CHECK_H

#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <string>

namespace detrt {

class Error : public std::invalid_argument {
 public:
  explicit Error(const std::string& message) : std::invalid_argument(message) {}
};

namespace detail {
template <typename... Parts>
inline std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (void)std::initializer_list<int>{((void)(out << parts), 0)...};
  return out.str();
}
}  // namespace detail

}  // namespace detrt

#define DETRT_CHECK(cond, ...)                                 \
  do {                                                         \
    if (!(cond)) {                                             \
      throw ::detrt::Error(::detrt::detail::concat(__VA_ARGS__)); \
    }                                                          \
  } while (0)

#if defined(__CUDACC__) || defined(CUDART_VERSION)
#define DETRT_CHECK_CUDA(expr)                                                              \
  do {                                                                                      \
    cudaError_t detrt_status_ = (expr);                                                     \
    if (detrt_status_ != cudaSuccess) {                                                     \
      throw ::detrt::Error(::detrt::detail::concat(#expr, ": ", cudaGetErrorString(detrt_status_))); \
    }                                                                                       \
  } while (0)
#endif

#endif  // DETRT_COMMON_CHECK_H
