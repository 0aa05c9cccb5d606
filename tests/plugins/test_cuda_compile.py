"""CI compile checks of the CUDA kernels (plugins/cuda) and the TensorRT glue (plugins/tensorrt); nothing runs a GPU.

- Each plugins/cuda/*.cu compiles with nvcc (-Werror) to one object holding SASS for every target architecture
  (sm_75 80 86 87 89 90, plus sm_100 110 120 with nvcc >= 13) and compute_90 PTX; skipped only if nvcc is absent.
  ptxas reports a 0-byte stack frame for every MSDA kernel on every architecture (its taps stay in registers).
- The kernels include plugins/common's cores (nvcc's own dependency list proves which files) and call them, and
  the DCG kernel contains no contracted multiply-add, so its IoU rounds like the CPU kernel's.
- libdetrt_cuda.so links from those objects; its C ABI rejects bad sizes before touching a GPU. Built by CMake,
  it carries cudart statically (no libcudart.so needed), as libdetrt_plugins.so does.
- With DETRT_TRT_INCLUDE=dir[:dir...] (TensorRT `include/` folders; else an installed TensorRT's headers if
  found), the glue compiles against each with -Wall -Wextra -Werror and tests/plugins/trt_glue_check.cpp
  exercises the plugins' host side (creators, attributes, serialization, formats, shape checks); otherwise
  that test skips with the reason. `make trt-glue-check TRT_INCLUDE=dir` runs it, and with DETRT_TRT_INCLUDE
  set a missing nvcc fails it instead of skipping.
"""

import ctypes
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"
COMMON, CUDA_DIR, TRT_DIR = PLUGINS / "common", PLUGINS / "cuda", PLUGINS / "tensorrt"
CU_FILES = sorted(CUDA_DIR.glob("*.cu"))
BASE_ARCHS = ["75", "80", "86", "87", "89", "90"]
NEWER_ARCHS = ["100", "110", "120"]  # Blackwell datacenter, Jetson Thor, Blackwell client: nvcc >= 13

NVCC = shutil.which("nvcc") or next(
    (p for p in ("/usr/local/cuda/bin/nvcc", "/usr/local/bin/nvcc") if os.access(p, os.X_OK)), None
)
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found: the CUDA sources cannot be compiled here")

# What each kernel must take from plugins/common, and arithmetic it must not spell itself.
CORE_USE = {
    "msDeformAttn.cu": ("msda_core.h", ["msda::point_corners<I>("], ["floor", "0.5", "ceil"]),
    "dcgNeighbors.cu": (
        "dcg_core.h",
        ["dcg::box_from_cxcywh(", "dcg::iou(", "dcg::is_neighbor(", "dcg::topk_insert(", "dcg::topk_merge(",
         "dcg::topk_write("],
        ["0.5", "fminf", "fmaxf", "area"],
    ),
}


def run(cmd, **kwargs):
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))}\n{result.stdout}\n{result.stderr}"
    return result


def nvcc_major():
    match = re.search(r"release (\d+)\.", run([NVCC, "--version"]).stdout)
    return int(match.group(1)) if match else 0


def target_archs():
    return BASE_ARCHS + (NEWER_ARCHS if nvcc_major() >= 13 else [])


def gencode_flags(archs):
    flags = []
    for arch in archs:
        flags += ["-gencode", f"arch=compute_{arch},code=sm_{arch}"]
    return flags + ["-gencode", "arch=compute_90,code=compute_90"]  # PTX for GPUs newer than the list


