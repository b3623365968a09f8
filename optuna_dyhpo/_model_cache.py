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

import numpy as np

from optuna_dyhpo._candidates import Patterns
from optuna_dyhpo._search_space import SearchSpaceEncoder
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
    valid: dict[int, bool] = field(default_factory=dict)
    rows: TableRows = field(default_factory=lambda: TableRows())
    patterns: Patterns = field(default_factory=dict)
    patterned: set[int] = field(default_factory=set)
    fresh: tuple[Any, Sequence[dict[str, Any]] | torch.Tensor, torch.Tensor] | None = None
    # Predictions of the fresh candidates of one conditioning (the look-ahead: of its chosen
    # fresh candidate, ``fresh_winner``, only).
    fresh_pred: tuple[Any, torch.Tensor, torch.Tensor] | None = None
    fresh_winner: int = 0
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


def arrival_keys(c: Configuration, width: int) -> list[int]:
    """Arrival keys of a configuration's observations (its step's trial number, then the
    step)."""
    return [t * width + b for b, t in enumerate(owners(c), 1)]


class TableRows:
    """The rows of the curve table, kept between decisions.

    The reader hands out the same object for a configuration while it is unchanged, so a row
    is rebuilt only where the object at its position differs: a decision costs work in
    proportion to what changed, not to the history (at 10,000 observations, rebuilding the
    whole table cost more than the rest of a decision). ``version`` changes exactly when the
    table's content does.
    """

    def __init__(self) -> None:
        self._reset(0)

    def _reset(self, dim: int) -> None:
        self.configs: list[Configuration] = []
        self.row_of: dict[int, int] = {}
        self.dim = dim
        # Capacity beyond ``len(self.configs)`` rows and the longest row is zero.
        self.x = np.zeros((0, dim))
        self.values = np.zeros((0, 1))  # the user's values, zero padded
        self.keys = np.zeros((0, 1))  # their arrival keys
        self.lengths = np.zeros(0, dtype=np.int64)  # a diverged one's worst step included
        self.diverged = np.zeros(0, dtype=bool)
        self.version = 0

    def update(
        self, observed: Sequence[Configuration], encoder: SearchSpaceEncoder, max_budget: int
    ) -> None:
        """Make the rows those of ``observed``, in that order."""
        if encoder.dim != self.dim:
            self._reset(encoder.dim)
        old, n = self.configs, len(observed)
        changed = [i for i, c in enumerate(observed) if i >= len(old) or old[i] is not c]
        if n < len(old):
            self.version += 1
            for i, c in enumerate(old[n:], n):
                if self.row_of.get(c.config_id) == i:
                    del self.row_of[c.config_id]
            self.lengths[n:], self.diverged[n:] = 0, False
            self.values[n:], self.keys[n:] = 0.0, 0.0
        elif n > len(self.lengths):
            self._grow(max(n, 2 * len(self.lengths)), self.values.shape[1])
        for i in changed:
            self._set_row(i, observed[i], encoder, max_budget)
        self.configs = list(observed)

    def _grow(self, rows: int, cols: int) -> None:
        def grown(a: np.ndarray, width: int | None) -> np.ndarray:
            out = np.zeros((rows,) if width is None else (rows, width), dtype=a.dtype)
            out[tuple(slice(0, k) for k in a.shape)] = a
            return out

        self.values, self.keys = grown(self.values, cols), grown(self.keys, cols)
        self.lengths, self.diverged = grown(self.lengths, None), grown(self.diverged, None)
        self.x = grown(self.x, self.dim)

    def _set_row(
        self, i: int, c: Configuration, encoder: SearchSpaceEncoder, max_budget: int
    ) -> None:
        keys = arrival_keys(c, max_budget + 1)
        k = len(keys)
        values = c.curve + [0.0] * (k - len(c.curve))  # a diverged one's worst: see ``table``
        if k > self.values.shape[1]:
            self._grow(len(self.lengths), max(k, 2 * self.values.shape[1]))
        held = self.row_of.get(c.config_id) == i
        if held and (
            self.lengths[i] == k
            and self.diverged[i] == (c.status == "diverged")
            and self.values[i, :k].tolist() == values
            and self.keys[i, :k].tolist() == keys
        ):
            return  # a new object, the same row
        self.version += 1
        if not held:
            previous = self.configs[i].config_id if i < len(self.configs) else None
            if previous is not None and self.row_of.get(previous) == i:
                del self.row_of[previous]
            self.row_of[c.config_id] = i
            self.x[i] = encoder.encode(c.params)
        self.values[i], self.keys[i] = 0.0, 0.0
        self.values[i, :k], self.keys[i, :k] = values, keys
        self.lengths[i], self.diverged[i] = k, c.status == "diverged"

    def table(self, sign: float, max_budget: int) -> CurveTable:
        """The curve table of the rows (see :func:`curve_table`)."""
        import torch

        from optuna_dyhpo._gp import CurveTable

        n = len(self.configs)
        lengths, diverged = self.lengths[:n], self.diverged[:n]
        width = max(int(lengths.max(initial=1)), 1)
        values = self.values[:n, :width].copy()
        if diverged.any():
            finite = np.arange(width)[None, :] < (lengths - diverged)[:, None]
            worst = float(np.min(sign * values[finite], initial=np.inf))
            worst = 0.0 if worst == np.inf else worst
            values[diverged, lengths[diverged] - 1] = sign * worst
        return CurveTable.from_padded(
            torch.from_numpy(self.x[:n].copy()),
            torch.from_numpy(values),
            torch.from_numpy(self.keys[:n, :width].copy()),
            torch.from_numpy(lengths.copy()),
            sign,
            max_budget,
        )


def curve_table(
    observed: Sequence[Configuration],
    encoder: SearchSpaceEncoder,
    sign: float,
    max_budget: int,
    cache: ModelCache,
) -> CurveTable:
    """The surrogate's view of the ``observed`` configurations (their parameters encoded by
    ``encoder``): their curves in arrival order. A diverged configuration informs the model
    too: its non-finite step counts as the worst value observed (else the model never learns
    where training diverges, and keeps proposing configurations there). The rows are kept in
    ``cache`` between calls."""
    cache.rows.update(observed, encoder, max_budget)
    return cache.rows.table(sign, max_budget)
