"""scripts/setup.sh, run for real on a copy of the repository's layout, with stand-ins for the commands that
would change this machine (apt-get, dpkg, the venv's python): what it does, in which order, and how it fails."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

FAKE_PYTHON = """#!/bin/bash
echo "python $*" >> "$LOG"
case "$*" in
  *"import torch, torchvision"*) exit 1 ;;
esac
exit 0
"""
FAKE_APT = """#!/bin/bash
echo "apt-get $*" >> "$LOG"
exit 0
"""
FAKE_DPKG = """#!/bin/bash
exit 1
"""  # `dpkg -s PKG`: nothing is installed


@pytest.fixture(name="repo")
def repo_fixture(tmp_path: Path) -> Path:
    """scripts/setup.sh and pyproject.toml in a folder of their own, with a venv whose python only logs."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup.sh", repo / "scripts" / "setup.sh")
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    (repo / "scripts" / "vendor_console_assets.sh").write_text('echo "vendor $*" >> "$LOG"\n')
    for name, text in (("python", FAKE_PYTHON),):
        path = repo / ".venv" / "bin" / name
        path.parent.mkdir(parents=True)
        path.write_text(text)
        path.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("apt-get", FAKE_APT), ("dpkg", FAKE_DPKG)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return repo


def run_setup(repo: Path, *args: str, env: dict[str, str] | None = None,
              timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    bin_dir = repo.parent / "bin"
    full = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(repo.parent / "calls.log"),
            "SETUP_DPKG_LOCKS": str(repo.parent / "no-lock"), "SETUP_TORCH_INDEX": "none", **(env or {})}
    return subprocess.run(["bash", str(repo / "scripts" / "setup.sh"), *args], capture_output=True, text=True,
                          env=full, timeout=timeout_s, cwd=repo)


def calls(repo: Path) -> list[str]:
    log = repo.parent / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture(name="held_lock")
def held_lock_fixture(tmp_path: Path) -> Iterator[Path]:
    """A lock file held with fcntl, as dpkg holds /var/lib/dpkg/lock-frontend."""
    if shutil.which("lslocks") is None:
        pytest.skip("lslocks (util-linux) is missing: setup.sh cannot name the lock's holder")
    path = tmp_path / "lock-frontend"
    with path.open("w") as handle:
        fcntl.lockf(handle, fcntl.LOCK_EX)
        yield path


def test_a_held_dpkg_lock_fails_at_once_with_one_clear_line(repo: Path, held_lock: Path) -> None:
    res = run_setup(repo, env={"SETUP_DPKG_LOCKS": str(held_lock), "SETUP_APT_LOCK_WAIT_S": "0"}, timeout_s=20)
    assert res.returncode == 1
    assert f"another package manager is running: pid {os.getpid()}" in res.stderr and str(held_lock) in res.stderr
    assert not [c for c in calls(repo) if c.startswith("apt-get")]  # apt-get never ran (and never waited)


def test_a_held_dpkg_lock_is_waited_for_a_bounded_time_and_said(repo: Path, held_lock: Path) -> None:
    res = run_setup(repo, env={"SETUP_DPKG_LOCKS": str(held_lock), "SETUP_APT_LOCK_WAIT_S": "7"})
    assert "waiting for it at most 7 s (SETUP_APT_LOCK_WAIT_S)" in res.stdout
    assert any("DPkg::Lock::Timeout=7" in c for c in calls(repo) if c.startswith("apt-get"))


def test_steps_are_announced_and_mosquitto_clients_installed(repo: Path) -> None:
    res = run_setup(repo)
    assert res.returncode == 0, res.stderr
    steps = [line for line in res.stdout.splitlines() if line.startswith("setup: [")]
    assert [s.split("]")[0] for s in steps] == [f"setup: [{i}/5" for i in range(1, 6)], steps
    install = [c for c in calls(repo) if c.startswith("apt-get") and " install " in c]
    assert install and "mosquitto-clients" in install[0].split()
    assert res.stdout.strip().endswith("setup: done")


@pytest.mark.parametrize("gpu", [False, True])
def test_dev_setup_takes_cpu_only_torch_without_an_nvidia_gpu(repo: Path, gpu: bool) -> None:
    env = {"SETUP_TORCH_INDEX": "https://cpu.index.invalid/whl/cpu"}
    if gpu:
        nvidia_smi = repo.parent / "bin" / "nvidia-smi"
        nvidia_smi.write_text("#!/bin/bash\necho 'GPU 0: NVIDIA H200'\n")
        nvidia_smi.chmod(0o755)
    res = run_setup(repo, "--dev", env=env)
    assert res.returncode == 0, res.stderr
    pips = [c for c in calls(repo) if c.startswith("python -m pip install")]
    cpu = [c for c in pips if "--index-url https://cpu.index.invalid/whl/cpu" in c]
    if gpu:
        assert not cpu and "NVIDIA GPU found" in res.stdout
    else:
        assert cpu and "torch==2.14.1" in cpu[0] and "torchvision==0.29.1" in cpu[0], pips
        assert pips.index(cpu[0]) < next(i for i, c in enumerate(pips) if "-e .[dev,train" in c)  # before the extra
        assert "no NVIDIA GPU: CPU-only torch==2.14.1" in res.stdout
    assert "../shared/data" in res.stdout
