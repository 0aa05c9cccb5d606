"""What the model-level benchmark scripts share: the model under test, its artifacts, frames, outputs.

    src = model_source(args.checkpoint)        # a trained checkpoint, by default the bundled model
    arts = artifacts(src, frames)             # {"eager": "torch:DIR", "fp32": ..., "int8": ..., "plugin": ...}

The model under test is `--checkpoint DIR` (checkpoint.safetensors + checkpoint.json, as `detrt train`
writes), by default the bundled `dhdetr_r18_tiny` (detrt/assets). scaling.py varies queries and input
size, which no trained model covers: `random_model` makes a seeded random `dhdetr_r18_tiny` whose class
head is spread so scores clear DCG's floor (at init every logit is masked, which would skip the DCG work);
speed figures from it are representative of the architecture, accuracy figures are not.

Artifacts are made the way users make them, through the compile stage: `export_checkpoint` (portable and
plugin form) then `detrt.compile.build.build(..., backend="onnxruntime")` (ORT's offline-optimized
CPU artifact; INT8 calibrated on frames of the synthetic video), and with openvino=True the OpenVINO artifacts
of the plugin-form export (--backend openvino, fp32 / mixed / bf16 / int8). They are cached under .cache/bench/,
keyed by the checkpoint's sha256 and the input size, so the scripts of one `make bench` share them.
"""

import json
import os
import shlex
import sys
from pathlib import Path

from detrt.data.preprocess import filled_sizes

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
RESULTS = ROOT / "results"
RESULTS_MD = ROOT / "RESULTS.md"
CACHE = REPO / ".cache" / "bench"
RANDOM_CONFIG = "dhdetr_r18_tiny"


def log(msg):
    print(msg, flush=True)


def model_source(checkpoint=None):
    """(checkpoint dir, description): `checkpoint`, or the bundled model."""
    if checkpoint is None:
        from detrt.assets import bundled_model_path

        return bundled_model_path(), "the bundled dhdetr_r18_tiny (detrt/assets, trained on synthetic crowds)"
    path = Path(checkpoint)
    if not path.exists():
        sys.exit(f"error: --checkpoint {checkpoint}: not found")
    return path, f"checkpoint {checkpoint}"


