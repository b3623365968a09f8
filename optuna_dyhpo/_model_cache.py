"""The engine's per-study model cache, and what it keeps per configuration between decisions.

Nothing here decides: it only saves work, keyed so that the same study state always gives the
same result (see ``_engine``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any

from optuna_dyhpo._candidates import Patterns
from optuna_dyhpo._state import Configuration

if TYPE_CHECKING:
    import torch

    from optuna_dyhpo._gp import CurveTable
    from optuna_dyhpo._gp import Surrogate
    from optuna_dyhpo._gp import SurrogateInputs
    from optuna_dyhpo._gp._fit_server import FitJob


@dataclass(frozen=True)
class PendingFit:
    """A fit running in the background helper, used from the first decision with
    ``ready_at`` observations."""

    job: FitJob
    ready_at: int


@dataclass
class ModelCache:
    """The surrogate of one (storage, study, encoding) and what was computed with it."""

    surrogate: Surrogate | None = None
    fit_obs: int = 0
    scratch_next: bool = False
    last_scratch_obs: int = -1
    fits: int = 0
    conditioned: Any = None
    x_by_config: dict[int, list[float]] = field(default_factory=dict)
    valid: dict[int, bool] = field(default_factory=dict)
    recency: dict[int, tuple[Configuration, Any, list[int]]] = field(default_factory=dict)
    patterns: Patterns = field(default_factory=dict)
    patterned: set[int] = field(default_factory=set)
    fresh: tuple[Any, Sequence[dict[str, Any]] | torch.Tensor, torch.Tensor] | None = None
    fresh_pred: tuple[Any, torch.Tensor, torch.Tensor] | None = None
    encoder_key: Any = None
    pending: PendingFit | None = None
    # The newest out-of-sample standardised errors of the surrogate and the factor its
    # predictive spread is widened by (``_gp._calibration``).
    errors: torch.Tensor | None = None
    spread: float = 1.0


def owners(c: Configuration) -> list[int]:
    """The trial that trained each step the model sees (the configuration id where unknown;
    a diverged configuration's last trial for its non-finite step)."""
    owners = c.step_trials if len(c.step_trials) == c.last_step else [c.config_id] * c.last_step
    if c.status == "diverged":
        owners = [*owners, c.trial_numbers[-1] if c.trial_numbers else c.config_id]
    return owners


def fit_rows(
    surrogate: Surrogate, table: CurveTable, lookahead: bool
) -> tuple[SurrogateInputs, torch.Tensor]:
    """The training rows the surrogate's next fit optimises on (built alone: at 10,000
    observations building all rows would cost more than the fit)."""
    return table.training_rows(lookahead, surrogate.fit_rows(table.n_training_rows(lookahead)))


def arrival_keys(c: Configuration, width: int, cache: ModelCache) -> list[int]:
    """Arrival keys of a configuration's observations (its step's trial number, then the
    step), kept while the configuration does not change."""
    held = cache.recency.get(c.config_id)
    if held is not None and held[0] is c and len(held[2]) == len(c.curve):
        return held[2]  # the reader hands out the same object while it is unchanged
    key = (c.last_step, c.step_trials[-1:], c.status, c.trial_numbers[-1:], len(c.trial_numbers))
    if held is None or held[1] != key:
        held = (c, key, [t * width + b for b, t in enumerate(owners(c), 1)])
    else:
        held = (c, key, held[2])
    cache.recency[c.config_id] = held
    return held[2]


def curve_table(
    observed: Sequence[Configuration],
    x: torch.Tensor,
    sign: float,
    max_budget: int,
    cache: ModelCache,
) -> CurveTable:
    """The surrogate's view of the ``observed`` configurations (encoded as ``x``): their
    curves in arrival order. A diverged configuration informs the model too: its non-finite
    step counts as the worst value observed (else the model never learns where training
    diverges, and keeps proposing configurations there)."""
    from optuna_dyhpo._gp import CurveTable

    recency = [arrival_keys(c, max_budget + 1, cache) for c in observed]
    curves = [c.curve for c in observed]
    diverged = [i for i, c in enumerate(observed) if c.status == "diverged"]
    if diverged:
        worst = min((sign * v for c in observed for v in c.curve), default=0.0)
        for i in diverged:
            curves[i] = curves[i] + [sign * worst]
    return CurveTable.build(x, curves, recency, sign, max_budget)
