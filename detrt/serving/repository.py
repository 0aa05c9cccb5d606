"""`detrt export-triton`: a Triton Inference Server model repository from an artifact and its manifest.

    REPO/detector/config.pbtxt, 1/model.onnx | 1/model.plan   the network (onnxruntime_onnx on KIND_CPU, or
                                                               tensorrt_plan on KIND_GPU), dynamic batching
    REPO/preprocess/, REPO/postprocess/  config.pbtxt, 1/model.py   Python-backend steps (detrt.serving.steps)
    REPO/detrt/config.pbtxt              the ensemble clients call: BGR uint8 frames in, boxes in frame pixels,
                                         scores, labels and class names out
    REPO/plugins/libdetrt_plugins.so     engines only: the plugin library the engine was built with
    REPO/README.md                       how to start tritonserver on it (LD_PRELOAD for the plugins)

Every config carries the manifest as the parameter `detrt_manifest`, so the class names and the input contract
travel with the repository. The whole repository is written into a temporary directory and renamed into place.
"""

import json
import shutil
from pathlib import Path

from detrt.atomic import atomic_dir
from detrt.errors import InputError
from detrt.manifest import ENGINE_SUFFIXES, IMAGE_SIZES, IMAGES, check_artifact, manifest_path, save_manifest
from detrt.ops.tensorrt import find_plugin_library

DETECTOR, ENSEMBLE = "detector", "detrt"
OUTPUT_DTYPES = {"scores": "TYPE_FP32", "labels": "TYPE_INT64", "boxes": "TYPE_FP32", "pred_logits": "TYPE_FP32",
                 "pred_boxes": "TYPE_FP32"}

# The step model every Python-backend model of the repository runs: config parameter detrt_step names it.
STEP_MODEL = '''"""A detrt step for Triton's Python backend, written by `detrt export-triton` (detrt.serving.steps)."""

import json

import triton_python_backend_utils as pb_utils

from detrt.manifest import Manifest
from detrt.serving.steps import STEPS


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"])["parameters"]
        manifest = Manifest.from_dict(json.loads(params["detrt_manifest"]["string_value"]))
        self.step = STEPS[params["detrt_step"]["string_value"]](manifest)

    def execute(self, requests):
        responses = []
        for request in requests:
            inputs = {n: pb_utils.get_input_tensor_by_name(request, n).as_numpy() for n in self.step.inputs}
            outputs = self.step(**inputs)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(n, v) for n, v in outputs.items()]))
        return responses
'''

README = """# Triton model repository for {artifact} (written by detrt export-triton)

Clients call the ensemble `{ensemble}`: input `frames` BGR uint8 [B, h, w, 3] (frames of one request share a
size), outputs `boxes` float32 [B, K, 4] xyxy in frame pixels, `scores` [B, K], `labels` int64 [B, K], `names`
bytes [B, K], sorted by score, padded with score 0 (cut at your threshold). `detrt run SOURCE --server URL
--triton-model {detector} --model {artifact}` calls the network model `{detector}` and does the pre- and
post-processing itself.

The Python-backend models (preprocess, postprocess) import detrt: install it into the Python the backend
runs (`pip install detrt`: numpy, OpenCV, ONNX Runtime).
{start}"""

START_ONNX = """
Start the server (a Triton with the onnxruntime and python backends, e.g. NVIDIA's tritonserver container):

    tritonserver --model-repository={repo}
"""

START_PLAN = """
The engine holds detrt's TensorRT plugins: load `plugins/{plugin}` into the server before the engine
deserializes. Triton's documented way is to preload it:

    LD_PRELOAD={repo}/plugins/{plugin} tritonserver --model-repository={repo}

(Triton releases that support it can take `--backend-config=tensorrt,plugins={repo}/plugins/{plugin}`
instead.) The engine runs only on the GPU model and TensorRT release it was built for (see the manifest in
{detector}/1/).
"""


def _string(value):
    """A protobuf text-format string literal (JSON's escapes for quote, backslash and control characters are
    text format's too; other characters stay UTF-8)."""
    return json.dumps(value, ensure_ascii=False)


def _tensor(name, dtype, dims):
    return f'  {{ name: "{name}" data_type: {dtype} dims: [ {", ".join(str(d) for d in dims)} ] }}'


