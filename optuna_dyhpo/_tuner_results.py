"""The Tuner's result log in HPO4DL's format: ``hpo4dl_results.csv`` and the incumbent."""

from __future__ import annotations

from collections.abc import Mapping
import csv
import math
from pathlib import Path
from typing import Any

from optuna_dyhpo._tuner_space import plain

RESULTS_FILE = "hpo4dl_results.csv"
#: The fields the Tuner adds to what the objective returned, in HPO4DL's order; ``trial`` (the
#: Optuna trial that trained the epoch) is optuna-dyhpo's addition.
TUNER_FIELDS = (
    "configuration_id",
    "configuration",
    "time",
    "overhead_time",
    "total_time",
    "best_metric",
    "trial",
)


def parse_result(result: Any, previous_epoch: int, epoch: int) -> dict[str, Any]:
    """Validate what the objective function returned for a call that trained to ``epoch``.

    Returns:
        The entry of ``epoch``: ``{"epoch": int, "metric": float, ...}`` with any further keys
        the objective returned (HPO4DL keeps them as extra result fields).

    Raises:
        ValueError: The result is not a dict ``{"epoch": int, "metric": float}`` or a list of
            such dicts covering ``epoch`` (and optionally earlier epochs of this call).
    """
    items = result if isinstance(result, list) else [result]
    entries: dict[int, dict[str, Any]] = {}
    for item in items:
        if not isinstance(item, Mapping) or "epoch" not in item or "metric" not in item:
            raise ValueError(
                "The objective function must return a dict {'epoch': int, 'metric': float} or "
                f"a list of such dicts, but returned {result!r}."
            )
        e = item["epoch"]
        if isinstance(e, bool) or not isinstance(plain(e), int):
            raise ValueError(f"'epoch' must be an int, but the objective returned {e!r}.")
        try:
            metric = float(item["metric"])
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"'metric' must be a number, but the objective returned {item['metric']!r}."
            ) from err
        extras = {str(k): v for k, v in item.items() if k not in ("epoch", "metric")}
        entries[int(plain(e))] = {"epoch": int(plain(e)), "metric": metric, **extras}
    if epoch not in entries or any(not previous_epoch < e <= epoch for e in entries):
        raise ValueError(
            f"The objective function was asked to train from epoch {previous_epoch} to "
            f"{epoch}; it must return the metric of epoch {epoch} (and optionally of epochs "
            f"{previous_epoch + 1}..{epoch - 1}), but returned epochs {sorted(entries)}."
        )
    return entries[epoch]


def _cell(value: Any) -> Any:
    """A CSV cell as pandas' ``to_csv`` writes it (missing values and NaN are empty)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


class ResultLog:
    """One row per epoch trained, kept in memory and in ``hpo4dl_results.csv``.

    The columns are HPO4DL's: an unnamed index, ``epoch``, ``metric`` (and any further keys
    the objective returned), ``configuration_id``, ``configuration`` (the dict of
    hyperparameter values), ``time`` (seconds in the objective function), ``overhead_time``
    (seconds of the tuner itself since the previous epoch: DyHPO's decision, the pruner, the
    storage), ``total_time`` (their sum), ``best_metric`` (the best finite metric so far), and
    ``trial`` (the Optuna trial that trained the epoch).

    Args:
        path: The CSV file (written from the first row on).
        minimize: Whether lower metrics are better.
    """

    def __init__(self, path: Path, minimize: bool) -> None:
        self.path = path
        self.minimize = minimize
        self.rows: list[dict[str, Any]] = []
        self._extras: list[str] = []
        self._best: int | None = None  # index of the first row with the best finite metric

    @property
    def columns(self) -> list[str]:
        return ["epoch", "metric", *self._extras, *TUNER_FIELDS]

    def _improves(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self._best is None:
            return True
        best = float(self.rows[self._best]["metric"])
        return value < best if self.minimize else value > best

    def add(
        self,
        entry: Mapping[str, Any],
        *,
        configuration_id: int,
        configuration: Mapping[str, Any],
        trial: int,
        seconds: float,
        overhead: float,
    ) -> dict[str, Any]:
        """Record the epoch ``entry`` (from :func:`parse_result`) and write it to the file."""
        metric = float(entry["metric"])
        if self._improves(metric):
            self._best = len(self.rows)
            best = metric
        else:
            best = math.nan if self._best is None else float(self.rows[self._best]["metric"])
        extras = {k: v for k, v in entry.items() if k not in ("epoch", "metric", *TUNER_FIELDS)}
        row: dict[str, Any] = {"epoch": int(entry["epoch"]), "metric": metric, **extras}
        row.update(
            configuration_id=configuration_id,
            configuration=dict(configuration),
            time=seconds,
            overhead_time=overhead,
            total_time=seconds + overhead,
            best_metric=best,
            trial=trial,
        )
        self.rows.append(row)
        new = [k for k in extras if k not in self._extras]
        self._extras += new
        if new or len(self.rows) == 1:
            self._write(self.rows, "w")  # a new column: rewrite the file with it
        else:
            self._write([row], "a")
        return row

    def _write(self, rows: list[dict[str, Any]], mode: str) -> None:
        columns = self.columns
        first = len(self.rows) - len(rows)
        with self.path.open(mode, newline="") as f:
            writer = csv.writer(f)
            if mode == "w":
                writer.writerow(["", *columns])
            for i, row in enumerate(rows, start=first):
                writer.writerow([i, *(_cell(row.get(c)) for c in columns)])

    def incumbent(self) -> dict[str, Any]:
        """A copy of the first row with the best finite metric, with every column.

        Raises:
            RuntimeError: No epoch reported a finite metric.
        """
        if self._best is None:
            raise RuntimeError("No configuration reported a finite metric.")
        row = self.rows[self._best]
        out = {c: row.get(c) for c in self.columns}  # None: a field this epoch did not return
        out["configuration"] = dict(row["configuration"])
        return out