def cuda_root():
    """The CUDA toolkit folder holding include/cuda_runtime_api.h (for host-compiled glue)."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), Path(NVCC).resolve().parents[1]]
    candidates += ["/usr/local/cuda"]
    for c in candidates:
        if c and (Path(c) / "include" / "cuda_runtime_api.h").exists():
            return Path(c)
    pytest.skip("CUDA headers not found next to nvcc (set CUDA_HOME)")


NVCC_FLAGS = ["-std=c++17", "-I", COMMON, "-Xcompiler", "-fPIC,-Wall,-Wextra", "-Werror", "all-warnings"]


@pytest.fixture(scope="module")
def cuda_build(tmp_path_factory):
    """Every .cu compiled once for all architectures: ({name: object path}, {name: ptxas -v report})."""
    if NVCC is None:
        if os.environ.get("DETRT_TRT_INCLUDE"):  # the glue check was asked for (make trt-glue-check): fail
            pytest.fail("DETRT_TRT_INCLUDE is set but nvcc was not found: the TensorRT glue check needs the CUDA "
                        "toolkit on PATH (or /usr/local/cuda)")
        pytest.skip("nvcc not found: the CUDA sources cannot be compiled here")
    out, objects, reports, seconds = tmp_path_factory.mktemp("cuda"), {}, {}, {}
    flags = gencode_flags(target_archs())
    for cu in CU_FILES:
        t0 = time.perf_counter()
        result = run([NVCC, *NVCC_FLAGS, *flags, "-Xptxas", "-v", "-c", cu, "-o", out / f"{cu.stem}.o"])
        objects[cu.name], seconds[cu.name] = out / f"{cu.stem}.o", time.perf_counter() - t0
        reports[cu.name] = result.stdout + result.stderr
    print(f"\nnvcc {nvcc_major()}: archs {' '.join(target_archs())} + compute_90 PTX; seconds {seconds}")
    return objects, reports


@pytest.fixture(scope="module")
def cuda_objects(cuda_build):
    return cuda_build[0]


def kernel_resources(report):
    """{(kernel, arch): (registers, stack bytes)} from a `ptxas -v` report."""
    entries = re.findall(r"Compiling entry function '(\w+)' for '(sm_\d+)'\n.*?\n\s+(\d+) bytes stack frame.*?\n"
                         r".*?Used (\d+) registers", report)
    return {(name, arch): (int(regs), int(stack)) for name, arch, stack, regs in entries}


def test_cuda_sources_exist():
    assert {p.name for p in CU_FILES} == set(CORE_USE), "a new kernel needs an entry in CORE_USE"


@needs_nvcc
@pytest.mark.parametrize("name", sorted(CORE_USE))
def test_cuda_source_compiles_for_all_archs(cuda_objects, name):
    obj = cuda_objects[name]
    assert obj.stat().st_size > 0
    data = obj.read_bytes()
    for arch in target_archs():  # the fatbinary names each SASS target
        assert f"sm_{arch}".encode() in data, f"{name}: no sm_{arch} code in {obj}"


@needs_nvcc
@pytest.mark.parametrize("name", sorted(CORE_USE))
def test_kernel_is_built_on_the_common_core(name):
    core, calls, forbidden = CORE_USE[name]
    deps = run([NVCC, "-std=c++17", "-I", COMMON, "-M", CUDA_DIR / name], cwd=ROOT).stdout
    included = {Path(p).resolve() for p in deps.replace("\\\n", " ").split()[1:]}
    assert (COMMON / core).resolve() in included, f"{name} does not include plugins/common/{core}"
    source = (CUDA_DIR / name).read_text()
    code = re.sub(r"//[^\n]*", "", source)  # comments may name anything
    for call in calls:
        assert call in code, f"{name} must call {call[:-1]} from plugins/common/{core}"
    for token in forbidden:
        assert token not in code, f"{name} spells '{token}': that arithmetic belongs in plugins/common/{core}"


@needs_nvcc
def test_msda_kernels_keep_their_taps_in_registers(cuda_build):
    """Every MSDA kernel, on every architecture, has a 0-byte stack frame: the four bilinear taps of a point
    (msda::Corners) are indexed only by constants, so no array of them goes to local memory."""
    resources = kernel_resources(cuda_build[1]["msDeformAttn.cu"])
    archs = {arch for _, arch in resources}
    assert archs == {f"sm_{a}" for a in target_archs()}, archs
    kernels = {name for name, _ in resources}
    assert len(kernels) == 6, kernels  # float32 and float16 (scalar, half2) x 32- and 64-bit offsets
    framed = {key: v for key, v in resources.items() if v[1] != 0}
    assert not framed, f"stack frames (registers, bytes): {framed}"


@needs_nvcc
def test_dcg_kernel_has_no_contracted_arithmetic(tmp_path):
    """--fmad=false changes nothing: no multiply-add was fused, so IoU rounds as on the CPU (-ffp-contract=off)."""
    ptx = []
    for fmad in ("true", "false"):
        out = tmp_path / f"dcg_{fmad}.ptx"
        source = CUDA_DIR / "dcgNeighbors.cu"
        run([NVCC, "-std=c++17", "-I", COMMON, "-arch=compute_80", f"-fmad={fmad}", "-ptx", source, "-o", out])
        ptx.append(out.read_text())
    assert ptx[0] == ptx[1]
    assert "div.rn.f32" in ptx[0]  # IEEE division, as on the host


@needs_nvcc
def test_c_abi_library_links_and_validates_arguments(cuda_objects, tmp_path):
    api = tmp_path / "detrtCudaApi.o"
    run([NVCC, *NVCC_FLAGS, "-I", CUDA_DIR, "-c", CUDA_DIR / "detrtCudaApi.cpp", "-o", api])
    lib_path = tmp_path / "libdetrt_cuda.so"
    run([NVCC, "-shared", "-o", lib_path, api, *cuda_objects.values()])  # cudart linked statically
    lib = ctypes.CDLL(str(lib_path))
    lib.detrt_cuda_error_string.restype = ctypes.c_char_p
    null, f = ctypes.c_void_p(None), ctypes.c_float
    invalid = 1  # cudaErrorInvalidValue: returned before any launch
    assert lib.detrt_cuda_dcg_neighbors(0, 1, 10, 0, f(0.4), f(0.1), *[null] * 5) == invalid  # k = 0
    assert lib.detrt_cuda_dcg_neighbors(0, 1, 10, 65, f(0.4), f(0.1), *[null] * 5) == invalid  # k > 64
    assert lib.detrt_cuda_dcg_neighbors(7, 1, 10, 10, f(0.4), f(0.1), *[null] * 5) == invalid  # dtype
    assert lib.detrt_cuda_dcg_neighbors(0, 2, 10, 10, f(0.4), f(0.1), *[null] * 5) == invalid  # null pointers
    assert lib.detrt_cuda_ms_deform_attn(0, -1, 4, 1, 1, 1, 1, 1, *[null] * 7) == invalid  # N < 0
    assert lib.detrt_cuda_ms_deform_attn(0, 1, 4, 1, 2, 1, 1, 3, *[null] * 7) == invalid  # null pointers
    assert lib.detrt_cuda_ms_deform_attn(1, 0, 4, 1, 2, 1, 1, 3, *[null] * 7) == 0  # empty: nothing to launch
    assert lib.detrt_cuda_error_string(invalid) == b"invalid argument"


@needs_nvcc
@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not found")
def test_cmake_build_links_cudart_statically(tmp_path):
    """libdetrt_cuda.so from the CMake build (one architecture) needs no libcudart.so: like libdetrt_plugins.so
    (the same kernel target) it loads where only TensorRT's pip wheels, which ship no cudart, are installed."""
    build = tmp_path / "build"
    env = {**os.environ, "PATH": f"{Path(NVCC).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    run(["cmake", "-S", ROOT, "-B", build, "-DDETRT_BUILD_CUDA=ON", "-DDETRT_BUILD_PYTHON=OFF",
         "-DDETRT_BUILD_TENSORRT=OFF", "-DCMAKE_CUDA_ARCHITECTURES=75-real", f"-DCMAKE_CUDA_COMPILER={NVCC}"], env=env)
    run(["cmake", "--build", build, "--target", "detrt_cuda", "-j", "2"], env=env)
    needed = run(["readelf", "-d", build / "plugins" / "cuda" / "libdetrt_cuda.so"]).stdout
    assert "NEEDED" in needed and "libcudart" not in needed, needed
    lib = ctypes.CDLL(str(build / "plugins" / "cuda" / "libdetrt_cuda.so"))
    lib.detrt_cuda_error_string.restype = ctypes.c_char_p
    assert lib.detrt_cuda_error_string(1) == b"invalid argument"  # cudart's own table, linked in


