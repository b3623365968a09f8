"""The quickstart runs for real (smoke mode) and its study is what it claims."""

from __future__ import annotations

from pathlib import Path
import re
import subprocess
import sys

import optuna

from optuna_dyhpo import epochs_spent
from optuna_dyhpo import get_configurations

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_smoke(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "quickstart.py"),
            "--smoke",
            "--output",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    spent = int(re.search(r"epochs spent:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
    accuracy = float(re.search(r"best validation accuracy: ([\d.]+)", text).group(1))  # type: ignore[union-attr]
    assert 20 <= spent <= 25 and accuracy > 0.5

    storage = f"sqlite:///{tmp_path / 'dyhpo.db'}"
    study = optuna.load_study(study_name="dyhpo-quickstart", storage=storage)
    assert epochs_spent(study) == spent
    configs = get_configurations(study)
    assert f"configurations started:   {len(configs)}" in text
    resumed = [c for c in configs if len(c.trial_numbers) > 1]
    assert resumed, "the smoke run should pause and resume at least one configuration"
    # Checkpoints were saved as artifacts on disk, one per pause.
    paused = [t for t in study.trials if t.user_attrs.get("dyhpo_status") == "paused"]
    files = list((tmp_path / "artifacts").rglob("*"))
    assert paused and len([f for f in files if f.is_file()]) == len(paused)