def random_model(config=RANDOM_CONFIG, seed=0, **overrides):
    """(checkpoint dir, description) of a seeded random model, saved once in the cache."""
    tag = "-".join([config, f"s{seed}", *(f"{k}{'x'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                                          for k, v in sorted(overrides.items()))])
    d = CACHE / f"random-{tag}"
    if not (d / "checkpoint.json").is_file():
        import torch
        from safetensors.torch import save_file

        from detrt.models import build_model

        torch.manual_seed(seed)
        model = build_model(config, **overrides).eval()
        with torch.no_grad():  # at init every class logit is under DCG's floor (masked): spread the scores
            for name, p in model.named_parameters():
                if name.startswith("class_embed"):
                    p.normal_(0, 0.5)
        d.mkdir(parents=True, exist_ok=True)
        save_file(model.state_dict(), str(d / "checkpoint.safetensors"))
        meta = {"config": config, "config_overrides": {k: list(v) if isinstance(v, tuple) else v
                                                       for k, v in overrides.items()},
                "note": f"random initialization (seed {seed}, class head spread); not trained"}
        (d / "checkpoint.json").write_text(json.dumps(meta, indent=1))
    return d, f"randomly initialized {config} (seed {seed}{', ' if overrides else ''}" \
              f"{', '.join(f'{k}={v}' for k, v in overrides.items())}; untrained)"


def synthetic_video(frames=64, seed=0):
    """A synthetic crowd video (detrt.data.synthetic) in the cache: calibration and benchmark frames."""
    from detrt.data.synthetic_set import synthesize

    d = CACHE / f"video-s{seed}-f{frames}"
    if not (d / "video.mp4").is_file():
        synthesize(d, num=0, frames=frames, seed=seed, progress=False, overwrite=True)
    return d / "video.mp4"


def synthetic_val(num=50, seed=2):
    """A held-out synthetic validation set (seed 2, the bundled model's validation seed; it trained on seed 1):
    (annotations.odgt, images dir)."""
    from detrt.data.synthetic_set import synthesize

    d = CACHE / f"val-s{seed}-n{num}"
    if not (d / "annotations.odgt").is_file():
        synthesize(d, num=num, frames=0, seed=seed, progress=False, overwrite=True)
    return d / "annotations.odgt", d / "images"


def _key(checkpoint):
    from detrt.manifest import sha256_file

    weights = checkpoint / "checkpoint.safetensors" if checkpoint.is_dir() else checkpoint
    return sha256_file(weights)[:12]


OPENVINO = ("ov_fp32", "ov_mixed", "ov_bf16", "ov_int8")  # `detrt build --backend openvino`, plugin-form export


def openvino_here():
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def artifacts(checkpoint, calib, calib_frames=32, max_batch=4, want=("fp32", "int8", "plugin"), fp16=False,
              openvino=False):
    """Paths of the artifacts of `checkpoint`, made once (cached): eager, fp32, int8, plugin[, fp16][, OpenVINO's
    ov_fp32, ov_mixed, ov_bf16, ov_int8]."""
    from detrt.compile.export import export_checkpoint
    from detrt.compile.build import build

    d = CACHE / f"artifacts-{_key(checkpoint)}-b{max_batch}"
    d.mkdir(parents=True, exist_ok=True)
    out = {"eager": f"torch:{checkpoint}"}
    exported = {}

    def export(form):
        if form not in exported:
            path = d / f"export_{form}.onnx"
            if not path.is_file():
                export_checkpoint(checkpoint, path, form=form, max_batch=max_batch, log=log)
            exported[form] = path
        return exported[form]

    for name in want:
        path = d / f"{name}.onnx"
        if not path.is_file():
            form = "plugin" if name == "plugin" else "portable"
            precision = "fp32" if name == "plugin" else name
            if name == "fp16":  # the graph TensorRT builds, run here by ONNX Runtime's CPU (for accuracy)
                _fp16_artifact(export(form), path)
            else:
                build(export(form), path, precision=precision, backend="onnxruntime", calib=str(calib),
                      calib_frames=calib_frames, log=log)
        out[name] = str(path)
    for name in OPENVINO if openvino else ():
        path = d / f"{name}.xml"
        if not path.is_file():
            build(export("plugin"), path, precision=name.removeprefix("ov_"), backend="openvino", calib=str(calib),
                  calib_frames=calib_frames, log=log)
        out[name] = str(path)
    if fp16 and "fp16" not in out:
        path = d / "fp16.onnx"
        if not path.is_file():
            _fp16_artifact(export("portable"), path)
        out["fp16"] = str(path)
    return out


def _fp16_artifact(src, dst):
    from detrt.compile.build import build_graph
    from detrt.compile.onnx_io import load_onnx, save_onnx
    from detrt.manifest import load_manifest

    model = build_graph(load_onnx(src), "fp16")
    save_onnx(model, dst, load_manifest(src).derive(precision="fp16", parent=str(src)))


def full_image_feed(input_names, images):
    """A graph's feed for images that fill the network input: `images`, and `image_sizes` where it takes them."""
    feed = {"images": images}
    if "image_sizes" in input_names:
        feed["image_sizes"] = filled_sizes(len(images), images.shape[-2:])
    return feed


def kernel_events(session, runs, warmup):
    """ONNX Runtime's per-kernel profile events of a profiling `session` that ran `runs` times, those of the
    first `warmup` runs left out (every run profiles the same kernels, in the same order)."""
    with open(session.end_profiling()) as f:
        events = [e for e in json.load(f) if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    return events[len(events) // runs * warmup:]


def load_average():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def header(title, script, argv, facts, model_what=None, note=None, load=None):
    """The first lines of a RESULTS.md section: heading, command, date, machine, model (if any), load."""
    from detrt.bench.device import describe
    from detrt.bench.measure import wall_time

    cmd = shlex.join([".venv/bin/python", f"benchmarks/{script}", *argv])
    lines = [f"## benchmarks/{script}: {title}", ""]
    if note:
        lines += [f"**{note}**", ""]
    lines += [f"Command: `{cmd}`  ", f"Date: {wall_time()}  ", f"Machine: {describe(facts)}  "]
    if model_what:
        lines.append(f"Model: {model_what}  ")
    if load is not None:
        cores = facts["cpu"]["usable_cores"] or 1
        busy = " (other jobs were running: figures are noisy)" if load > 0.5 * cores else ""
        lines.append(f"Load average at start: {load:.2f} on {cores} cores{busy}  ")
    return lines


def write_outputs(name, result, section, out=None, markdown=True):
    """benchmarks/results/NAME.json (or `out`) and, unless markdown=False, this script's RESULTS.md section."""
    from detrt.bench.report import update_results_md, write_json

    out = Path(out) if out else RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    if markdown:
        update_results_md(RESULTS_MD, section.replace(f"{REPO}/", ""))  # repository-relative paths in the text
    log(f"wrote {out}" + (f" and its section of {RESULTS_MD}" if markdown else ""))
