"""The manifest: the JSON beside every exported model or engine (docs/artifacts.md).

`model.onnx` has `model.onnx.json`, `model.engine` has `model.engine.json`. Compile writes the two together
with `save_artifact` (`Manifest.for_config` at export, `Manifest.derive` after); the runtime reads it
with `load_manifest` and refuses an artifact that does not match it (`check_artifact`,
`check_engine_environment`), saying what to rebuild. Torch-free: the runtime imports this module.

Conventions the fields carry:
- `input_size` is (H, W), multiples of 32; `images` is float32 [B, 3, H, W], RGB,
  x = (pixel / 255 - mean) / std per channel.
- `inputs`: ["images", "image_sizes"]: `image_sizes` float32 [B, 2] is each image's (h, w) inside the input
  (the letterbox's resized size; the input size for "stretch"), from which the graph masks the padding:
  the detections are those of the unpadded image. ["images"]: graphs exported before padding masks (the
  padding is part of what the model sees); the runtime feeds them images alone.
- `resize` "letterbox": scale keeping the aspect ratio, image at the top-left, the rest padded
  (DETR pads at the bottom/right); "stretch": plain resize to (W, H).
  `pad_value` None pads with zeros after normalization (the mean colour, as DETR batches pad);
  an int 0..255 pads with that grey level before normalization.
- `output_format` "topk": `scores` [B, K], `labels` [B, K] int64, `boxes` [B, K, 4] xyxy in
  network-input pixels, sorted by score; "raw": `pred_logits` [B, N, C] (sigmoid scores),
  `pred_boxes` [B, N, 4] cxcywh normalized to [0, 1] of the image (`image_sizes`), or of the padded
  network input for a graph without `image_sizes`.
- `num_select`: detections kept per image, the top-scoring (query, class) pairs (the "topk" graph's K;
  the runtime's top-k of a "raw" graph); null: all. `score_floor`: detections scoring below it are
  dropped by the runtime (the "topk" graph gives them score 0), whatever threshold a caller sets.
"""

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from detrt import __version__
from detrt.atomic import atomic_open, atomic_path
from detrt.data.vocabulary import Vocabulary
from detrt.errors import InputError

FORMAT_VERSION = 1
OUTPUTS = {"topk": ("scores", "labels", "boxes"), "raw": ("pred_logits", "pred_boxes")}
IMAGES, IMAGE_SIZES = "images", "image_sizes"
INPUTS = ((IMAGES, IMAGE_SIZES), (IMAGES,))  # what export writes; what it wrote before padding masks
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
OPENVINO_SUFFIX = ".xml"  # OpenVINO IR: model.xml, its weights model.bin beside it
PRECISIONS = ("fp32", "fp16", "bf16", "mixed", "int8")


