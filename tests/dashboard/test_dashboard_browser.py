"""optuna-dashboard shows a DyHPO study: its JSON API, and the real page in headless Chromium.

The server is ``optuna_dashboard.wsgi(storage, artifact_store=...)`` served by ``wsgiref`` on a
free loopback port in a background thread. The browser is Debian's Chromium driven by Playwright
(``executable_path``; no browser is ever downloaded). Install it with
``bash scripts/install-browser.sh``. Outside CI, the browser test is skipped when Chromium or
Playwright is missing; with ``CI=true`` it fails instead.

Screenshots go to ``test-output/`` (gitignored). ``PYTHONPATH=. python
tests/dashboard/test_dashboard_browser.py --docs-image`` (from the repository root) regenerates
``docs/images/dashboard.png`` and ``docs/images/dashboard-note.png`` from a 120-epoch quickstart
study.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import json
import os
from pathlib import Path
import re
import shutil
from socketserver import ThreadingMixIn
import sys
import threading
from typing import Any
from urllib.request import urlopen
from wsgiref.simple_server import WSGIRequestHandler
from wsgiref.simple_server import WSGIServer
from wsgiref.simple_server import make_server

import optuna
from optuna.artifacts import FileSystemArtifactStore
import optuna_dashboard
import pytest

from tests.dashboard.dashboard_study import DashboardStudy
from tests.dashboard.dashboard_study import build_quickstart_study

optuna.logging.set_verbosity(optuna.logging.WARNING)

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "test-output"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
# Generous: on a loaded 2-core machine a page with three large plotly figures can take tens of
# seconds to load and draw. Used for navigation, locators and `expect` alike.
TIMEOUT_MS = 90_000

# The swap point: the study of ``examples/quickstart.py --smoke`` (a real DyHPO race); use
# ``tests.dashboard.dashboard_study.build_study`` for a fast hand-made four-trial study.
STUDY_FACTORY: Callable[[Path], DashboardStudy] = build_quickstart_study


def chromium_path() -> str | None:
    """Debian's Chromium, or the file ``DYHPO_CHROMIUM`` names; None if there is none."""
    override = os.environ.get("DYHPO_CHROMIUM")
    candidates = [override] if override else ["/usr/bin/chromium", shutil.which("chromium")]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def require_browser() -> str:
    """Return Chromium's path; skip (fail under ``CI=true``) if it or Playwright is missing."""
    problems = []
    path = chromium_path()
    if path is None:
        where = os.environ.get("DYHPO_CHROMIUM") or "/usr/bin/chromium"
        problems.append(f"Chromium not found at {where}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("the Python package `playwright` is not installed")
    if problems:
        reason = "; ".join(problems) + " (run `bash scripts/install-browser.sh`)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the browser test cannot run: {reason}")
        pytest.skip(reason)
    assert path is not None
    return path


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def serve_dashboard(study: DashboardStudy) -> tuple[str, Callable[[], None]]:
    """Start optuna-dashboard on a free loopback port; returns (base URL, stop function)."""
    app = optuna_dashboard.wsgi(
        study.storage_url, artifact_store=FileSystemArtifactStore(str(study.artifact_dir))
    )
    server = make_server("127.0.0.1", 0, app, server_class=_Server, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="optuna-dashboard", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

    return f"http://127.0.0.1:{server.server_port}", stop


def get_json(url: str) -> Any:
    with urlopen(url, timeout=10) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> DashboardStudy:
    return STUDY_FACTORY(tmp_path_factory.mktemp("dashboard"))


@pytest.fixture(scope="module")
def base_url(study: DashboardStudy) -> Iterator[str]:
    url, stop = serve_dashboard(study)
    yield url
    stop()


@pytest.fixture(scope="module")
def study_id(base_url: str, study: DashboardStudy) -> int:
    studies = get_json(f"{base_url}/api/studies")["study_summaries"]
    ids = [s["study_id"] for s in studies if s["study_name"] == study.study_name]
    assert len(ids) == 1, studies
    return int(ids[0])


def _attrs(trial: dict[str, Any]) -> dict[str, str]:
    return {a["key"]: a["value"] for a in trial["user_attrs"]}


def test_api_shows_dyhpo_trials_attrs_and_artifacts(
    base_url: str, study: DashboardStudy, study_id: int
) -> None:
    detail = get_json(f"{base_url}/api/studies/{study_id}")
    trials = {t["number"]: t for t in detail["trials"]}
    assert sorted(trials) == list(range(study.n_trials))

    cont = trials[study.continuation_trial]
    attrs = _attrs(cont)
    assert attrs["dyhpo_continues_trial"] == str(study.continued_trial)
    parent = trials[study.continued_trial]
    assert attrs["dyhpo_config"] == _attrs(parent)["dyhpo_config"]
    start = int(attrs["dyhpo_start_epoch"])
    assert start > 1
    # A continuation carries its parent's values, then continues at its start epoch.
    steps = [iv["step"] for iv in cont["intermediate_values"]]
    assert steps == list(range(1, max(steps) + 1)) and max(steps) >= start
    parent_values = {iv["step"]: iv["value"] for iv in parent["intermediate_values"]}
    cont_values = {iv["step"]: iv["value"] for iv in cont["intermediate_values"]}
    assert {s: cont_values[s] for s in range(1, start)} == parent_values
    # Params are the same configuration.
    assert {p["name"]: p["param_external_value"] for p in cont["params"]} == {
        p["name"]: p["param_external_value"] for p in parent["params"]
    }

    paused = trials[study.paused_trial]
    assert paused["state"] == "Pruned"
    assert _attrs(paused)["dyhpo_status"] == "paused"
    (artifact,) = [a for a in paused["artifacts"] if a["filename"] == study.checkpoint_name]
    assert _attrs(paused)["dyhpo_checkpoint"] == artifact["artifact_id"]
    url = f"{base_url}/artifacts/{study_id}/{paused['trial_id']}/{artifact['artifact_id']}"
    with urlopen(url, timeout=10) as response:
        body = response.read()
    assert body == (study.artifact_dir / artifact["artifact_id"]).read_bytes()
    assert body.startswith(study.checkpoint_prefix)
    if study.checkpoint_prefix == b"PK\x03\x04":  # a real checkpoint: the quickstart's state
        import io

        import torch

        state = torch.load(io.BytesIO(body), map_location="cpu", weights_only=False)
        assert set(state) == {"model", "optimizer", "generator"}

    # The DyHPO plots the quickstart's DashboardUpdater saved are served with the study, and
    # so is its note.
    graphs = {g["id"]: json.loads(g["graph_object"]) for g in detail["plotly_graph_objects"]}
    assert set(graphs) >= {"plot_race", "plot_learning_curves", "plot_incumbent"}
    assert graphs["plot_race"]["layout"]["title"]["text"].startswith("DyHPO Race")
    note = detail["note"]["body"]
    assert note.startswith("## DyHPO race") and "**Shown as Pruned:**" in note
    best = json.loads({a["key"]: a["value"] for a in detail["user_attrs"]}["dyhpo:best"])
    assert best["config_id"] == int(_attrs(trials[best["trial"]])["dyhpo_config"])
    values = {iv["step"]: iv["value"] for iv in trials[best["trial"]]["intermediate_values"]}
    assert values[best["epoch"]] == best["value"]


def test_browser_shows_trials_attrs_artifacts_and_plots(
    base_url: str, study: DashboardStudy, study_id: int
) -> None:
    executable = require_browser()
    from playwright.sync_api import expect
    from playwright.sync_api import sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)  # its default is 5 s
    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)

            # Trial list: every trial is listed, with its state.
            page.goto(f"{base_url}/dashboard/studies/{study_id}/trials")
            expect(page.get_by_text(f"{study.n_trials} Trials", exact=True)).to_be_visible()
            for number in range(study.n_trials):
                expect(page.get_by_text(f"Trial {number}", exact=True).first).to_be_visible()

            # The continuation's page shows the DyHPO user attrs.
            page.get_by_text(f"Trial {study.continuation_trial}", exact=True).first.click()
            heading = re.compile(rf"^Trial {study.continuation_trial} \(trial_id=")
            expect(page.get_by_role("heading", name=heading)).to_be_visible()
            body = page.locator("body")
            expect(body).to_contain_text("dyhpo_continues_trial")
            expect(body).to_contain_text(
                re.compile(rf"dyhpo_continues_trial\s+{study.continued_trial}\b"),
                use_inner_text=True,
            )
            expect(body).to_contain_text("dyhpo_config")
            page.screenshot(path=str(OUTPUT / "dashboard-trial.png"), full_page=True)

            # A paused trial's page links its checkpoint artifact, and the link serves it.
            page.get_by_text(f"Trial {study.paused_trial}", exact=True).first.click()
            heading = re.compile(rf"^Trial {study.paused_trial} \(trial_id=")
            expect(page.get_by_role("heading", name=heading)).to_be_visible()
            expect(body).to_contain_text(
                re.compile(r"dyhpo_status\s+paused\b"), use_inner_text=True
            )
            expect(page.get_by_text(study.checkpoint_name).first).to_be_visible()
            detail = get_json(f"{base_url}/api/studies/{study_id}")
            paused = next(t for t in detail["trials"] if t["number"] == study.paused_trial)
            artifact_id = _attrs(paused)["dyhpo_checkpoint"]
            path = f"/artifacts/{study_id}/{paused['trial_id']}/{artifact_id}"
            link = page.locator(f'a[href$="{path}"]')
            expect(link.first).to_be_attached()
            href = link.first.get_attribute("href") or ""
            response = page.request.get(href if href.startswith("http") else base_url + href)
            assert response.ok
            downloaded = response.body()
            assert downloaded.startswith(study.checkpoint_prefix)
            assert downloaded == (study.artifact_dir / artifact_id).read_bytes()

            # The study's history page renders the DyHPO plots saved into the study.
            page.goto(f"{base_url}/dashboard/studies/{study_id}")
            for title in ("DyHPO Race", "DyHPO Learning Curves", "DyHPO Anytime Incumbent"):
                expect(page.get_by_text(title).first).to_be_visible()
            page.wait_for_timeout(500)  # let plotly finish drawing before the screenshot
            shot = OUTPUT / "dashboard-history.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 20_000
        finally:
            browser.close()