def _tensors(field, tensors):
    return f"{field} [\n" + ",\n".join(_tensor(*t) for t in tensors) + "\n]\n"


def _parameters(**params):
    return "".join(f"parameters {{ key: \"{k}\" value: {{ string_value: {_string(v)} }} }}\n"
                   for k, v in params.items())


def _config(name, head, inputs, outputs, max_batch, tail, manifest):
    return (f'name: "{name}"\n{head}max_batch_size: {max_batch}\n' + _tensors("input", inputs)
            + _tensors("output", outputs) + tail + _parameters(detrt_manifest=json.dumps(manifest.to_dict())))


def network_inputs(manifest):
    """(name, dtype, dims without batch) of the network's inputs: images, and image_sizes where it masks padding."""
    H, W = manifest.input_size
    return [(IMAGES, "TYPE_FP32", [3, H, W])] + ([(IMAGE_SIZES, "TYPE_FP32", [2])] if manifest.masks_padding else [])


def network_outputs(manifest):
    """(name, dtype, dims without batch) of the network's outputs, from the manifest."""
    k = manifest.num_select or -1
    dims = {"scores": [k], "labels": [k], "boxes": [k, 4], "pred_logits": [-1, manifest.num_classes],
            "pred_boxes": [-1, 4]}
    return [(n, OUTPUT_DTYPES[n], dims[n]) for n in manifest.outputs]


def batching(max_batch, preferred, queue_delay_us):
    """The dynamic_batching block: preferred sizes (default: the max batch) and the longest wait for them."""
    sizes = preferred or [max_batch]
    if any(not 1 <= s <= max_batch for s in sizes):
        raise InputError(f"--preferred-batch {','.join(map(str, sizes))}: sizes must be 1..{max_batch}")
    return (f"dynamic_batching {{ preferred_batch_size: [ {', '.join(map(str, sizes))} ] "
            f"max_queue_delay_microseconds: {queue_delay_us} }}\n")


def detector_config(manifest, engine, max_batch, instances, preferred=None, queue_delay_us=2000):
    head = 'platform: "tensorrt_plan"\n' if engine else 'platform: "onnxruntime_onnx"\n'
    kind = "KIND_GPU" if engine else "KIND_CPU"
    tail = (batching(max_batch, preferred, queue_delay_us)
            + f"instance_group [ {{ count: {instances} kind: {kind} }} ]\n")
    return _config(DETECTOR, head, network_inputs(manifest), network_outputs(manifest), max_batch, tail, manifest)


def step_configs(manifest, max_batch, instances):
    """{model name: config.pbtxt} of the two Python-backend steps."""
    transform = ("transform", "TYPE_FP32", [6])
    frames = [("frames", "TYPE_UINT8", [-1, -1, 3])]
    detections = [("boxes", "TYPE_FP32", [-1, 4]), ("scores", "TYPE_FP32", [-1]), ("labels", "TYPE_INT64", [-1]),
                  ("names", "TYPE_STRING", [-1])]
    group = f"instance_group [ {{ count: {instances} kind: KIND_CPU }} ]\n"
    pre = [*network_inputs(manifest), transform]
    return {name: _config(name, 'backend: "python"\n', inputs, outputs, max_batch,
                          group + _parameters(detrt_step=name), manifest)
            for name, inputs, outputs in [("preprocess", frames, pre),
                                          ("postprocess", [*network_outputs(manifest), transform], detections)]}


def ensemble_config(manifest, max_batch):
    def step(model, inputs, outputs):
        maps = [f'input_map {{ key: "{k}" value: "{v}" }}' for k, v in inputs] + \
               [f'output_map {{ key: "{k}" value: "{v}" }}' for k, v in outputs]
        return f'  {{ model_name: "{model}" model_version: -1\n    ' + "\n    ".join(maps) + " }"

    net = [(n, f"net_{n}") for n in manifest.outputs]
    inputs = [(n, n) for n, _, _ in network_inputs(manifest)]
    steps = [step("preprocess", [("frames", "frames")], [*inputs, ("transform", "transform")]),
             step(DETECTOR, inputs, net),
             step("postprocess", [*net, ("transform", "transform")],
                  [(n, n) for n in ("boxes", "scores", "labels", "names")])]
    outputs = [("boxes", "TYPE_FP32", [-1, 4]), ("scores", "TYPE_FP32", [-1]), ("labels", "TYPE_INT64", [-1]),
               ("names", "TYPE_STRING", [-1])]
    tail = "ensemble_scheduling { step [\n" + ",\n".join(steps) + "\n] }\n"
    return _config(ENSEMBLE, 'platform: "ensemble"\n', [("frames", "TYPE_UINT8", [-1, -1, 3])], outputs,
                   max_batch, tail, manifest)


