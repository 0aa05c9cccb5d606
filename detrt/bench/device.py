"""Device facts recorded with every benchmark result. Read-only: nothing here changes the machine.

    facts = device_facts(threads=2)   # {"cpu": {...}, "gpu": [...], "jetson": {...}, "versions": {...}}

What is read, and how:
- CPU: /proc/cpuinfo (model), os.sched_getaffinity (cores usable), the frequency governor from sysfs,
  `lscpu` when /proc/cpuinfo names no model (ARM); `threads` is what the benchmark used.
- NVIDIA GPUs: `nvidia-smi --query-gpu=... --format=csv` (name, compute capability, driver, current and
  max SM/memory clocks, power limit, P-state: the clocks *as found*) and plain `nvidia-smi` for the
  CUDA version the driver supports; the CUDA runtime version through cuda-python when it imports.
- Jetson: /proc/device-tree/model, /etc/nv_tegra_release (L4T release; JetPack from its major),
  `nvpmodel -q` (the power mode, query only), GPU clocks from /sys/class/devfreq.
- Versions from installed package metadata (no heavy imports): ONNX Runtime, torch, TensorRT, ...

Never run here, by design (tests check the command list): `nvpmodel -m`, `jetson_clocks`,
`nvidia-smi -pm/-lgc/-rgc/-ac/-rac/-pl/-r`, or anything else that sets a clock or a power mode.
Benchmarks measure the machine as the user has it and record how it was.
"""

import glob
import os
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata

GPU_FIELDS = ("name", "compute_cap", "driver_version", "clocks.sm", "clocks.mem", "clocks.max.sm",
              "clocks.max.mem", "power.limit", "pstate", "memory.total")
# Every command this module may run. All are queries; tests assert nothing else is ever executed.
READ_ONLY_COMMANDS = (
    ("nvidia-smi", f"--query-gpu={','.join(GPU_FIELDS)}", "--format=csv,noheader,nounits"),
    ("nvidia-smi", f"--query-gpu={','.join(f for f in GPU_FIELDS if f != 'compute_cap')}",
     "--format=csv,noheader,nounits"),  # drivers older than 510 lack compute_cap
    ("nvidia-smi",),
    ("nvpmodel", "-q"),
    ("lscpu",),
)
PACKAGES = ("detrt", "numpy", "onnxruntime", "onnxruntime-gpu", "onnx", "torch", "tensorrt", "tensorrt-cu12",
            "tensorrt-cu13", "cuda-python", "cuda-bindings", "opencv-python-headless", "opencv-python")
# L4T major release -> JetPack major (NVIDIA's JetPack archive).
JETPACK_OF_L4T = {32: "4", 34: "5", 35: "5", 36: "6", 38: "7"}


def run_command(cmd, timeout=10):
    """stdout of a read-only query, or None when the tool is absent or fails. Refuses any other command."""
    cmd = tuple(cmd)
    if cmd not in READ_ONLY_COMMANDS:
        raise ValueError(f"refusing to run {cmd!r}: not a known read-only query")
    if shutil.which(cmd[0]) is None:
        return None
    try:
        res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout if res.returncode == 0 else None


def read_text(path):
    """A small file's text (NULs stripped), or None."""
    try:
        with open(path, "rb") as f:
            return f.read(1 << 16).decode("utf-8", "replace").replace("\0", "").strip()
    except OSError:
        return None


def cpu_facts(threads=None, read=read_text, run=run_command):
    info = read("/proc/cpuinfo") or ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                  if line.lower().startswith(("model name", "hardware", "processor\t: arm"))), None)
    if not model:
        out = run(("lscpu",)) or ""
        model = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")),
                     None)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"model": model or platform.processor() or platform.machine(), "arch": platform.machine(),
            "logical_cores": os.cpu_count(), "usable_cores": usable, "threads_used": threads,
            "governor": read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
            "memory_gb": _mem_gb(read("/proc/meminfo"))}


def _mem_gb(meminfo):
    m = re.search(r"MemTotal:\s+(\d+) kB", meminfo or "")
    return round(int(m.group(1)) / 2**20, 1) if m else None


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def gpu_facts(run=run_command):
    """One dict per NVIDIA GPU nvidia-smi lists (empty without nvidia-smi or a GPU)."""
    out, fields = run(READ_ONLY_COMMANDS[0]), GPU_FIELDS
    if out is None:
        out, fields = run(READ_ONLY_COMMANDS[1]), tuple(f for f in GPU_FIELDS if f != "compute_cap")
    if not out:
        return []
    gpus = []
    for line in out.strip().splitlines():
        values = [v.strip() for v in line.split(",")]
        if len(values) != len(fields):
            continue
        row = dict(zip(fields, values))
        gpus.append({"name": row["name"], "compute_capability": row.get("compute_cap"),
                     "driver": row["driver_version"], "sm_clock_mhz": _number(row["clocks.sm"]),
                     "mem_clock_mhz": _number(row["clocks.mem"]), "max_sm_clock_mhz": _number(row["clocks.max.sm"]),
                     "max_mem_clock_mhz": _number(row["clocks.max.mem"]), "power_limit_w": _number(row["power.limit"]),
                     "pstate": row["pstate"], "memory_mib": _number(row["memory.total"])})
    return gpus