def _docs_image(epochs: int = 120) -> None:
    """Write docs/images/dashboard.png (the DyHPO plots) and docs/images/dashboard-note.png (the
    study note) from a real quickstart study of ``epochs`` epochs, as its DashboardUpdater left
    them (nothing is saved by hand)."""
    import subprocess
    import tempfile

    from playwright.sync_api import sync_playwright

    from tests.dashboard.dashboard_study import checkout_env

    images = REPO / "docs" / "images"
    images.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, str(REPO / "examples" / "quickstart.py"), "--output", tmp,
             "--epochs", str(epochs)],
            check=True,
            cwd=REPO,
            env=checkout_env(),
        )  # fmt: skip
        url = f"sqlite:///{tmp}/dyhpo.db"
        study = optuna.load_study(study_name="dyhpo-quickstart", storage=url)
        ds = DashboardStudy(url, Path(tmp) / "artifacts", study.study_name, 0, 0, 0, 0, "")
        base, stop = serve_dashboard(ds)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.goto(f"{base}/dashboard/studies/{study._study_id}")
                tops = []
                for title in ("DyHPO Race", "DyHPO Learning Curves", "DyHPO Anytime Incumbent"):
                    element = page.get_by_text(title).first
                    element.wait_for(timeout=TIMEOUT_MS)
                    box = element.bounding_box()
                    assert box is not None
                    tops.append(box["y"])
                page.evaluate(f"window.scrollTo(0, {min(tops) - 90})")
                page.wait_for_timeout(1000)
                page.screenshot(path=str(images / "dashboard.png"))
                page.goto(f"{base}/dashboard/studies/{study._study_id}/note")
                page.get_by_role("heading", name="DyHPO race").wait_for(timeout=TIMEOUT_MS)
                page.wait_for_timeout(500)
                page.screenshot(path=str(images / "dashboard-note.png"))
                browser.close()
        finally:
            stop()
    for name in ("dashboard.png", "dashboard-note.png"):
        print(f"wrote {images / name} ({(images / name).stat().st_size} bytes)")


if __name__ == "__main__" and "--docs-image" in sys.argv:
    _docs_image()
