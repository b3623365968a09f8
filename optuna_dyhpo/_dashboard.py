"""Keep a running DyHPO study's optuna-dashboard page up to date: the three DyHPO plots, a
study note (the race in numbers and the best configuration) and the ``"dyhpo:best"`` study
user attribute."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_dyhpo._budget import trial_epochs
from optuna_dyhpo._dashboard_format import save_figure
from optuna_dyhpo._dashboard_format import save_note
from optuna_dyhpo._dashboard_note import render_note
from optuna_dyhpo._incumbent import _READER
from optuna_dyhpo._incumbent import BEST_KEY
from optuna_dyhpo._incumbent import _max_budget
from optuna_dyhpo._incumbent import find_best
from optuna_dyhpo._logging import get_logger
from optuna_dyhpo._state import build_configurations
from optuna_dyhpo._validation import check_int
from optuna_dyhpo._warnings import warn_once

_logger = get_logger("dashboard")


class DashboardUpdater:
    """``study.optimize`` callback that keeps the study's optuna-dashboard page up to date.

    Every update

    * saves the three plots of :mod:`optuna_dyhpo.visualization` into the study with ids
      ``plot_race``, ``plot_learning_curves`` and ``plot_incumbent`` (as
      ``optuna_dashboard.save_plotly_graph_object`` does; the dashboard shows them on the
      study's page, and ``examples/visualize.py`` saves them under the same ids);
    * replaces the study's note (as ``optuna_dashboard.save_note`` does): epochs spent out of
      ``n_epochs``, configurations by status, trials and resumes, how many of the trials the
      dashboard lists as *Pruned* are **paused** (resumable) rather than stopped, the best
      configuration, the top configurations and the paused trials;
    * writes the study user attribute ``"dyhpo:best"``
      (:func:`optuna_dyhpo.best_configuration` as a dict).

    A note edited in the dashboard is overwritten by the next update. optuna-dashboard itself
    is not imported (it takes seconds to import); plotly is, for the plots.

    Updates are throttled: one happens after a trial ends only if ``every_n_epochs`` epochs
    were spent since the last one, ``min_interval_seconds`` have passed, and the time spent in
    this callback so far plus the last update's cost is at most ``max_overhead`` of the time
    since the callback was created. The first call always updates, and so does a call after
    ``study.stop()`` (put this callback after :class:`~optuna_dyhpo.StopAfterEpochs`), so the
    page ends with the final state; :meth:`update` updates at once. An error while updating is
    logged once as a :class:`~optuna_dyhpo.DyHPOWarning` and never stops the study.

    Example:

        .. testcode::

            import optuna
            from optuna_dyhpo import DashboardUpdater, DyHPOPruner, DyHPOSampler
            from optuna_dyhpo import StopAfterEpochs, TrialResume

            def objective(trial):
                x = trial.suggest_float("x", 0.0, 1.0)
                value = 0.0
                for epoch in TrialResume(trial).steps():
                    value = x * (1.0 - 0.5**epoch)
                    trial.report(value, epoch)
                    if trial.should_prune():
                        raise optuna.TrialPruned()
                return value

            study = optuna.create_study(
                direction="maximize",
                storage="sqlite:///dyhpo.db",  # meanwhile: optuna-dashboard sqlite:///dyhpo.db
                sampler=DyHPOSampler(max_budget=5, seed=0),
                pruner=DyHPOPruner(),
            )
            updater = DashboardUpdater(n_epochs=12)
            study.optimize(objective, callbacks=[StopAfterEpochs(12), updater])
            print(updater.n_updates, study.user_attrs["dyhpo:best"]["value"])

    Args:
        every_n_epochs: Epochs to spend between updates (an integer >= 1).
        min_interval_seconds: Seconds between updates (a number >= 0).
        max_overhead: Largest fraction of the wall time since creation to spend in this
            callback (a number in ``(0, 1]``).
        n_epochs: The study's epoch budget, shown in the note (``None``: not shown).
        target_name: Name of the reported metric, for the plots and the note.
        plots: Whether to save the plots (``False``: the note and the attribute only).

    Attributes:
        seconds: Time spent in this callback so far (throttled calls included).
        n_updates: Number of updates made.

    Raises:
        ValueError: An argument is out of range or of the wrong type.
        ImportError: ``plots`` is True and plotly is not installed.
    """

    def __init__(
        self,
        *,
        every_n_epochs: int = 10,
        min_interval_seconds: float = 10.0,
        max_overhead: float = 0.01,
        n_epochs: int | None = None,
        target_name: str = "Objective Value",
        plots: bool = True,
    ) -> None:
        self.every_n_epochs = check_int("every_n_epochs", every_n_epochs, 1)
        self.min_interval_seconds = _check_number(
            "min_interval_seconds", min_interval_seconds, 0.0, math.inf, "a number >= 0"
        )
        self.max_overhead = _check_number(
            "max_overhead", max_overhead, 0.0, 1.0, "a number in (0, 1]", open_low=True
        )
        if n_epochs is not None:
            check_int("n_epochs", n_epochs, 1, " or None")
        self.n_epochs = n_epochs
        if not isinstance(target_name, str):
            raise ValueError(f"`target_name` must be a str, but got {target_name!r}.")
        self.target_name = target_name
        if not isinstance(plots, bool):
            raise ValueError(f"`plots` must be True or False, but got {plots!r}.")
        self.plots = plots
        if plots:
            _warm_up_plotly()  # an ImportError now rather than during the run
        self.seconds = 0.0
        self.n_updates = 0
        self._created = time.perf_counter()
        self._last_time: float | None = None
        self._last_cost = 0.0
        self._last_epochs: int | None = None
        self._warned = False
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if not self._lock.acquire(blocking=False):
            return  # another thread (n_jobs > 1) is updating
        started = time.perf_counter()
        try:
            self._maybe_update(study, started)
        except Exception as err:  # the dashboard must never stop the study
            if not self._warned:
                self._warned = True
                warn_once(_logger, f"DashboardUpdater could not update the study: {err!r}.")
        finally:
            self.seconds += time.perf_counter() - started
            self._lock.release()

    def _maybe_update(self, study: optuna.Study, now: float) -> None:
        stopping = bool(getattr(study, "_stop_flag", False))
        if self._last_time is not None and not stopping:
            if now - self._last_time < self.min_interval_seconds:
                return
            if self.seconds + self._last_cost > self.max_overhead * (now - self._created):
                return
        trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
        spent = _epochs(trials)
        if self._last_epochs is not None and not stopping:
            if spent - self._last_epochs < self.every_n_epochs:
                return
        self._update(study, trials)

    def update(self, study: optuna.Study) -> None:
        """Update the plots, the note and ``"dyhpo:best"`` now, without throttling.

        Args:
            study: The study to update.
        """
        with self._lock:
            started = time.perf_counter()
            try:
                self._update(study, study._storage.get_all_trials(study._study_id, deepcopy=False))
            finally:
                self.seconds += time.perf_counter() - started

    def _update(self, study: optuna.Study, trials: list[FrozenTrial]) -> None:
        started = self._last_time = time.perf_counter()
        self._last_epochs = _epochs(trials)
        best = find_best(study, trials)
        if best is not None:
            record = best.to_dict()
            if study._storage.get_study_user_attrs(study._study_id).get(BEST_KEY) != record:
                study._storage.set_study_user_attr(study._study_id, BEST_KEY, record)
        segments = _READER.segments(study, foreign=True, trials=trials)
        configs = build_configurations(segments, _max_budget(study))
        existing = study._storage.get_study_system_attrs(study._study_id)
        save_note(
            study,
            render_note(
                segments,
                configs,
                best,
                self._last_epochs,
                self.n_epochs,
                study.direction == StudyDirection.MAXIMIZE,
                self.target_name,
            ),
            existing,
        )
        if self.plots and self._last_epochs > 0:
            self._save_plots(study, existing)
        self.n_updates += 1
        self._last_cost = time.perf_counter() - started

    def _save_plots(self, study: optuna.Study, existing: dict[str, Any]) -> None:
        from optuna_dyhpo.visualization import plot_incumbent
        from optuna_dyhpo.visualization import plot_learning_curves
        from optuna_dyhpo.visualization import plot_race

        for plot in (plot_race, plot_learning_curves, plot_incumbent):
            fig = plot(study, target_name=self.target_name)
            save_figure(study, plot.__name__, fig.to_json(), existing)


def _warm_up_plotly() -> None:
    """Import plotly and build one small figure with the parts the DyHPO plots use.

    plotly loads its validators on the first figure (about 0.3 s on a busy 2-core machine);
    doing it here keeps that one-time cost out of the first update during the run.
    """
    from optuna_dyhpo.visualization._utils import import_plotly_go

    go = import_plotly_go()
    go.Figure(
        data=[
            go.Scatter(
                x=[1],
                y=[1],
                mode="lines+markers",
                text=["."],
                line={"color": "grey", "shape": "hv", "width": 1},
                marker={"color": [1.0], "coloraxis": "coloraxis", "symbol": "circle", "size": 4},
                hovertemplate="%{text}<extra></extra>",
            )
        ],
        layout=go.Layout(
            title="DyHPO",
            xaxis={"title": "x", "range": [0, 1]},
            yaxis={"title": "y", "tickvals": [1], "ticktext": ["1"]},
            legend={"orientation": "h"},
            coloraxis={"colorscale": "Blues", "colorbar": {"title": {"text": "v"}}},
            annotations=[{"text": ".", "xref": "paper", "yref": "paper", "x": 0, "y": 1}],
            shapes=[{"type": "line", "x0": 0, "x1": 1, "y0": 0, "y1": 1}],
        ),
    ).to_json()


def _epochs(trials: list[FrozenTrial]) -> int:
    return sum(trial_epochs(t) for t in trials if t.state != TrialState.WAITING)


def _check_number(
    name: str, value: object, low: float, high: float, allowed: str, open_low: bool = False
) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = (low < v if open_low else low <= v) and v <= high and not math.isnan(v)
    if not ok:
        raise ValueError(f"`{name}` must be {allowed}, but got {value!r}.")
    return float(value)  # type: ignore[arg-type]