@dataclass
class Manifest:
    """What the runtime needs to know about an artifact, and what it was built from."""

    family: str  # "dh-detr" | "cq-dino" | ...
    config: str  # named config, e.g. "dh_detr_r50"
    class_names: list  # label i of the outputs is class_names[i]
    input_size: tuple  # (H, W)
    onnx_sha256: str  # the ONNX graph's sha256 (for engines: the ONNX it was built from)
    mean: tuple = (0.485, 0.456, 0.406)
    std: tuple = (0.229, 0.224, 0.225)
    resize: str = "letterbox"  # "letterbox" | "stretch"
    pad_value: int = None  # None: zeros after normalization; else grey level 0..255
    output_format: str = "topk"  # "topk" | "raw"
    num_select: int = None  # detections kept per image; None: all
    score_floor: float = 0.0  # detections below it are dropped (the protocol the model was evaluated with)
    outputs: tuple = None  # output names; None -> OUTPUTS[output_format]
    inputs: tuple = (IMAGES,)  # one of INPUTS; a manifest without the field predates image_sizes
    precision: str = "fp32"  # "fp32" | "fp16" | "bf16", "mixed" (OpenVINO: bf16 backbone, fp32 rest) | "int8"
    form: str = "portable"  # "portable" (standard ops) | "plugin" (detrt:: nodes)
    opset: int = 17
    max_batch: int = 1
    toolkit_version: str = ""  # detrt version that wrote it
    parent: str = None  # the file it was made from (checkpoint for ONNX, ONNX for engines), see portable_parent
    # Engines only.
    engine_sha256: str = None
    tensorrt_version: str = None
    gpu_name: str = None
    compute_capability: str = None  # "8.7"
    plugin_sha256: str = None  # sha256 of the plugin library the engine was built with
    # OpenVINO IR only (onnx_sha256 is the .xml's).
    openvino_version: str = None  # the OpenVINO that wrote it, e.g. "2026.4.1"
    weights_sha256: str = None  # sha256 of the .bin beside the .xml
    # The accuracy gate (detrt build --gate): {"images", "ap", "mr2", "ap_delta", "mr2_delta", "ms_per_image",
    # "reference_ms_per_image", "passed"} against the FP32 graph it was built from; `detrt run --backend auto`
    # takes a sibling artifact only where it passed.
    gate: dict = None
    format: int = FORMAT_VERSION
    # Vast vocabularies (detrt.data.vocabulary): the hierarchy as parent indices (-1: a root; None: flat) and the
    # dataset's category ids (COCO results; None: 1..C).
    class_parents: list = None
    class_ids: list = None

    def __post_init__(self):
        if self.outputs is None:
            self.outputs = OUTPUTS.get(self.output_format)
        if not self.toolkit_version:
            self.toolkit_version = __version__

    @classmethod
    def for_config(cls, cfg, **fields):
        """The manifest of a model made from DetrConfig `cfg` (export); `fields` set the rest."""
        family = "cq-dino" if cfg.is_cqdino else "dh-detr" if cfg.dcg_layers else "deformable-detr"
        base = dict(family=family, config=cfg.name, class_parents=list(cfg.class_parents) or None,
                    class_ids=list(cfg.class_ids) or None,
                    class_names=list(cfg.class_names), input_size=tuple(cfg.input_size), onnx_sha256=None,
                    mean=tuple(cfg.mean), std=tuple(cfg.std), num_select=cfg.num_select, score_floor=cfg.score_floor)
        return cls(**{**base, **fields})

    def derive(self, **changes):
        """The manifest of an artifact made from this one's (surgery, build): `changes` are what the step
        changed (form, precision, parent, engine fields); the sha256 is set when the artifact is written
        (save_artifact), toolkit_version is this detrt's."""
        return Manifest.from_dict({**self.to_dict(), "toolkit_version": "", **changes})

    @property
    def is_engine(self):
        return self.engine_sha256 is not None

    @property
    def masks_padding(self):
        """The graph takes `image_sizes` and masks the padding (boxes of "raw" outputs are on the image)."""
        return IMAGE_SIZES in self.inputs

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def vocabulary(self):
        """The classes as a Vocabulary (names, hierarchy, dataset ids)."""
        return Vocabulary(self.class_names, self.class_parents, self.class_ids, "manifest")

    def to_dict(self):
        d = dataclasses.asdict(self)
        for k in ("input_size", "mean", "std", "outputs", "class_parents", "class_ids", "inputs"):
            d[k] = list(d[k]) if d[k] is not None else None
        return d

    @classmethod
    def from_dict(cls, d, where="manifest"):
        """Build and validate; every problem raises InputError naming `where` and the field."""
        if not isinstance(d, dict):
            raise InputError(f"{where}: not a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(f"{where}: unknown field(s) {', '.join(unknown)} (written by a newer detrt?)")
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [k for k in required if k not in d]
        if missing:
            raise InputError(f"{where}: missing field(s) {', '.join(missing)}")
        m = cls(**d)
        m.validate(where)
        return m

    def validate(self, where="manifest"):
        """Check types and ranges; normalize lists to tuples. Raises InputError."""

        def bad(name, why):
            raise InputError(f"{where}: field {name!r} {why}")

        if self.format != FORMAT_VERSION:
            bad("format", f"is {self.format!r}; this detrt reads format {FORMAT_VERSION}")
        for k in ("family", "config"):
            if not isinstance(getattr(self, k), str) or not getattr(self, k):
                bad(k, "must be a non-empty string")
        if (not isinstance(self.class_names, (list, tuple)) or not self.class_names
                or not all(isinstance(c, str) for c in self.class_names)):
            bad("class_names", "must be a non-empty list of strings")
        self.class_names = list(self.class_names)
        for k in ("class_parents", "class_ids"):
            if getattr(self, k) is not None and not isinstance(getattr(self, k), (list, tuple)):
                bad(k, f"must be null or a list of {len(self.class_names)} integers")
        given = ["'class_names'"] + [repr(k) for k in ("class_parents", "class_ids") if getattr(self, k) is not None]
        Vocabulary(self.class_names, self.class_parents, self.class_ids,
                   f"{where}: field{'s' if len(given) > 1 else ''} {', '.join(given)}")
        hw = self.input_size
        if (not isinstance(hw, (list, tuple)) or len(hw) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in hw)):
            bad("input_size", f"must be [H, W] positive integers, got {hw!r}")
        if hw[0] % 32 or hw[1] % 32:
            bad("input_size", f"must be multiples of 32, got {list(hw)}")
        self.input_size = (int(hw[0]), int(hw[1]))
        for k in ("mean", "std"):
            v = getattr(self, k)
            if (not isinstance(v, (list, tuple)) or len(v) != 3
                    or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):
                bad(k, f"must be 3 numbers (RGB, pixel/255 units), got {v!r}")
            setattr(self, k, tuple(float(x) for x in v))
        if any(s <= 0 for s in self.std):
            bad("std", f"must be positive, got {list(self.std)}")
        if self.resize not in ("letterbox", "stretch"):
            bad("resize", f"must be 'letterbox' or 'stretch', got {self.resize!r}")
        if self.pad_value is not None and (not isinstance(self.pad_value, int) or not 0 <= self.pad_value <= 255):
            bad("pad_value", f"must be null or an integer 0..255, got {self.pad_value!r}")
        if self.output_format not in OUTPUTS:
            bad("output_format", f"must be 'topk' or 'raw', got {self.output_format!r}")
        if self.outputs is None:
            self.outputs = OUTPUTS[self.output_format]
        if not isinstance(self.outputs, (list, tuple)) or sorted(self.outputs) != sorted(OUTPUTS[self.output_format]):
            bad("outputs", f"must be {list(OUTPUTS[self.output_format])} for output_format "
                           f"{self.output_format!r}, got {self.outputs!r}")
        self.outputs = tuple(self.outputs)
        if not isinstance(self.inputs, (list, tuple)) or tuple(self.inputs) not in INPUTS:
            bad("inputs", f"must be one of {' or '.join(str(list(i)) for i in INPUTS)}, got {self.inputs!r}")
        self.inputs = tuple(self.inputs)
        n = self.num_select
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            bad("num_select", f"must be null or a positive integer, got {n!r}")
        f = self.score_floor
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.0 <= f < 1.0:
            bad("score_floor", f"must be a number in [0, 1), got {f!r}")
        self.score_floor = float(f)
        if self.precision not in PRECISIONS:
            bad("precision", f"must be one of {', '.join(map(repr, PRECISIONS))}, got {self.precision!r}")
        if self.form not in ("portable", "plugin"):
            bad("form", f"must be 'portable' or 'plugin', got {self.form!r}")
        for k in ("opset", "max_batch"):
            v = getattr(self, k)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                bad(k, f"must be a positive integer, got {v!r}")
        for k in ("onnx_sha256", "engine_sha256", "plugin_sha256", "weights_sha256"):
            v = getattr(self, k)
            if v is None and k != "onnx_sha256":
                continue
            if not isinstance(v, str) or not re.fullmatch(r"[0-9a-f]{64}", v):
                bad(k, f"must be a sha256 hex digest (64 lowercase hex digits), got {v!r}")
        if self.is_engine:
            for k in ("tensorrt_version", "compute_capability"):
                if not isinstance(getattr(self, k), str) or not getattr(self, k):
                    bad(k, "is required for an engine (engine_sha256 is set)")
            if not re.fullmatch(r"\d+\.\d+", self.compute_capability):
                bad("compute_capability", f"must look like '8.7', got {self.compute_capability!r}")
        if self.gate is not None and (not isinstance(self.gate, dict) or not isinstance(self.gate.get("passed"), bool)):
            bad("gate", f"must be null or an object with a boolean 'passed', got {self.gate!r}")
        return self

    def rebuild_hint(self, artifact):
        """The command that recreates `artifact` from its parent."""
        artifact = Path(artifact)
        parent = self.parent
        if parent and (artifact.parent / parent).exists():  # recorded relative to the artifact's folder
            parent = str(artifact.parent / parent)
        if self.is_engine or artifact.suffix in ENGINE_SUFFIXES:
            src = parent or "model.onnx"
            return f"rebuild with: detrt build {src} --precision {self.precision} -o {artifact}"
        if parent and parent.endswith(".onnx"):
            backend = "openvino" if artifact.suffix == OPENVINO_SUFFIX else "onnxruntime"
            return (f"rebuild with: detrt build {parent} --backend {backend} "
                    f"--precision {self.precision} -o {artifact}")
        return f"re-export with: detrt export {parent or 'CHECKPOINT'} -o {artifact}"


