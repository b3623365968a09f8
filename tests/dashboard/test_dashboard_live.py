"""A running DyHPO study's optuna-dashboard page follows the race without manual steps.

A DyHPO study in SQLite runs with :class:`optuna_dyhpo.DashboardUpdater`; optuna-dashboard
serves it in a background thread and headless Chromium (Debian's, never downloaded) opens its
pages. More trials then run in another thread while the page is reloaded until the note shows
them: the note's counts, the three DyHPO plots and the ``dyhpo:best`` study user attribute are
those of the study at that moment. Screenshots go to ``test-output/`` (gitignored).
"""

from __future__ import annotations

from pathlib import Path
import re
import threading
import time

import optuna
import optuna_dashboard
import pytest

from optuna_dyhpo import DashboardUpdater
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import best_configuration
from optuna_dyhpo import epochs_spent
from tests.dashboard.dashboard_study import DashboardStudy
from tests.dashboard.test_dashboard_browser import CHROMIUM_ARGS
from tests.dashboard.test_dashboard_browser import OUTPUT
from tests.dashboard.test_dashboard_browser import TIMEOUT_MS
from tests.dashboard.test_dashboard_browser import require_browser
from tests.dashboard.test_dashboard_browser import serve_dashboard
from tests.synthetic import make_objective
from tests.synthetic import make_study

PLOT_TITLES = ("DyHPO Race", "DyHPO Learning Curves", "DyHPO Anytime Incumbent")
FIRST, SECOND = 10, 24  # epoch budgets of the two runs


def _counts(text: str) -> tuple[int, int, int]:
    """(epochs spent, configurations, trials) as the note on the page says them."""
    epochs = re.search(r"Epochs spent:\s*(\d+)", text)
    configs = re.search(r"Configurations:\s*(\d+)", text)
    trials = re.search(r"Trials:\s*(\d+)", text)
    assert epochs and configs and trials, text[:2000]
    return int(epochs.group(1)), int(configs.group(1)), int(trials.group(1))


def test_running_study_page_shows_updated_note_and_plots(tmp_path: Path) -> None:
    executable = require_browser()
    from playwright.sync_api import expect
    from playwright.sync_api import sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)  # its default is 5 s
    url = f"sqlite:///{tmp_path / 'dyhpo.db'}"
    study = make_study(6, tmp_path=tmp_path, storage=url)
    objective = make_objective(checkpoint=True)
    updater = DashboardUpdater(every_n_epochs=1, min_interval_seconds=0.0, max_overhead=1.0)
    study.optimize(objective, callbacks=[StopAfterEpochs(FIRST), updater])
    before = (epochs_spent(study), len({t.user_attrs["dyhpo_config"] for t in study.trials}))
    n_trials_before = len(study.trials)

    served = DashboardStudy(url, tmp_path / "artifacts", study.study_name, 0, 0, 0, 0, "")
    base, stop = serve_dashboard(served)
    OUTPUT.mkdir(exist_ok=True)
    errors: list[BaseException] = []

    def run_more() -> None:
        try:
            study.optimize(objective, callbacks=[StopAfterEpochs(SECOND), updater])
        except BaseException as err:  # reported by the test below
            errors.append(err)

    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(TIMEOUT_MS)
                note_url = f"{base}/dashboard/studies/{study._study_id}/note"
                page.goto(note_url)
                heading = page.get_by_role("heading", name="DyHPO race")
                expect(heading).to_be_visible()
                body = page.locator("body")
                shown = _counts(body.inner_text())
                assert shown == (before[0], before[1], n_trials_before)
                expect(body).to_contain_text(f"{best_configuration(study).value:.6g}")

                page.goto(f"{base}/dashboard/studies/{study._study_id}")
                for title in PLOT_TITLES:
                    expect(page.get_by_text(title).first).to_be_visible()
                expect(page.get_by_text("dyhpo:best").first).to_be_visible()

                # The study goes on in another thread; the page follows it on reload.
                worker = threading.Thread(target=run_more, name="dyhpo-optimize")
                worker.start()
                deadline = time.monotonic() + 240
                latest = shown
                while time.monotonic() < deadline:
                    page.goto(note_url)
                    expect(heading).to_be_visible()
                    latest = _counts(body.inner_text())
                    if latest[0] >= SECOND and not worker.is_alive():
                        break
                    page.wait_for_timeout(500)
                worker.join(timeout=60)
                assert not errors, errors
                assert not worker.is_alive()
                page.goto(note_url)
                expect(heading).to_be_visible()
                latest = _counts(body.inner_text())
                configs = len({t.user_attrs["dyhpo_config"] for t in study.trials})
                assert latest == (epochs_spent(study), configs, len(study.trials))
                assert latest[0] >= SECOND > shown[0] and latest[2] > shown[2]
                page.screenshot(path=str(OUTPUT / "dashboard-live-note.png"), full_page=True)

                page.goto(f"{base}/dashboard/studies/{study._study_id}")
                for title in PLOT_TITLES:
                    expect(page.get_by_text(title).first).to_be_visible()
                best = best_configuration(study)
                expect(page.get_by_text(f'"value": {best.value!r}').first).to_be_visible()
                page.wait_for_timeout(500)  # let plotly finish drawing
                page.screenshot(path=str(OUTPUT / "dashboard-live-history.png"), full_page=True)
            finally:
                browser.close()
    finally:
        stop()
    # What the page showed is what is stored.
    assert optuna_dashboard.get_note(study).count("DyHPO race") == 1
    assert study.user_attrs["dyhpo:best"] == best_configuration(study).to_dict()


@pytest.fixture(autouse=True)
def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
