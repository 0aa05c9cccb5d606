// detrt plugins/openvino/detrt_ov_ops.cpp: shape inference and evaluate() of the OpenVINO ops (detrt_ov_ops.h).
#include "detrt_ov_ops.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include <openvino/core/parallel.hpp>

#include "check.h"
#include "dcg_cpu.h"
#include "msda_cpu.h"

namespace detrt {
namespace ov_ops {
namespace {

// Small integer tensors (spatial_shapes, level_start_index) as int64, whichever integer type OpenVINO gives.
std::vector<int64_t> int_values(const ov::Tensor& t, const char* name) {
  std::vector<int64_t> out(t.get_size());
  const auto type = t.get_element_type();
  if (type == ov::element::i64) {
    const int64_t* p = t.data<const int64_t>();
    out.assign(p, p + out.size());
  } else if (type == ov::element::i32) {
    const int32_t* p = t.data<const int32_t>();
    out.assign(p, p + out.size());
  } else {
    throw Error(std::string(name) + " must be int32 or int64, got " + type.get_type_name());
  }
  return out;
}

int as_int(size_t v, const char* what) {
  DETRT_CHECK(v <= static_cast<size_t>(INT_MAX), what, " = ", v, " does not fit the kernel's 32-bit sizes");
  return static_cast<int>(v);
}

void check_f32(const ov::Tensor& t, const char* name) {
  DETRT_CHECK(t.get_element_type() == ov::element::f32, name, " must be f32, got ", t.get_element_type());
}

// Runs `body`; a detrt::Error or any other exception becomes ov::Exception naming the op (never a crash).
template <typename Body>
bool guarded(const char* op, Body body) {
  try {
    body();
  } catch (const std::exception& e) {
    OPENVINO_THROW("detrt::", op, ": ", e.what());
  }
  return true;
}

}  // namespace

MSDeformAttn::MSDeformAttn(const ov::OutputVector& args) : Op(args) { constructor_validate_and_infer_types(); }

void MSDeformAttn::validate_and_infer_types() {
  NODE_VALIDATION_CHECK(this, get_input_size() == 5, "MSDeformAttn takes 5 inputs, got ", get_input_size());
  const auto& value = get_input_partial_shape(0);
  const auto& loc = get_input_partial_shape(3);
  ov::PartialShape out = ov::PartialShape::dynamic(3);
  if (value.rank().is_static() && loc.rank().is_static()) {
    NODE_VALIDATION_CHECK(this, value.size() == 4 && loc.size() == 6,
                          "value must be [N,S,M,D] and sampling_locations [N,Lq,M,L,P,2]");
    out = ov::PartialShape{value[0], loc[1], value[2] * value[3]};
  }
  set_output_type(0, get_input_element_type(0), out);
}

std::shared_ptr<ov::Node> MSDeformAttn::clone_with_new_inputs(const ov::OutputVector& args) const {
  check_new_args_count(this, args);
  return std::make_shared<MSDeformAttn>(args);
}

bool MSDeformAttn::has_evaluate() const { return get_input_element_type(0) == ov::element::f32; }

bool MSDeformAttn::evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const {
  return guarded("MSDeformAttn", [&] {
    const ov::Tensor &value = inputs[0], &loc = inputs[3], &attn = inputs[4];
    check_f32(value, "value");
    check_f32(loc, "sampling_locations");
    check_f32(attn, "attention_weights");
    const ov::Shape& vs = value.get_shape();
    const ov::Shape& ls = loc.get_shape();
    const ov::Shape& as = attn.get_shape();
    DETRT_CHECK(vs.size() == 4 && ls.size() == 6 && as.size() == 5, "value, sampling_locations, attention_weights "
                "must have ranks 4, 6, 5");
    msda::Dims d{};
    d.N = as_int(vs[0], "value N");
    d.S = as_int(vs[1], "value S");
    d.M = as_int(vs[2], "value M");
    d.D = as_int(vs[3], "value D");
    d.Lq = as_int(ls[1], "sampling_locations Lq");
    d.L = as_int(ls[3], "sampling_locations L");
    d.P = as_int(ls[4], "sampling_locations P");
    DETRT_CHECK(ls[0] == vs[0] && ls[2] == vs[2] && ls[5] == 2, "sampling_locations must be [N, Lq, M, L, P, 2]");
    DETRT_CHECK(as[0] == vs[0] && as[1] == ls[1] && as[2] == vs[2] && as[3] == ls[3] && as[4] == ls[4],
                "attention_weights must be [N, Lq, M, L, P]");
    const std::vector<int64_t> shapes = int_values(inputs[1], "spatial_shapes");
    const std::vector<int64_t> starts = int_values(inputs[2], "level_start_index");
    DETRT_CHECK(shapes.size() == 2 * static_cast<size_t>(d.L) && starts.size() == static_cast<size_t>(d.L),
                "spatial_shapes must be [L, 2] and level_start_index [L] with L = ", d.L);
    cpu::msda_check_levels(shapes.data(), starts.data(), d.L, d.S);
    const std::vector<int> shape32(shapes.begin(), shapes.end()), start32(starts.begin(), starts.end());
    outputs[0].set_shape({vs[0], ls[1], vs[2] * vs[3]});
    const float* v = value.data<const float>();
    const float* l = loc.data<const float>();
    const float* a = attn.data<const float>();
    float* o = outputs[0].data<float>();
    const int64_t points = static_cast<int64_t>(d.M) * d.L * d.P;  // per query
    const int64_t queries = static_cast<int64_t>(d.N) * d.Lq;
    // OpenVINO's own (TBB) threads split the queries; each runs the kernel on one thread. The kernel's OpenMP
    // team inside OpenVINO's busy TBB workers would oversubscribe the cores (measured 10x slower on 2 cores).
    ov::parallel_nt(0, [&](int ithr, int nthr) {
      int64_t begin = queries * ithr / nthr;
      const int64_t end = queries * (ithr + 1) / nthr;
      while (begin < end) {  // one kernel call per image within [begin, end)
        const int64_t n = begin / d.Lq, q = begin % d.Lq, count = std::min<int64_t>(end - begin, d.Lq - q);
        msda::Dims part = d;
        part.N = 1;
        part.Lq = static_cast<int>(count);
        cpu::ms_deform_attn(v + n * static_cast<int64_t>(d.S) * d.M * d.D, shape32.data(), start32.data(),
                            l + begin * points * 2, a + begin * points, o + begin * d.M * d.D, part, 1);
        begin += count;
      }
    });
  });
}

DCGNeighbors::DCGNeighbors(const ov::OutputVector& args, int64_t k, float iou_threshold, float low_score)
    : Op(args), k_(k), iou_threshold_(iou_threshold), low_score_(low_score) {
  constructor_validate_and_infer_types();
}

void DCGNeighbors::validate_and_infer_types() {
  NODE_VALIDATION_CHECK(this, get_input_size() == 2, "DCGNeighbors takes 2 inputs, got ", get_input_size());
  NODE_VALIDATION_CHECK(this, k_ >= 0 && k_ <= INT_MAX, "k must be a non-negative int, got ", k_);
  const auto& boxes = get_input_partial_shape(0);
  ov::PartialShape out = ov::PartialShape::dynamic(3);
  if (boxes.rank().is_static()) {
    NODE_VALIDATION_CHECK(this, boxes.size() == 3, "boxes must be [B, N, 4]");
    out = ov::PartialShape{boxes[0], boxes[1], k_};
  }
  set_output_type(0, ov::element::i64, out);
  set_output_type(1, ov::element::boolean, out);
}

std::shared_ptr<ov::Node> DCGNeighbors::clone_with_new_inputs(const ov::OutputVector& args) const {
  check_new_args_count(this, args);
  return std::make_shared<DCGNeighbors>(args, k_, iou_threshold_, low_score_);
}

bool DCGNeighbors::visit_attributes(ov::AttributeVisitor& visitor) {
  visitor.on_attribute("k", k_);
  visitor.on_attribute("iou_threshold", iou_threshold_);
  visitor.on_attribute("low_score", low_score_);
  return true;
}

bool DCGNeighbors::has_evaluate() const { return get_input_element_type(0) == ov::element::f32; }

bool DCGNeighbors::evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const {
  return guarded("DCGNeighbors", [&] {
    const ov::Tensor &boxes = inputs[0], &scores = inputs[1];
    check_f32(boxes, "boxes");
    check_f32(scores, "scores");
    const ov::Shape& bs = boxes.get_shape();
    DETRT_CHECK(bs.size() == 3 && bs[2] == 4, "boxes must be [B, N, 4], got ", bs);
    DETRT_CHECK(scores.get_shape() == ov::Shape({bs[0], bs[1]}), "scores must be [B, N] = ", ov::Shape({bs[0], bs[1]}),
                ", got ", scores.get_shape());
    const int B = as_int(bs[0], "boxes B"), N = as_int(bs[1], "boxes N"), k = static_cast<int>(k_);
    const ov::Shape out_shape{bs[0], bs[1], static_cast<size_t>(k)};
    outputs[0].set_shape(out_shape);
    outputs[1].set_shape(out_shape);
    ov::Tensor &indices = outputs[0], &valid = outputs[1];
    const auto itype = indices.get_element_type(), vtype = valid.get_element_type();
    DETRT_CHECK(itype == ov::element::i64 || itype == ov::element::i32, "indices must be i64 or i32, got ", itype);
    DETRT_CHECK(vtype == ov::element::boolean || vtype == ov::element::u8, "valid must be boolean, got ", vtype);
    const float* b = boxes.data<const float>();
    const float* s = scores.data<const float>();
    uint8_t* v = static_cast<uint8_t*>(valid.data());
    // One thread: a call is small (N = queries), and an OpenMP team would fight OpenVINO's threads.
    if (itype == ov::element::i64) {
      cpu::dcg_neighbors(b, s, B, N, k, iou_threshold_, low_score_, indices.data<int64_t>(), v, 1);
    } else {
      cpu::dcg_neighbors(b, s, B, N, k, iou_threshold_, low_score_, indices.data<int32_t>(), v, 1);
    }
  });
}

}  // namespace ov_ops
}  // namespace detrt
