"""Machine and software description recorded in results files and in RESULTS.md."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
import platform
import subprocess
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
_PACKAGES = ("optuna", "optuna-dyhpo", "torch", "gpytorch", "numpy", "onnxruntime", "smac")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def machine_info() -> dict[str, Any]:
    """Return the machine (CPU, cores, memory, OS) and the relevant package versions."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "os": platform.platform(),
        "versions": versions,
        "git_commit": _git_commit(),
    }


def describe_machine(info: dict[str, Any]) -> str:
    """One line for people: CPU, cores, memory, OS."""
    return (
        f"{info.get('cpu')}, {info.get('logical_cores')} logical cores, "
        f"{info.get('memory_gb')} GB RAM, {info.get('os')}"
    )