def manifest_path(artifact):
    """The manifest beside `artifact`: `model.onnx` -> `model.onnx.json`."""
    artifact = Path(artifact)
    return artifact if artifact.suffix == ".json" else artifact.with_name(artifact.name + ".json")


def sha256_file(path, chunk=1 << 20):
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_manifest(artifact):
    """Read and validate the manifest beside `artifact` (or the .json itself). Raises InputError."""
    path = manifest_path(artifact)
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise InputError(f"{path}: manifest not found beside {artifact}; every artifact ships one "
                         f"(re-export with: detrt export CHECKPOINT -o MODEL.onnx)") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read manifest ({e.strerror or e})") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    return Manifest.from_dict(d, where=str(path))


def portable_parent(parent, artifact):
    """`parent` as the manifest records it: relative to the artifact's folder when it lies inside it,
    else its name only, so that no path of the machine that made the artifact travels with it."""
    if not parent:
        return parent
    rel = Path(os.path.relpath(Path(parent).resolve(), Path(artifact).resolve().parent))
    return Path(parent).name if rel.parts[:1] == ("..",) else rel.as_posix()


def save_manifest(manifest, artifact):
    """Validate and write the manifest beside `artifact` atomically; return its path."""
    path = manifest_path(artifact)
    manifest.validate(str(path))
    manifest.parent = portable_parent(manifest.parent, artifact)
    with atomic_open(path, "w") as f:
        json.dump(manifest.to_dict(), f, indent=2)
        f.write("\n")
    return path


