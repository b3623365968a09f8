"""``examples/hpo4dl_migration.py`` and ``examples/visualize.py`` run for real (smoke mode)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
import re
import subprocess
import sys
from typing import Any
from wsgiref.util import setup_testing_defaults

import optuna
import pytest

from optuna_dyhpo import epochs_spent
from tests.test_tuner import HPO4DL_COLUMNS

ROOT = Path(__file__).resolve().parents[2]


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), "--smoke", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        },
    )
    assert out.returncode == 0, out.stderr
    return out


def test_hpo4dl_migration_smoke(tmp_path: Path) -> None:
    out = run_example("hpo4dl_migration.py", "--output", str(tmp_path))
    text = out.stdout
    x = float(re.search(r"^x:\s+(-?[\d.]+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert abs(x - 2) < 0.1, text
    spent = int(re.search(r"^epochs spent:\s+(\d+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert spent == 40
    assert re.search(r"^runtime:\s+[\d.]+ s$", text, re.M)
    # Quiet by default, like HPO4DL: no per-trial Optuna log lines.
    assert "Trial 0" not in out.stderr and "[I " not in out.stderr

    # HPO4DL's layout: one new experiment folder per run; the checkpoint storage is gone.
    (experiment,) = tmp_path.iterdir()
    assert re.fullmatch(r"experiment_\d{8}-\d{6}", experiment.name)
    assert f"experiment:      {experiment}" in text
    assert sorted(p.name for p in experiment.iterdir()) == [
        "checkpoints",
        "configuration_space.json",
        "dyhpo.db",
        "hpo4dl_results.csv",
    ]
    with (experiment / "hpo4dl_results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == HPO4DL_COLUMNS
    assert len(rows) == 40
    assert float(rows[-1]["best_metric"]) == pytest.approx((x - 2) ** 2, abs=1e-5)
    assert min(float(r["metric"]) for r in rows) == float(rows[-1]["best_metric"])
    study = optuna.load_study(study_name="dyhpo", storage=f"sqlite:///{experiment / 'dyhpo.db'}")
    assert epochs_spent(study) == 40
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    # The README's objective saves nothing: the best checkpoint folder exists and is empty.
    assert not any((experiment / "checkpoints").iterdir())


def test_visualize_smoke(tmp_path: Path) -> None:
    out = run_example("visualize.py", "--output", str(tmp_path))
    # The epoch progress bar of StopAfterEpochs (tqdm writes to stderr).
    counts = [int(n) for n in re.findall(r"\b(\d+)/20 \[", out.stderr)]
    assert counts and counts[-1] == 20, out.stderr
    assert "epochs spent: " in out.stdout

    for name in ("race", "learning_curves", "incumbent"):
        html = (tmp_path / f"{name}.html").read_text()
        assert "plotly" in html and "DyHPO" in html
        png = tmp_path / f"{name}.png"
        if "PNG export skipped" in out.stderr:
            pytest.fail(f"PNG export failed: {out.stderr}")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert f"wrote {png}" in out.stdout
    assert (tmp_path / "plotly.min.js").is_file()

    storage = f"sqlite:///{tmp_path / 'dyhpo.db'}"
    study = optuna.load_study(study_name="dyhpo-visualize", storage=storage)
    assert 20 <= epochs_spent(study) <= 25
    # The dashboard serves the three plots with the study (its JSON API, called in-process).
    detail = dashboard_json(storage, f"/api/studies/{study._study_id}")
    graphs = {g["id"]: json.loads(g["graph_object"]) for g in detail["plotly_graph_objects"]}
    assert set(graphs) == {"plot_race", "plot_learning_curves", "plot_incumbent"}
    assert graphs["plot_race"]["layout"]["title"]["text"].startswith("DyHPO Race")
    assert graphs["plot_incumbent"]["data"], "the incumbent plot has traces"


def dashboard_json(storage: str, path: str) -> Any:
    """GET ``path`` from optuna-dashboard's WSGI app without a server."""
    import optuna_dashboard

    app = optuna_dashboard.wsgi(storage)
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ["PATH_INFO"] = path
    status: list[str] = []
    body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
    assert status and status[0].startswith("200"), status
    return json.loads(body)


def test_logs_smoke() -> None:
    out = run_example("logs.py")
    err = out.stderr.replace("\r", "\n")
    # The bar ends at the budget; one INFO line per trial at most, plus the study's
    # creation and the stop.
    assert "20/20" in err
    info = [line for line in err.splitlines() if line.startswith("[I ")]
    assert any("Spent 20 of 20 epochs" in line for line in info)
    trials = [line for line in info if re.search(r"Trial \d+", line)]
    assert 0 < len(trials) <= 20
