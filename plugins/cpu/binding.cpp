// detrt plugins/cpu/binding.cpp: the Python module detrt.ops._cpu (pybind11) over the CPU kernels.
//
// Takes numpy arrays without copying (the large tensors must be C-contiguous, aligned, native-endian),
// validates every rank, dtype and size before touching memory, and raises ValueError (detrt.ops._cpu.Error)
// naming the argument. The kernels run with the GIL released.
//   ms_deform_attn(value, spatial_shapes, level_start_index, sampling_locations, attention_weights,
//                  num_threads=0) -> output [N, Lq, M*D], dtype of value (float32 or float16); attention_weights
//                  in value's dtype, sampling_locations too or float32 (a float16 engine's plugin inputs)
//   dcg_neighbors(boxes, scores, k, iou_threshold, low_score, num_threads=0, index_dtype="int64")
//                  -> (indices [B, N, k] int64|int32, valid [B, N, k] bool)
//   info() -> dict(openmp, max_threads, msda_isa)
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include "check.h"
#include "dcg_cpu.h"
#include "io_types.h"
#include "msda_cpu.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace py = pybind11;
using detrt::Error;

namespace {

constexpr int kNpyAligned = 0x0100;  // NPY_ARRAY_ALIGNED

std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// The array behind obj, checked for rank, layout and alignment.
py::array checked_array(const py::handle& obj, const char* name, int ndim, const char* layout) {
  DETRT_CHECK(py::isinstance<py::array>(obj), name, " must be a numpy.ndarray, got ",
              std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  DETRT_CHECK(a.ndim() == ndim, name, " must have rank ", ndim, " ", layout, ", got shape ", shape_str(a));
  DETRT_CHECK(a.flags() & py::array::c_style, name,
              " must be C-contiguous (np.ascontiguousarray), got a strided view of shape ", shape_str(a));
  DETRT_CHECK(a.flags() & kNpyAligned, name, " must be aligned");
  return a;
}

std::string dtype_str(const py::array& a) { return std::string(py::str(a.dtype())); }

bool is_f32(const py::array& a) { return a.dtype().equal(py::dtype::of<float>()); }
bool is_f16(const py::array& a) { return a.dtype().equal(py::dtype("float16")); }

// Small integer arrays (spatial_shapes, level_start_index): int32 or int64, read into int64.
std::vector<int64_t> int_values(const py::array& a, const char* name) {
  std::vector<int64_t> out(static_cast<size_t>(a.size()));
  if (a.dtype().equal(py::dtype::of<int64_t>())) {
    const int64_t* p = static_cast<const int64_t*>(a.data());
    for (size_t i = 0; i < out.size(); ++i) out[i] = p[i];
  } else if (a.dtype().equal(py::dtype::of<int32_t>())) {
    const int32_t* p = static_cast<const int32_t*>(a.data());
    for (size_t i = 0; i < out.size(); ++i) out[i] = p[i];
  } else {
    throw Error(std::string(name) + " must be int32 or int64, got " + dtype_str(a));
  }
  return out;
}

int as_int(py::ssize_t v, const char* what) {
  DETRT_CHECK(v >= 0 && v <= INT_MAX, what, " = ", v, " does not fit the kernel's 32-bit sizes");
  return static_cast<int>(v);
}

py::array ms_deform_attn(const py::object& value_obj, const py::object& shapes_obj, const py::object& starts_obj,
                         const py::object& loc_obj, const py::object& attn_obj, int num_threads) {
  py::array value = checked_array(value_obj, "value", 4, "[N, S, M, D]");
  py::array shapes = checked_array(shapes_obj, "spatial_shapes", 2, "[L, 2]");
  py::array starts = checked_array(starts_obj, "level_start_index", 1, "[L]");
  py::array loc = checked_array(loc_obj, "sampling_locations", 6, "[N, Lq, M, L, P, 2]");
  py::array attn = checked_array(attn_obj, "attention_weights", 5, "[N, Lq, M, L, P]");

  const bool f32 = is_f32(value), f16 = is_f16(value);
  DETRT_CHECK(f32 || f16, "value must be float32 or float16, got ", dtype_str(value));
  const bool loc_f32 = is_f32(loc);  // float32 locations with float16 value: what a float16 engine feeds
  DETRT_CHECK(loc.dtype().equal(value.dtype()) || loc_f32, "sampling_locations must be float32 or value's dtype ",
              dtype_str(value), ", got ", dtype_str(loc));
  DETRT_CHECK(attn.dtype().equal(value.dtype()), "attention_weights must have value's dtype ", dtype_str(value),
              ", got ", dtype_str(attn));

  detrt::msda::Dims d{};
  d.N = as_int(value.shape(0), "value N");
  d.S = as_int(value.shape(1), "value S");
  d.M = as_int(value.shape(2), "value M");
  d.D = as_int(value.shape(3), "value D");
  DETRT_CHECK(shapes.shape(1) == 2, "spatial_shapes must have shape [L, 2], got ", shape_str(shapes));
  d.L = as_int(shapes.shape(0), "spatial_shapes L");
  DETRT_CHECK(starts.shape(0) == d.L, "level_start_index must have shape [L] = (", d.L, ",), got ", shape_str(starts));
  d.Lq = as_int(loc.shape(1), "sampling_locations Lq");
  d.P = as_int(loc.shape(4), "sampling_locations P");
  DETRT_CHECK(loc.shape(0) == d.N && loc.shape(2) == d.M && loc.shape(3) == d.L && loc.shape(5) == 2,
              "sampling_locations must have shape [N, Lq, M, L, P, 2] = (", d.N, ", Lq, ", d.M, ", ", d.L,
              ", P, 2), got ", shape_str(loc));
  DETRT_CHECK(attn.shape(0) == d.N && attn.shape(1) == d.Lq && attn.shape(2) == d.M && attn.shape(3) == d.L &&
                  attn.shape(4) == d.P,
              "attention_weights must have shape [N, Lq, M, L, P] = (", d.N, ", ", d.Lq, ", ", d.M, ", ", d.L, ", ",
              d.P, "), got ", shape_str(attn));
  DETRT_CHECK(static_cast<int64_t>(d.M) * d.D <= INT_MAX, "value M*D does not fit 32 bits");

  const std::vector<int64_t> shape_values = int_values(shapes, "spatial_shapes");
  const std::vector<int64_t> start_values = int_values(starts, "level_start_index");
  detrt::cpu::msda_check_levels(shape_values.data(), start_values.data(), d.L, d.S);
  const std::vector<int> shape32(shape_values.begin(), shape_values.end());
  const std::vector<int> start32(start_values.begin(), start_values.end());

  const std::vector<py::ssize_t> out_shape{d.N, d.Lq, static_cast<py::ssize_t>(d.M) * d.D};
  py::array out(value.dtype(), out_shape);
  {
    py::gil_scoped_release release;
    if (f32) {
      detrt::cpu::ms_deform_attn(static_cast<const float*>(value.data()), shape32.data(), start32.data(),
                                 static_cast<const float*>(loc.data()), static_cast<const float*>(attn.data()),
                                 static_cast<float*>(out.mutable_data()), d, num_threads);
    } else {
      using detrt::half_t;
      const auto* v = static_cast<const half_t*>(value.data());
      const auto* a = static_cast<const half_t*>(attn.data());
      auto* o = static_cast<half_t*>(out.mutable_data());
      if (loc_f32) {
        detrt::cpu::ms_deform_attn(v, shape32.data(), start32.data(), static_cast<const float*>(loc.data()), a, o, d,
                                   num_threads);
      } else {
        detrt::cpu::ms_deform_attn(v, shape32.data(), start32.data(), static_cast<const half_t*>(loc.data()), a, o, d,
                                   num_threads);
      }
    }
  }
  return out;
}

py::tuple dcg_neighbors(const py::object& boxes_obj, const py::object& scores_obj, int64_t k, double iou_threshold,
                        double low_score, int num_threads, const std::string& index_dtype) {
  py::array boxes = checked_array(boxes_obj, "boxes", 3, "[B, N, 4] cxcywh");
  py::array scores = checked_array(scores_obj, "scores", 2, "[B, N]");
  DETRT_CHECK(is_f32(boxes), "boxes must be float32, got ", dtype_str(boxes));
  DETRT_CHECK(is_f32(scores), "scores must be float32, got ", dtype_str(scores));
  DETRT_CHECK(boxes.shape(2) == 4, "boxes must have shape [B, N, 4], got ", shape_str(boxes));
  const int B = as_int(boxes.shape(0), "boxes B"), N = as_int(boxes.shape(1), "boxes N");
  DETRT_CHECK(scores.shape(0) == B && scores.shape(1) == N, "scores must have shape [B, N] = (", B, ", ", N,
              "), got ", shape_str(scores));
  DETRT_CHECK(k >= 0 && k <= INT_MAX, "k must be a non-negative int, got ", k);
  DETRT_CHECK(index_dtype == "int64" || index_dtype == "int32", "index_dtype must be 'int64' or 'int32', got '",
              index_dtype, "'");
  const bool i64 = index_dtype == "int64";
  const std::vector<py::ssize_t> out_shape{B, N, static_cast<py::ssize_t>(k)};
  py::array indices(i64 ? py::dtype::of<int64_t>() : py::dtype::of<int32_t>(), out_shape);
  py::array valid(py::dtype("bool"), out_shape);
  {
    py::gil_scoped_release release;
    const float* b = static_cast<const float*>(boxes.data());
    const float* s = static_cast<const float*>(scores.data());
    uint8_t* v = static_cast<uint8_t*>(valid.mutable_data());
    const float t = static_cast<float>(iou_threshold), low = static_cast<float>(low_score);
    if (i64) {
      detrt::cpu::dcg_neighbors(b, s, B, N, static_cast<int>(k), t, low, static_cast<int64_t*>(indices.mutable_data()),
                                v, num_threads);
    } else {
      detrt::cpu::dcg_neighbors(b, s, B, N, static_cast<int>(k), t, low, static_cast<int32_t*>(indices.mutable_data()),
                                v, num_threads);
    }
  }
  return py::make_tuple(indices, valid);
}

py::dict info() {
  py::dict d;
#if defined(_OPENMP)
  d["openmp"] = true;
  d["max_threads"] = omp_get_max_threads();
#else
  d["openmp"] = false;
  d["max_threads"] = 1;
#endif
  d["msda_isa"] = detrt::cpu::msda_isa();
  return d;
}

}  // namespace

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "detrt CPU kernels (plugins/cpu): ms_deform_attn, dcg_neighbors on numpy arrays; see detrt.ops.cpu.";
  py::register_exception<Error>(m, "Error", PyExc_ValueError);
  m.def("ms_deform_attn", &ms_deform_attn, py::arg("value"), py::arg("spatial_shapes"), py::arg("level_start_index"),
        py::arg("sampling_locations"), py::arg("attention_weights"), py::arg("num_threads") = 0,
        "Multi-scale deformable attention (docs/ops.md) -> [N, Lq, M*D] in value's dtype.");
  m.def("dcg_neighbors", &dcg_neighbors, py::arg("boxes"), py::arg("scores"), py::arg("k"), py::arg("iou_threshold"),
        py::arg("low_score"), py::arg("num_threads") = 0, py::arg("index_dtype") = "int64",
        "DCG neighbours (docs/ops.md) -> (indices [B, N, k], valid [B, N, k] bool).");
  m.def("info", &info, "Build facts: OpenMP, its default thread count, the MSDA kernel variant in use.");
}
