"""ONNX Runtime on the CPU: portable FP32 and INT8 (QDQ) models, and the plugin form.

The plugin form has `detrt::MSDeformAttn` / `detrt::DCGNeighbors` nodes; ONNX Runtime runs them
through the CPU kernels, in a `detrt.ops.ort.InferenceSession` (errors inside those ops become
Python exceptions from `infer`).

Threads: `intra_op_num_threads` defaults to the usable cores (at most 8), one inter-op thread, and
spinning off, because in a pipeline the decode, preprocess and sink threads share those cores and
ONNX Runtime's spin-waiting workers would take their time.
"""

import numpy as np
import onnxruntime as ort

from detrt.errors import InputError
from detrt.runtime.base import Backend, check_threads, default_threads


def _plugin_session_class(artifact):
    try:
        from detrt.ops.ort import InferenceSession
    except ImportError as e:
        raise InputError(f"{artifact}: a plugin-form graph (detrt:: nodes) needs the CPU kernels from "
                         f"detrt.ops.ort, which does not import ({e}); use the portable ONNX "
                         f"export instead, or reinstall with pip install 'detrt[cpu-plugins]'") from None
    return InferenceSession


class OrtBackend(Backend):
    """ONNX Runtime CPUExecutionProvider session over an .onnx artifact."""

    name = "onnxruntime"

    def __init__(self, artifact, manifest, threads=None):
        super().__init__(artifact, manifest)
        self.threads = check_threads(threads) or default_threads()
        plugin = manifest.form == "plugin"
        try:
            self.session = self._session(ort, plugin)
        except InputError:
            raise
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if not plugin and "detrt" in msg:  # a plugin-form graph whose manifest says portable
                try:
                    self.session = self._session(ort, True)
                except Exception:
                    raise InputError(f"{artifact}: ONNX Runtime cannot load it: {msg}") from None
            else:
                raise InputError(f"{artifact}: ONNX Runtime cannot load it: {msg}") from None
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != list(self.input_names):
            raise InputError(f"{artifact}: inputs are {inputs}, its manifest says {list(self.input_names)}; "
                             f"{manifest.rebuild_hint(artifact)}")
        missing = [n for n in manifest.outputs if n not in outputs]
        if missing:
            raise InputError(f"{artifact}: outputs {outputs} lack {missing} that its manifest promises "
                             f"({manifest.output_format}); {manifest.rebuild_hint(artifact)}")
        batch_dim = self.session.get_inputs()[0].shape[0]
        if isinstance(batch_dim, int) and batch_dim > 0:  # a fixed-batch export
            self._max_batch = min(self._max_batch, batch_dim)

    def _session(self, ort, plugin):
        session = _plugin_session_class(self.artifact) if plugin else ort.InferenceSession
        return session(str(self.artifact), sess_options=session_options(self.threads),
                       providers=["CPUExecutionProvider"])

    def _run(self, feed):
        names = list(self.manifest.outputs)
        values = self.session.run(names, feed)
        return {n: np.asarray(v) for n, v in zip(names, values)}


def session_options(threads):
    """The runtime's SessionOptions (threads as the module docstring says); benchmarks profile with the same."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so
