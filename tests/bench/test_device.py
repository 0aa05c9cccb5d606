"""detrt.bench.device: facts are parsed from the tools' output, and nothing that changes state ever runs."""

import subprocess

import pytest

from detrt.bench import device

SMI_QUERY = "NVIDIA H100 80GB HBM3, 9.0, 550.54.15, 1980, 2619, 1980, 2619, 700.00, P0, 81559\n"
SMI_PLAIN = "| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: 12.4     |\n"
NVPMODEL = "NV Power Mode: MAXN\n0\n"
# Options that set state on these tools; none may ever appear in a command run by device.py.
FORBIDDEN = ("-m", "--mode", "-pm", "--persistence-mode", "-lgc", "--lock-gpu-clocks", "-rgc", "-ac",
             "--applications-clocks", "-rac", "-pl", "--power-limit", "-r", "--gpu-reset", "-lmc", "-e", "-c",
             "--set", "-d")


@pytest.fixture
def recorded(monkeypatch):
    """Every tool 'exists'; subprocess.run records the command and answers like the real tool."""
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(tuple(cmd))
        out = {"nvidia-smi": SMI_PLAIN, "nvpmodel": NVPMODEL, "lscpu": "Model name: Fake CPU\n"}[cmd[0]]
        if cmd[0] == "nvidia-smi" and len(cmd) > 1:
            out = SMI_QUERY
        return subprocess.CompletedProcess(cmd, 0, out, "")

    monkeypatch.setattr(device.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(device.subprocess, "run", fake_run)
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail(f"unexpected Popen {a}"))
    return calls


def fake_read(files):
    return lambda path: files.get(path)


def test_only_read_only_queries_run(recorded):
    files = {"/proc/device-tree/model": "NVIDIA Jetson AGX Orin Developer Kit",
             "/etc/nv_tegra_release": "# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64",
             "/proc/cpuinfo": "processor\t: 0\n", "/proc/meminfo": "MemTotal:       32000000 kB\n"}
    facts = device.device_facts(threads=4, read=fake_read(files))
    assert recorded, "expected nvidia-smi / nvpmodel / lscpu queries"
    for cmd in recorded:
        assert cmd in device.READ_ONLY_COMMANDS
        assert not set(cmd[1:]) & set(FORBIDDEN), cmd
        assert cmd[0] not in ("jetson_clocks", "nvidia-settings"), cmd
        if cmd[0] == "nvpmodel":
            assert cmd == ("nvpmodel", "-q")
        if cmd[0] == "nvidia-smi" and len(cmd) > 1:
            assert cmd[1].startswith("--query-gpu=") and cmd[2].startswith("--format=")
    gpu = facts["gpus"][0]
    assert gpu["name"] == "NVIDIA H100 80GB HBM3" and gpu["compute_capability"] == "9.0"
    assert gpu["sm_clock_mhz"] == 1980 and gpu["max_mem_clock_mhz"] == 2619 and gpu["pstate"] == "P0"
    assert facts["cuda"]["driver_cuda"] == "12.4"
    assert facts["cpu"]["model"] == "Fake CPU" and facts["cpu"]["threads_used"] == 4
    assert facts["cpu"]["memory_gb"] == pytest.approx(30.5, abs=0.1)
    j = facts["jetson"]
    assert j["l4t"] == "36.3.0" and j["jetpack"] == "6" and j["power_mode"] == "MAXN"
    assert "Jetson AGX Orin" in device.describe(facts) and "MAXN" in device.describe(facts)


def test_run_command_refuses_anything_not_listed(monkeypatch):
    monkeypatch.setattr(device.subprocess, "run", lambda *a, **k: pytest.fail("must not run"))
    for cmd in (("nvpmodel", "-m", "0"), ("jetson_clocks",), ("nvidia-smi", "-lgc", "1000"),
                ("nvidia-smi", "-pm", "1")):
        with pytest.raises(ValueError, match="refusing"):
            device.run_command(cmd)


def test_no_gpu_no_jetson(monkeypatch):
    monkeypatch.setattr(device.shutil, "which", lambda name: None)
    monkeypatch.setattr(device.subprocess, "run", lambda *a, **k: pytest.fail("absent tools must not run"))
    facts = device.device_facts(read=fake_read({"/proc/cpuinfo": "model name\t: Some CPU @ 3GHz\n"}))
    assert facts["gpus"] == [] and facts["jetson"] is None and facts["cpu"]["model"] == "Some CPU @ 3GHz"
    assert "no NVIDIA GPU" in device.describe(facts)
    assert "onnxruntime" in facts["versions"]


def test_old_driver_without_compute_cap(recorded, monkeypatch):
    real = device.subprocess.run

    def run(cmd, **kwargs):
        if "compute_cap" in " ".join(cmd):
            recorded.append(tuple(cmd))
            return subprocess.CompletedProcess(cmd, 2, "", "Field \"compute_cap\" is not a valid field")
        return real(cmd, **kwargs)

    monkeypatch.setattr(device.subprocess, "run", run)
    out = "Tesla T4, 470.1, 585, 5000, 1590, 5001, 70.00, P8, 15109\n"
    gpus = device.gpu_facts(run=lambda cmd: device.run_command(cmd) if "compute_cap" in cmd[1] else out)
    assert gpus[0]["name"] == "Tesla T4" and gpus[0]["compute_capability"] is None and gpus[0]["sm_clock_mhz"] == 585
