"""The quickstart runs for real (smoke mode) and its study is what it claims."""

from __future__ import annotations

import os
from pathlib import Path
import re
import subprocess
import sys

import optuna

from optuna_dyhpo import epochs_spent
from optuna_dyhpo import get_configurations

ROOT = Path(__file__).resolve().parents[2]


def _run_quickstart(out: Path) -> str:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "quickstart.py"),
            "--smoke",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        # The package of this checkout, whatever the installed one is.
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        },
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_quickstart_smoke(tmp_path: Path) -> None:
    text = _run_quickstart(tmp_path)
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
    # One checkpoint per configuration (each pauses or ends with a save): the latest one.
    files = {f.name for f in (tmp_path / "artifacts").iterdir()}
    latest = set()
    for c in configs:
        saved = [study.trials[n].user_attrs.get("dyhpo_checkpoint") for n in c.trial_numbers]
        latest.add([a for a in saved if a][-1])
    assert files == latest
    assert f"checkpoints kept:         {len(files)} for {len(configs)} configurations" in text

    # Running it again replaces the study and its checkpoints: the folder does not grow.
    text = _run_quickstart(tmp_path)
    study = optuna.load_study(study_name="dyhpo-quickstart", storage=storage)
    again = {f.name for f in (tmp_path / "artifacts").iterdir()}
    assert not again & files
    assert len(again) == len(get_configurations(study))
