// detrt plugins/openvino/detrt_ov_ops.h: the two plugin-form ops as OpenVINO operations (docs/ops.md).
//
//   MSDeformAttn(value f32 [N,S,M,D], spatial_shapes i32|i64 [L,2], level_start_index i32|i64 [L],
//                sampling_locations f32 [N,Lq,M,L,P,2], attention_weights f32 [N,Lq,M,L,P]) -> f32 [N,Lq,M*D]
//   DCGNeighbors(boxes f32 [B,N,4] cxcywh, scores f32 [B,N]; k, iou_threshold, low_score)
//                -> (indices i32 [B,N,k], valid i32 0/1 [B,N,k])
// evaluate() runs the CPU kernels (plugins/cpu), the same cores as the TensorRT plugins. The index inputs may
// arrive as int32 although the graph declares int64: OpenVINO's CPU plugin computes integers in int32.
// A kernel's detrt::Error leaves evaluate() as ov::Exception, which OpenVINO's Python API raises as RuntimeError.
#ifndef DETRT_OPENVINO_DETRT_OV_OPS_H
#define DETRT_OPENVINO_DETRT_OV_OPS_H

#include <openvino/op/op.hpp>

namespace detrt {
namespace ov_ops {

class MSDeformAttn : public ov::op::Op {
 public:
  OPENVINO_OP("MSDeformAttn", "detrt");

  MSDeformAttn() = default;
  explicit MSDeformAttn(const ov::OutputVector& args);

  void validate_and_infer_types() override;
  std::shared_ptr<ov::Node> clone_with_new_inputs(const ov::OutputVector& args) const override;
  bool visit_attributes(ov::AttributeVisitor&) override { return true; }
  bool has_evaluate() const override;
  bool evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const override;
};

class DCGNeighbors : public ov::op::Op {
 public:
  OPENVINO_OP("DCGNeighbors", "detrt");

  DCGNeighbors() = default;
  DCGNeighbors(const ov::OutputVector& args, int64_t k, float iou_threshold, float low_score);

  void validate_and_infer_types() override;
  std::shared_ptr<ov::Node> clone_with_new_inputs(const ov::OutputVector& args) const override;
  bool visit_attributes(ov::AttributeVisitor& visitor) override;
  bool has_evaluate() const override;
  bool evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const override;

 private:
  int64_t k_ = 0;
  float iou_threshold_ = 0.f;
  float low_score_ = 0.f;
};

}  // namespace ov_ops
}  // namespace detrt

#endif  // DETRT_OPENVINO_DETRT_OV_OPS_H