def save_artifact(artifact, write, manifest=None, digest="onnx_sha256"):
    """Write an artifact and the manifest beside it; return the manifest.

    write(tmp) writes the artifact's bytes to a temporary path beside `artifact`; the manifest's `digest`
    field (onnx_sha256, or engine_sha256 for an engine) becomes the sha256 of those bytes. Both are written
    to temporary files first, then the manifest is renamed into place before the artifact: a crash between
    the two renames leaves a manifest that does not match the artifact beside it (refused, with the rebuild
    command), never an artifact without its manifest. manifest None writes the artifact alone.
    """
    with atomic_path(artifact) as tmp:
        write(tmp)
        if manifest is not None:
            setattr(manifest, digest, sha256_file(tmp))
            save_manifest(manifest, artifact)
    return manifest


def check_artifact(artifact, manifest=None):
    """Refuse an artifact whose bytes are not the ones its manifest describes. Returns the manifest."""
    artifact = Path(artifact)
    if not artifact.is_file():
        raise InputError(f"{artifact}: no such model file" if not artifact.exists()
                         else f"{artifact}: not a file")
    manifest = manifest or load_manifest(artifact)
    want = manifest.engine_sha256 if (manifest.is_engine or artifact.suffix in ENGINE_SUFFIXES) \
        else manifest.onnx_sha256
    if want is None:
        raise InputError(f"{artifact}: its manifest {manifest_path(artifact)} describes an ONNX model, "
                         f"not an engine; {manifest.rebuild_hint(artifact)}")
    for path, want in ((artifact, want), (artifact.with_suffix(".bin"), manifest.weights_sha256)):
        if want is None:
            continue
        if not path.is_file():
            raise InputError(f"{path}: missing, the weights of {artifact}; {manifest.rebuild_hint(artifact)}")
        got = sha256_file(path)
        if got != want:
            raise InputError(f"{path}: sha256 {got[:12]}... does not match its manifest ({want[:12]}...; the file "
                             f"changed after it was made); {manifest.rebuild_hint(artifact)}")
    return manifest


def check_engine_environment(manifest, artifact, *, tensorrt_version, compute_capability, plugin_sha256=None):
    """Refuse an engine built for another TensorRT, GPU or plugin library, saying what to rebuild."""
    hint = manifest.rebuild_hint(artifact)

    # major.minor.patch: a plan is tied to its TensorRT release. The build number is left out because some
    # packages report it (10.3.0.26) and others do not (10.3.0) for the same release.
    def release(v):
        return ".".join(str(v).split(".")[:3])

    if release(manifest.tensorrt_version) != release(tensorrt_version):
        raise InputError(f"{artifact}: built by TensorRT {manifest.tensorrt_version}, this machine has "
                         f"TensorRT {tensorrt_version}; {hint}")
    if manifest.compute_capability != compute_capability:
        raise InputError(f"{artifact}: built for compute capability {manifest.compute_capability} "
                         f"({manifest.gpu_name or 'another GPU'}), this GPU is {compute_capability}; {hint}")
    if manifest.plugin_sha256 is not None and manifest.plugin_sha256 != plugin_sha256:
        what = "no plugin library was found" if plugin_sha256 is None else "the plugin library differs"
        raise InputError(f"{artifact}: built with plugin library sha256 {manifest.plugin_sha256[:12]}..., "
                         f"{what}; {hint}")
