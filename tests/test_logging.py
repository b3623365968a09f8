"""Quiet logs: one INFO line per trial, a periodic summary, the per-epoch lines at DEBUG."""

from __future__ import annotations

from collections.abc import Iterator
import logging
from pathlib import Path
import re

import optuna
import pytest

from optuna_dyhpo import DyHPOPruner
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import epochs_spent
from optuna_dyhpo._logging import replace_pruned_line
from tests.logs import LogRecords
from tests.logs import optuna_records
from tests.synthetic import make_objective
from tests.synthetic import make_study


@pytest.fixture
def records() -> Iterator[LogRecords]:
    """Every record of Optuna's loggers (optuna.dyhpo included), at Optuna's INFO verbosity."""
    with optuna_records() as handler:
        yield handler


def _count(lines: list[str], pattern: str) -> int:
    return sum(bool(re.search(pattern, line)) for line in lines)


def test_one_info_line_per_trial_plus_summaries(tmp_path: Path, records: LogRecords) -> None:
    study = make_study(5, tmp_path=tmp_path, n_candidates=32)
    study.pruner = DyHPOPruner(summary_every=10)
    optuna.logging.set_verbosity(optuna.logging.DEBUG)  # INFO lines are counted by level
    n_epochs = 45
    study.optimize(make_objective(checkpoint=True), callbacks=[StopAfterEpochs(n_epochs)])
    assert epochs_spent(study) == n_epochs
    info = [line for line in records.lines(logging.INFO) if "A new study created" not in line]
    trials = study.trials
    paused = [t for t in trials if t.user_attrs.get("dyhpo_status") == "paused"]
    completed = [t for t in trials if t.user_attrs.get("dyhpo_status") == "completed"]
    assert len(paused) + len(completed) == len(trials)
    # One line per trial: DyHPO's line for a paused trial (Optuna's "pruned" line dropped),
    # Optuna's own line for a completed one.
    assert _count(
        info, r"^Trial \d+ .*trained epochs? [\d-]+ of configuration \d+ and is paused"
    ) == (len(paused))
    assert _count(info, r"^Trial \d+ pruned\.") == 0
    assert _count(info, r"^Trial \d+ finished with value") == len(completed)
    summaries = _count(info, r"^\d+ epochs spent: \d+ configurations \(")
    assert summaries == n_epochs // 10
    assert _count(info, r"^Spent 45 of 45 epochs: stopping the study") == 1
    assert len(info) == len(trials) + summaries + 1
    # The per-epoch decisions and the start lines are DEBUG.
    debug = records.lines(logging.DEBUG)
    own_epochs_before_max = sum(
        1
        for t in trials
        for step in t.intermediate_values
        if step >= t.user_attrs["dyhpo_start_epoch"] and step < 5
    )
    continues = _count(debug, r"^Configuration \d+ \(trial \d+\) continues to step \d+")
    # Each epoch before max_budget is either continued or paused (the budget's last pause
    # included).
    assert continues + len(paused) == own_epochs_before_max
    starts = _count(debug, r"^Trial \d+ (starts a new configuration|resumes configuration)")
    assert starts == len(trials)


def test_the_pause_line_says_why_the_trial_started_and_who_wins_the_epoch(
    tmp_path: Path, records: LogRecords
) -> None:
    study = make_study(5, tmp_path=tmp_path, n_candidates=32)
    study.optimize(make_objective(checkpoint=True), callbacks=[StopAfterEpochs(20)])
    pauses = [line for line in records.lines(logging.INFO) if re.match(r"^Trial \d+ \(", line)]
    assert pauses
    for line in pauses:
        assert re.match(
            r"^Trial \d+ \((new|resumed at epoch \d+); .*log EI .*\) trained epochs? [\d-]+ of "
            r"configuration \d+ and is paused( in favour of (a new configuration|"
            r"configuration \d+ \(epoch \d+\)) \(.*log EI .*\)|: the budget of 20 epochs is "
            r"spent)\.$",
            line,
        ), line


def test_the_summary_names_statuses_and_the_best_value(
    tmp_path: Path, records: LogRecords
) -> None:
    study = make_study(4, tmp_path=tmp_path, n_startup_configs=30, direction="minimize")
    study.pruner = DyHPOPruner(summary_every=5)
    study.optimize(make_objective(), callbacks=[StopAfterEpochs(12)])
    summaries = [
        line for line in records.lines(logging.INFO) if re.match(r"^\d+ epochs spent", line)
    ]
    assert [int(line.split()[0]) for line in summaries] == [5, 10]
    best = min(v for t in study.trials for v in t.intermediate_values.values())
    for line in summaries:
        match = re.match(
            r"^\d+ epochs spent: (\d+) configurations \((.*)\); best value (\S+) "
            r"\(configuration \d+, epoch \d+\)\.$",
            line,
        )
        assert match is not None, line
        statuses = dict(
            (name, int(n)) for n, name in (part.split() for part in match.group(2).split(", "))
        )
        assert sum(statuses.values()) == int(match.group(1))
        assert set(statuses) <= {"paused", "running", "completed", "stopped"}
    # The last summary's best is at most the final best (minimising), to 6 digits.
    assert float(re.search(r"best value (\S+) ", summaries[-1]).group(1)) >= best - 1e-6  # type: ignore[union-attr]


def test_other_pruners_keep_optunas_pruned_line(records: LogRecords) -> None:
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.5))

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        trial.report(x, 1)
        if trial.should_prune():
            raise optuna.TrialPruned()
        return x

    study.optimize(objective, n_trials=20)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert _count(records.lines(logging.INFO), r"^Trial \d+ pruned\.") == len(pruned)


def test_a_mark_without_optunas_line_hides_no_later_line(records: LogRecords) -> None:
    # DyHPO marks the line of each trial it pauses; in an ask-and-tell loop Optuna prints
    # none, and the marks must not hide the lines of a later study's trials with those numbers.
    for number in range(20):
        replace_pruned_line(number)
    test_other_pruners_keep_optunas_pruned_line(records)
    assert _count(records.lines(logging.INFO), r"^Trial \d+ pruned\.") > 0


def test_summary_every_is_validated() -> None:
    with pytest.raises(ValueError, match="`summary_every` must be an integer >= 1, but got 0"):
        DyHPOPruner(summary_every=0)
