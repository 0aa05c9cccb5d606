"""The ONNX and TensorRT names of the two ops, defined once (docs/ops.md): export writes them, surgery moves a
graph between their spellings, ONNX Runtime and TensorRT look them up. Torch-free.
"""

# Our plugin nodes: ONNX domain, TensorRT plugin namespace and op types (the CPU kernels and the plugins alike).
DETRT_DOMAIN = "detrt"
MSDA_OP = "MSDeformAttn"
DCG_OP = "DCGNeighbors"
DETRT_OPS = (MSDA_OP, DCG_OP)
OPSET_VERSION = 1  # the `detrt` opset the nodes belong to
PLUGIN_VERSION = "1"  # the plugin_version attribute TensorRT's parser reads

# The PyTorch custom ops (torch.library), which export turns into the nodes above.
TORCH_MSDA_OP = "detrt::ms_deform_attn"
TORCH_DCG_OP = "detrt::dcg_neighbors"

# The portable form: the same node types, defined by model-local functions of standard ops.
PORTABLE_DOMAIN = "detrt.portable"

# NVIDIA's built-in plugin (plugin/multiscaleDeformableAttnPlugin): version "1" (IPluginV2DynamicExt) exists in
# every TensorRT 10.x and 11.x, deprecated since 10.11; version "2" (IPluginV3) only from 10.11 on.
NVIDIA_DOMAIN = "trt"
NVIDIA_NAMESPACE = ""  # the plugin namespace of TensorRT's built-in creators
NVIDIA_MSDA_OP = "MultiscaleDeformableAttnPlugin_TRT"
NVIDIA_MSDA_VERSION = "1"