def trt_include_dirs():
    """DETRT_TRT_INCLUDE's folders, else an installed TensorRT's (TensorRT_ROOT, Debian/JetPack paths)."""
    dirs = [d for d in os.environ.get("DETRT_TRT_INCLUDE", "").split(os.pathsep) if d]
    if not dirs:
        installed = [Path(os.environ.get("TensorRT_ROOT", "/nonexistent")) / "include"]
        installed += [Path("/usr/include") / f"{arch}-linux-gnu" for arch in ("x86_64", "aarch64")]
        dirs = [str(d) for d in installed if (d / "NvInferRuntime.h").exists()][:1]
    return [pytest.param(d, id=Path(d).parent.name or d) for d in dirs] or [
        pytest.param(None, marks=pytest.mark.skip(reason="no TensorRT headers: set DETRT_TRT_INCLUDE to "
                                                        "NVIDIA/TensorRT's include/ folder(s) to compile the glue"))
    ]


@pytest.mark.parametrize("trt_include", trt_include_dirs())
def test_tensorrt_glue_compiles_and_behaves(cuda_objects, tmp_path, trt_include):
    trt_include = Path(trt_include)
    assert (trt_include / "NvInferRuntime.h").exists(), f"DETRT_TRT_INCLUDE entry {trt_include} has no NvInferRuntime.h"
    cuda = cuda_root()
    includes = ["-isystem", trt_include, "-isystem", cuda / "include", "-I", COMMON, "-I", CUDA_DIR, "-I", TRT_DIR]
    includes += ["-I", TRT_DIR / "msDeformAttnPlugin", "-I", TRT_DIR / "dcgNeighborsPlugin"]
    sources = [TRT_DIR / "detrtPlugins.cpp", *sorted(TRT_DIR.glob("*Plugin/*.cpp"))]
    sources.append(ROOT / "tests" / "plugins" / "trt_glue_check.cpp")
    objects = []
    for src in sources:
        objects.append(tmp_path / f"{src.stem}.o")
        run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-fPIC", *includes, "-c", src, "-o", objects[-1]])
    # The plugin library itself, with its export map: only the entry points are visible, only getPluginRegistry
    # (libnvinfer) is left for the loader to resolve.
    plugin_objects = [o for o in objects if o.stem != "trt_glue_check"] + list(cuda_objects.values())
    lib = tmp_path / "libdetrt_plugins.so"
    run([NVCC, "-shared", "-o", lib, *plugin_objects, f"-Xlinker=--version-script={TRT_DIR / 'detrtPlugins.map'}"])
    exported = run(["nm", "-D", "--defined-only", lib]).stdout
    assert sorted(re.findall(r" T (\S+)", exported)) == ["getCreators", "initLibDetrtPlugins", "setLoggerFinder"]
    undefined = run(["nm", "-D", "--undefined-only", lib]).stdout
    assert "getPluginRegistry" in undefined
    assert not re.search(r" U (detrt|_ZN5detrt)", undefined), "unresolved detrt symbols"
    check = tmp_path / "trt_glue_check"
    run([NVCC, "-o", check, *objects, *cuda_objects.values()])
    result = run([check])
    assert result.stdout.strip().endswith("OK: 0 failure(s)"), result.stdout