def _check_repo(repo, force):
    repo = Path(repo)
    if repo.exists() and not repo.is_dir():
        raise InputError(f"{repo}: exists and is not a directory")
    if repo.is_dir() and any(repo.iterdir()) and not force:
        raise InputError(f"{repo}: exists and is not empty (pass --force to replace it)")


def export_triton(artifact, repo, *, force=False, max_batch=None, instances=1, preferred=None,
                  queue_delay_us=2000, plugins=None):
    """Write the model repository for `artifact` (model.onnx portable form, or model.engine) at `repo`.

    max_batch: the configs' max_batch_size (default and upper bound: the manifest's). instances: model
    instances of each model. preferred: dynamic batching's preferred batch sizes. plugins: engines only, the
    plugin library to ship (default: found beside the package or $DETRT_PLUGINS). Raises InputError for a
    non-empty `repo` without `force`, an artifact without (or not matching) its manifest, a plugin-form ONNX.
    Returns the list of files written, relative to `repo`.
    """
    artifact = Path(artifact)
    _check_repo(repo, force)
    manifest = check_artifact(artifact)
    engine = artifact.suffix.lower() in ENGINE_SUFFIXES
    if not engine and manifest.form == "plugin":
        raise InputError(f"{artifact}: a plugin-form graph (detrt:: nodes), which Triton's onnxruntime backend "
                         f"cannot run; export the portable form (detrt export --form portable)")
    max_batch = manifest.max_batch if max_batch is None else max_batch
    if not 1 <= max_batch <= manifest.max_batch:
        raise InputError(f"--max-batch {max_batch}: must be 1..{manifest.max_batch} (the artifact's max batch)")
    if instances < 1:
        raise InputError(f"--instances must be >= 1, got {instances}")
    library = None
    if engine and manifest.plugin_sha256 is not None:
        library = Path(plugins) if plugins else find_plugin_library()
        if library is None or not library.is_file():
            raise InputError(f"{artifact}: the engine needs detrt's plugin library, not found "
                             f"({library or 'pass --plugins PATH or set $DETRT_PLUGINS'})")
    model_file = "model.plan" if engine else "model.onnx"
    files = {f"{DETECTOR}/config.pbtxt": detector_config(manifest, engine, max_batch, instances, preferred,
                                                         queue_delay_us),
             f"{ENSEMBLE}/config.pbtxt": ensemble_config(manifest, max_batch)}
    for name, config in step_configs(manifest, max_batch, instances).items():
        files[f"{name}/config.pbtxt"] = config
        files[f"{name}/1/model.py"] = STEP_MODEL
    start = (START_PLAN.format(repo=Path(repo).resolve(), plugin=library.name, detector=DETECTOR) if engine
             else START_ONNX.format(repo=Path(repo).resolve()))
    files["README.md"] = README.format(artifact=artifact.name, ensemble=ENSEMBLE, detector=DETECTOR, start=start)
    with atomic_dir(repo) as tmp:
        for rel, text in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(text)
        (tmp / DETECTOR / "1").mkdir(parents=True)
        shutil.copyfile(artifact, tmp / DETECTOR / "1" / model_file)
        save_manifest(manifest, tmp / DETECTOR / "1" / model_file)
        if library is not None:
            (tmp / "plugins").mkdir()
            shutil.copyfile(library, tmp / "plugins" / library.name)
    return sorted([*files, f"{DETECTOR}/1/{model_file}", manifest_path(f"{DETECTOR}/1/{model_file}").as_posix(),
                   *([f"plugins/{library.name}"] if library else [])])
