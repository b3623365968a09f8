"""The plots read a study exactly as DyHPO decides from it."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from optuna_dyhpo import get_configurations
from optuna_dyhpo.visualization._utils import read_study
from tests.test_state import _trial


def test_a_crashed_continuation_reads_as_dyhpo_sees_it() -> None:
    """Its configuration is paused again at the last checkpoint; the crashed steps were spent
    (they are epochs of the race) but are not part of the curve."""
    study = optuna.create_study(direction="maximize")
    study.add_trial(_trial(0, TrialState.PRUNED, 0, 1, None, {1: 0.1, 2: 0.2}, "paused", 2))
    # Killed mid-epoch: FAIL from the heartbeat, no status written.
    study.add_trial(_trial(1, TrialState.FAIL, 0, 3, 0, {1: 0.1, 2: 0.2, 3: 0.9}, None))
    data = read_study(study)
    (config,) = data.configs
    (record,) = get_configurations(study)
    assert config.status == record.status == "paused"
    assert config.curve == {1: 0.1, 2: 0.2} and record.curve == [0.1, 0.2]
    assert [s.status for s in config.segments] == ["paused", "crashed"]
    assert [(e.trial_number, e.step) for e in data.epochs] == [(0, 1), (0, 2), (1, 3)]