def cuda_versions(run=run_command):
    """{"driver_cuda": what the driver supports (nvidia-smi), "runtime_cuda": cuda-python's runtime}."""
    out = run(READ_ONLY_COMMANDS[2]) or ""
    m = re.search(r"CUDA Version:\s*([0-9.]+)", out)
    facts = {"driver_cuda": m.group(1) if m else None, "runtime_cuda": None}
    try:
        from cuda.bindings import runtime as cudart

        err, version = cudart.cudaRuntimeGetVersion()
        if not int(err):
            facts["runtime_cuda"] = f"{version // 1000}.{version % 1000 // 10}"
    except Exception:  # noqa: BLE001 - absent or broken cuda-python: the fact is simply unknown
        pass
    torch = sys.modules.get("torch")  # only if the caller already imported torch
    if facts["runtime_cuda"] is None and torch is not None:
        facts["runtime_cuda"] = getattr(getattr(torch, "version", None), "cuda", None)
    return facts


def jetson_facts(read=read_text, run=run_command):
    """Jetson model, L4T/JetPack release, power mode and GPU clocks; None off Jetson."""
    model = read("/proc/device-tree/model")
    release = read("/etc/nv_tegra_release")
    if not release and not (model and "jetson" in model.lower()):
        return None
    facts = {"model": model, "l4t": None, "jetpack": None, "nv_tegra_release": release, "power_mode": None}
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([0-9.]+)", release or "")
    if m:
        facts["l4t"] = f"{m.group(1)}.{m.group(2)}"
        facts["jetpack"] = JETPACK_OF_L4T.get(int(m.group(1)))
    out = run(READ_ONLY_COMMANDS[3])
    if out:
        m = re.search(r"NV Power Mode:\s*(\S+)", out)
        facts["power_mode"] = m.group(1) if m else out.strip().splitlines()[0]
    clocks = {}
    for path in sorted(glob.glob("/sys/class/devfreq/*")):
        name = os.path.basename(path)
        if re.search(r"gpu|ga10b|gv11b|gp10b|gb10b", name):
            clocks[name] = {k: _number(read(os.path.join(path, k))) for k in ("cur_freq", "max_freq")}
    facts["gpu_devfreq_hz"] = clocks or None
    return facts


def package_versions():
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def device_facts(threads=None, run=run_command, read=read_text):
    """Everything above as one JSON-ready dict."""
    return {"hostname": platform.node(), "os": f"{platform.system()} {platform.release()}",
            "cpu": cpu_facts(threads, read, run), "gpus": gpu_facts(run), "cuda": cuda_versions(run),
            "jetson": jetson_facts(read, run), "versions": package_versions()}


def describe(facts):
    """One line for tables and RESULTS.md: CPU (cores), GPU(s) or 'no GPU', Jetson and power mode."""
    cpu = facts["cpu"]
    parts = [f"{cpu['model']} ({cpu['usable_cores']} usable cores"
             + (f", {cpu['threads_used']} threads used)" if cpu.get("threads_used") else ")")]
    if facts["gpus"]:
        for g in facts["gpus"]:
            parts.append(f"{g['name']} (sm {g['compute_capability'] or '?'}, driver {g['driver']}, "
                         f"SM clock {g['sm_clock_mhz']:.0f}/{g['max_sm_clock_mhz']:.0f} MHz as found)"
                         if g["sm_clock_mhz"] is not None and g["max_sm_clock_mhz"] is not None
                         else f"{g['name']} (sm {g['compute_capability'] or '?'}, driver {g['driver']})")
    else:
        parts.append("no NVIDIA GPU")
    j = facts.get("jetson")
    if j:
        parts.append(f"{j['model']} L4T {j['l4t']} (JetPack {j['jetpack'] or '?'}), power mode {j['power_mode']}")
    v = facts["versions"]
    parts.append(", ".join(f"{k} {v[k]}" for k in ("onnxruntime", "torch", "tensorrt") if k in v))
    return "; ".join(p for p in parts if p)
