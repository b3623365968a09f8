"""Reading a DyHPO study for the plots, through storage data only.

The plots need the study's *configurations* (a configuration is trained by one or more trials:
its root trial, then a continuation trial each time it is resumed) and the global sequence of
epochs the study spent. Both are rebuilt here from
``study._storage.get_all_trials(study._study_id, deepcopy=False)`` and the attributes described
in ``docs/contract.md``:

* ``"dyhpo:segment"`` (system attr) ``{"config", "start", "parent"}``, or, when a trial has no
  system attrs, the user attrs ``dyhpo_config``, ``dyhpo_start_epoch`` and
  ``dyhpo_continues_trial``. A trial with neither is treated as a configuration of its own whose
  every reported step is an epoch it spent, so the plots also work for studies run by other
  samplers and pruners (as ``optuna_dyhpo.epochs_spent`` counts them).
* A continuation trial carries its parent's intermediate values (steps ``< start``); only steps
  ``>= start`` are epochs it spent.
* ``dyhpo_status`` (user attr) or ``"dyhpo:paused_at"`` (system attr) tell a paused segment.

Epoch order: segments in trial-number order, each segment's new steps in ascending order. This is
the exact order for a sequential ``study.optimize``; with parallel workers the epochs of trials
that ran at the same time are ordered by trial number, not by wall-clock time.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
import math
from typing import TYPE_CHECKING
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from optuna_dyhpo._state import Configuration
from optuna_dyhpo._state import build_configurations
from optuna_dyhpo._study_io import StudyReader

if TYPE_CHECKING:
    from types import ModuleType

_PLOTLY_MISSING = (
    "optuna_dyhpo.visualization needs plotly. Install it with `pip install plotly` "
    '(or `pip install "optuna-dyhpo[dashboard]"`).'
)


def import_plotly_go() -> ModuleType:
    """Import ``plotly.graph_objects`` on demand, with an actionable error message."""
    try:
        import plotly.graph_objects as go
    except ImportError as e:
        raise ImportError(_PLOTLY_MISSING) from e
    return go


def sample_colors(
    values: list[float],
    vmin: float,
    vmax: float,
    reverse: bool,
    colorscale: list[list[float | str]] | None = None,
) -> list[str]:
    """Colours of ``values`` on ``colorscale`` (default :data:`COLORSCALE`; ``reverse`` flips it).

    Example:
        >>> sample_colors([0.0, 1.0], 0.0, 1.0, reverse=False)
        ['rgb(198, 219, 239)', 'rgb(8, 48, 107)']
    """
    from plotly.colors import sample_colorscale

    span = vmax - vmin
    pos = [0.5 if span <= 0 else (v - vmin) / span for v in values]
    if reverse:
        pos = [1.0 - p for p in pos]
    return [str(c) for c in sample_colorscale(colorscale or COLORSCALE, pos)]


# Optuna's ``Blues`` with its near-white end cut off, so that every line stays visible on a white
# background. Darker = better (the plots reverse it for minimisation).
COLORSCALE: list[list[float | str]] = [
    [0.0, "rgb(198,219,239)"],
    [0.25, "rgb(158,202,225)"],
    [0.5, "rgb(107,174,214)"],
    [0.75, "rgb(33,113,181)"],
    [1.0, "rgb(8,48,107)"],
]
# The darker 70% of :data:`COLORSCALE`, for the few highlighted configurations: the worst of them
# stays visible next to the faded grey of the others.
HIGHLIGHT_COLORSCALE: list[list[float | str]] = [
    [0.0, "rgb(148,196,223)"],
    [0.2857, "rgb(107,174,214)"],
    [0.6429, "rgb(33,113,181)"],
    [1.0, "rgb(8,48,107)"],
]


@dataclass(frozen=True)
class Epoch:
    """One epoch the study spent.

    Attributes:
        index: 1-based position in the study's global sequence of epochs.
        config_id: The configuration that received the epoch.
        trial_number: The trial (segment) that ran it.
        step: The configuration's own epoch number (the ``step`` of ``trial.report``).
        value: The reported value (may be NaN or infinite for a diverged run).
    """

    index: int
    config_id: int
    trial_number: int
    step: int
    value: float


@dataclass
class Segment:
    """One trial of a configuration.

    Attributes:
        trial: The frozen trial (not a copy: do not modify).
        config_id: The configuration it trains.
        start: First step this trial ran itself; earlier steps are copied from its parent.
        parent: Number of the trial it continues, or None for a configuration's root.
        status: ``running``, ``paused``, ``completed``, ``finished_early``, ``failed``,
            ``stopped``, ``diverged`` or ``waiting``.
        new_steps: The steps the trial ran itself (``>= start``), ascending.
    """

    trial: FrozenTrial
    config_id: int
    start: int
    parent: int | None
    status: str
    new_steps: list[int]

    @property
    def paused(self) -> bool:
        return self.status == "paused"


@dataclass
class ConfigInfo:
    """A configuration with its whole curve joined across its trials.

    Attributes:
        config_id: Number of its root trial.
        params: Its parameters.
        segments: Its trials in trial-number order.
        curve: Step -> value, the union of its trials' intermediate values (a later trial wins).
        status: Status of its latest trial.
    """

    config_id: int
    params: dict[str, Any]
    segments: list[Segment] = field(default_factory=list)
    curve: dict[int, float] = field(default_factory=dict)
    status: str = "waiting"

    def best_value(self, direction: StudyDirection) -> float | None:
        """Best finite value of the curve, or None if it has none."""
        finite = [v for v in self.curve.values() if math.isfinite(v)]
        if not finite:
            return None
        return max(finite) if direction == StudyDirection.MAXIMIZE else min(finite)


@dataclass
class StudyData:
    """Everything the plots read from a study.

    Attributes:
        direction: The study's direction.
        configs: Configurations by ascending id.
        epochs: The global sequence of epochs spent.
    """

    direction: StudyDirection
    configs: list[ConfigInfo]
    epochs: list[Epoch]

    def config(self, config_id: int) -> ConfigInfo:
        for c in self.configs:
            if c.config_id == config_id:
                return c
        raise KeyError(config_id)


def check_study(study: optuna.Study) -> None:
    """Raise ``ValueError`` for a study the plots do not support (multi-objective)."""
    if len(study.directions) > 1:
        raise ValueError(
            "optuna_dyhpo.visualization supports single-objective studies only; this study has "
            f"{len(study.directions)} objectives."
        )


def read_study(study: optuna.Study) -> StudyData:
    """Rebuild configurations and the epoch sequence from the study's storage.

    Segments, statuses and curves come from ``optuna_dyhpo._state``, the module the sampler
    decides with, so the plots show exactly what DyHPO sees (a crashed continuation's steps,
    for instance, are epochs spent but not part of the configuration's curve).
    """
    check_study(study)
    from optuna_dyhpo._sampler import DyHPOSampler

    sampler = study.sampler
    max_budget = sampler.max_budget if isinstance(sampler, DyHPOSampler) else None
    trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
    by_number = {t.number: t for t in trials}
    segments = sorted(
        StudyReader().segments(study, foreign=True, trials=trials), key=lambda s: s.number
    )
    records = build_configurations(segments, max_budget)
    configs: dict[int, ConfigInfo] = {}
    epochs: list[Epoch] = []
    for s in segments:
        info = configs.get(s.config)
        if info is None:
            record = records[s.config]
            info = configs[s.config] = ConfigInfo(
                config_id=s.config,
                params=dict(record.params),
                curve=_curve_of(record, s.dyhpo),
                status=record.status,
            )
        info.segments.append(
            Segment(
                trial=by_number[s.number],
                config_id=s.config,
                start=s.start,
                parent=s.parent,
                status=s.status,
                new_steps=s.new_steps,
            )
        )
        for step in s.new_steps:
            epochs.append(Epoch(len(epochs) + 1, s.config, s.number, step, float(s.values[step])))
    return StudyData(
        direction=study.directions[0],
        configs=[configs[k] for k in sorted(configs)],
        epochs=epochs,
    )


def _curve_of(record: Configuration, dyhpo: bool) -> dict[int, float]:
    first = 1 if dyhpo else 0
    curve = {first + i: v for i, v in enumerate(record.curve)}
    return curve


# The configurations outside the top k: thin, light and without legend entries.
FADED_LINE = "rgba(150,150,150,0.35)"
FADED_MARKER = "rgba(130,130,130,0.35)"


def empty_warning(name: str) -> None:
    optuna.logging.get_logger("optuna_dyhpo").warning(
        f"{name}: the study has no reported epochs; returning an empty figure."
    )
