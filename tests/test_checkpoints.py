"""The checkpoint life cycle: one live checkpoint per configuration, the final one kept, cleanup.

Every test runs on a local FileSystemArtifactStore and on an S3 bucket (Optuna's
Boto3ArtifactStore against a moto server started by the test).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import logging
import math
from pathlib import Path
from typing import Any
from unittest import mock
import uuid
import warnings

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState
import pytest

from optuna_dyhpo import CheckpointError
from optuna_dyhpo import DyHPOWarning
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import TrialResume
from optuna_dyhpo import _checkpoints
from optuna_dyhpo import get_configurations
from optuna_dyhpo import load_checkpoint
from optuna_dyhpo import remove_all_checkpoints
from optuna_dyhpo import remove_checkpoints
from optuna_dyhpo._checkpoints import live_checkpoints
from optuna_dyhpo._checkpoints import study_checkpoints
from optuna_dyhpo._checkpoints import superseded
from optuna_dyhpo._checkpoints import superseded_since
from optuna_dyhpo._decision import Decision
from optuna_dyhpo._state import CHECKPOINT_KEY
from optuna_dyhpo._state import acquire_claim
from optuna_dyhpo._state import claim_name
from optuna_dyhpo._state import release_claim
from tests.synthetic import curve_value
from tests.synthetic import make_study

MAX_BUDGET = 6


class Store:
    """An artifact store and a way to list what it holds."""

    def __init__(self, store: Any, list_ids: Callable[[], set[str]]) -> None:
        self.store = store
        self.list_ids = list_ids


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "filesystem":
        folder = tmp_path / "artifacts"
        folder.mkdir()
        yield Store(
            FileSystemArtifactStore(str(folder)), lambda: {f.name for f in folder.iterdir()}
        )
        return
    boto3 = pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server")
    from optuna.artifacts import Boto3ArtifactStore

    mp = pytest.MonkeyPatch()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        mp.setenv(key, value)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = boto3.client("s3", endpoint_url=f"http://{host}:{port}")
        # moto's backends are shared by every server of the process: one bucket per test.
        bucket = f"dyhpo-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)

        def list_ids() -> set[str]:
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            return {o["Key"] for page in pages for o in page.get("Contents", [])}

        yield Store(Boto3ArtifactStore(bucket, client=client), list_ids)
    finally:
        server.stop()
        mp.undo()


def objective(trial: optuna.Trial) -> float:
    """Saves before every pause and after the last epoch; checks what it resumes from."""
    x = trial.suggest_float("x", 0.0, 1.0)
    lr = trial.suggest_float("lr", 1e-2, 1.0, log=True)
    resume = TrialResume(trial)
    state = resume.load()
    if resume.is_resumed:
        assert state == {"config": resume.config_id, "epoch": resume.start_step - 1}
    value, epoch = 0.0, resume.start_step - 1
    for epoch in resume.steps():
        value = curve_value(x, lr, epoch)
        trial.report(value, epoch)
        if trial.should_prune():
            resume.save({"config": resume.config_id, "epoch": epoch})
            raise optuna.TrialPruned()
    resume.save({"config": resume.config_id, "epoch": epoch})  # the final checkpoint
    return value


def run(store: Store, epochs: int, storage: Any = None, seed: int = 0) -> optuna.Study:
    study = make_study(MAX_BUDGET, artifact_store=store.store, storage=storage, seed=seed)
    study.optimize(objective, callbacks=[StopAfterEpochs(epochs)])
    return study


def live(study: optuna.Study) -> dict[int, tuple[str, int]]:
    return live_checkpoints(study_checkpoints(study._storage, study._study_id))


def recorded(study: optuna.Study) -> set[str]:
    """Every checkpoint any trial recorded (the superseded ones included)."""
    out = set()
    for t in study.get_trials(deepcopy=False):
        info = t.system_attrs.get(CHECKPOINT_KEY)
        if isinstance(info, dict):
            out.add(info["artifact_id"])
    return out


def incumbent(study: optuna.Study) -> int:
    configs = get_configurations(study)
    return max(configs, key=lambda c: (max(c.curve, default=-1.0), -c.config_id)).config_id


# ------------------------------------------------------------------------------ life cycle
def test_one_live_checkpoint_per_configuration(store: Store) -> None:
    study = run(store, 45)
    configs = get_configurations(study)
    resumed = [c for c in configs if len(c.trial_numbers) > 1]
    assert resumed, "the run should pause and resume configurations"
    alive = live(study)
    # Every configuration saved at least once (a pause or the end): one checkpoint each.
    assert set(alive) == {c.config_id for c in configs if c.status != "running"}
    assert store.list_ids() == {a for a, _ in alive.values()}
    # The superseded checkpoints were removed: more were saved than are kept.
    assert len(recorded(study)) == len(alive) + sum(len(c.trial_numbers) - 1 for c in configs)


def test_final_checkpoint_of_configurations_at_max_budget(store: Store) -> None:
    study = run(store, 40)
    # One paused configuration is resumed and trained to max_budget (whatever DyHPO decides).
    config_id = _paused(study)[0]
    before = live(study)[config_id][0]
    decision = Decision("resume", config_id, None, 0, math.nan, "test")
    with (
        mock.patch.object(study.sampler, "_decide", return_value=decision),
        mock.patch.object(study.pruner, "prune", return_value=False),
    ):
        study.optimize(objective, n_trials=1)
    alive = live(study)
    finished = [c for c in get_configurations(study) if c.last_step == MAX_BUDGET]
    assert config_id in {c.config_id for c in finished}
    assert before not in store.list_ids()
    for c in finished:
        artifact_id, number = alive[c.config_id]
        assert number == c.trial_numbers[-1] and artifact_id in store.list_ids()
        state = load_checkpoint(study, c.config_id, artifact_store=store.store)
        assert state == {"config": c.config_id, "epoch": MAX_BUDGET}
    best = incumbent(study)
    assert best in alive and alive[best][0] in store.list_ids()
    assert store.list_ids() == {a for a, _ in alive.values()}


def test_a_trial_that_saves_twice_keeps_its_latest(store: Store) -> None:
    study = make_study(MAX_BUDGET, artifact_store=store.store)

    def saves_every_epoch(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        trial.suggest_float("lr", 1e-2, 1.0, log=True)
        resume = TrialResume(trial)
        resume.load()
        for epoch in resume.steps():
            trial.report(epoch / MAX_BUDGET, epoch)
            resume.save({"epoch": epoch})
            if trial.should_prune():
                raise optuna.TrialPruned()
        return 1.0

    study.optimize(saves_every_epoch, n_trials=12)
    alive = live(study)
    assert store.list_ids() == {a for a, _ in alive.values()}
    for c in get_configurations(study):
        state = load_checkpoint(study, c.config_id, artifact_store=store.store)
        assert state == {"epoch": c.last_step}


def test_with_a_heartbeat_the_parent_is_removed_once_the_trial_has_ended(
    store: Store, tmp_path: Path
) -> None:
    from optuna_dyhpo.storages import create_sqlite_storage

    storage = create_sqlite_storage(str(tmp_path / "hb.db"), heartbeat_interval=60)
    study = run(store, 40, storage=storage)
    alive = {a for a, _ in live(study).values()}
    extra = store.list_ids() - alive
    # Only the previous checkpoint of the last trial can be left (its state was not stored
    # yet when the sampler swept); a later sweep removes it.
    assert len(extra) <= 1
    if extra:
        last = study.trials[-1]
        parent = study.trials[last.user_attrs["dyhpo_continues_trial"]]
        assert extra == {parent.system_attrs[CHECKPOINT_KEY]["artifact_id"]}
    remove_checkpoints(study, keep_best=len(alive) + 1)
    assert store.list_ids() == alive


def _continue_by_hand(study: optuna.Study, config_id: int) -> optuna.Trial:
    """A trial that resumes ``config_id`` (the sampler is told to), still RUNNING."""
    sampler = study.sampler
    decision = Decision("resume", config_id, None, 0, math.nan, "test")
    with mock.patch.object(sampler, "_decide", return_value=decision):
        trial = study.ask()
    assert TrialResume(trial).config_id == config_id
    return trial


def _paused(study: optuna.Study) -> list[int]:
    return [c.config_id for c in get_configurations(study) if c.status == "paused"]


def test_a_crashed_continuation_resumes_from_the_kept_checkpoint(store: Store) -> None:
    study = run(store, 30)
    config_id = _paused(study)[0]
    trial = _continue_by_hand(study, config_id)
    resume = TrialResume(trial)
    parent_ckpt = live(study)[config_id][0]
    assert resume.load() == {"config": config_id, "epoch": resume.start_step - 1}
    resume.save({"config": config_id, "epoch": resume.start_step - 1})
    # The worker dies: the heartbeat fails the trial (no dyhpo_status).
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    remove_checkpoints(study, keep_best=10_000)
    assert parent_ckpt in store.list_ids()
    assert store.list_ids() == {a for a, _ in live(study).values()}
    again = TrialResume(_continue_by_hand(study, config_id))
    assert again.load() == {"config": config_id, "epoch": again.start_step - 1}


class _FlakyStore(FileSystemArtifactStore):
    """A store whose removals fail while ``broken`` is set."""

    broken = True

    def remove(self, artifact_id: str) -> None:
        if self.broken:
            raise OSError("the store is read-only today")
        super().remove(artifact_id)


def test_a_failing_store_never_breaks_the_run(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(_checkpoints, "_warned", set())
    store = _FlakyStore(str(tmp_path))
    study = make_study(MAX_BUDGET, artifact_store=store)
    with pytest.warns(DyHPOWarning, match="Could not remove superseded DyHPO checkpoints"):
        study.optimize(objective, callbacks=[StopAfterEpochs(30)])
    assert not [t for t in study.trials if t.state == TrialState.FAIL]
    alive = {a for a, _ in live(study).values()}
    files = {f.name for f in tmp_path.iterdir()}
    assert alive < files  # the superseded ones are still there
    store.broken = False
    remove_checkpoints(study, keep_best=10_000)  # retried
    assert {f.name for f in tmp_path.iterdir()} == alive


@pytest.mark.parametrize("seed", [0, 1])
def test_the_incremental_sweep_finds_what_a_whole_sweep_finds(tmp_path: Path, seed: int) -> None:
    # After every trial the sweep reads only the trials after the leading finished ones; a
    # trial left running in the middle (asked, never told) keeps that suffix long.
    study = make_study(MAX_BUDGET, tmp_path=tmp_path, seed=seed)
    storage, study_id = study._storage, study._study_id
    study.optimize(objective, callbacks=[StopAfterEpochs(15)])
    asked = study.ask()
    counts = []

    def check(study: optuna.Study, _: Any) -> None:
        trials = storage.get_all_trials(study_id, deepcopy=False)
        done = _checkpoints.cache.done_set(storage, study_id)
        for ending in (None, asked._trial_id):
            fast = superseded_since(storage, study_id, trials, ending)
            whole = superseded(study_checkpoints(storage, study_id, trials), ending)
            assert {a: n for a, n in fast.items() if a not in done} == {
                a: n for a, n in whole.items() if a not in done
            }
        counts.append(len(whole))
        scanned.append(_checkpoints.cache.sweeps[storage][study_id].scanned)

    scanned: list[int] = []
    study.optimize(objective, callbacks=[check, StopAfterEpochs(45)])
    assert max(scanned) == asked.number  # the running trial held the leading run back
    study.tell(asked, state=TrialState.FAIL)
    check(study, None)
    assert scanned[-1] == len(study.trials)  # then the sweep moved past it
    assert counts[-1] > 0  # checkpoints were superseded


# ------------------------------------------------------------------------------ cleanup
def test_remove_checkpoints_keeps_the_best_k_and_the_incumbent(store: Store) -> None:
    study = run(store, 40)
    configs = get_configurations(study)
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert maximize
    ranked = sorted(configs, key=lambda c: (-max(c.curve), c.config_id))
    before = live(study)
    removed = remove_checkpoints(study, keep_best=3)
    kept = {before[c.config_id][0] for c in ranked[:3]}
    assert store.list_ids() == kept
    assert removed == len(before) - 3
    assert before[incumbent(study)][0] in store.list_ids()
    # The study goes on: a configuration whose checkpoint was removed is stopped, not failed.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DyHPOWarning)
        study.optimize(objective, callbacks=[StopAfterEpochs(60)])
    assert not [t for t in study.trials if t.state == TrialState.FAIL]
    assert store.list_ids() == {a for a, _ in live(study).values()} - _removed_ids(before, kept)


def _removed_ids(before: dict[int, tuple[str, int]], kept: set[str]) -> set[str]:
    return {a for a, _ in before.values()} - kept


def test_remove_checkpoints_spares_running_and_claimed_configurations(store: Store) -> None:
    study = run(store, 40)
    paused = [c for c in _paused(study) if c != incumbent(study)]
    assert len(paused) >= 2
    running, claimed = paused[-1], paused[-2]
    before = live(study)
    trial = _continue_by_hand(study, running)
    parent = study._storage.get_trial(
        {c.config_id: c for c in get_configurations(study)}[claimed].last_trial_id
    )
    claim = acquire_claim(study._storage, claim_name(study.study_name, parent.number, 0), 60)
    assert claim is not None
    try:
        remove_checkpoints(study, keep_best=1)
    finally:
        release_claim(study._storage, claim)
    ids = store.list_ids()
    assert before[running][0] in ids and before[claimed][0] in ids
    assert before[incumbent(study)][0] in ids
    assert len(ids) == 3 - (incumbent(study) in (running, claimed))
    assert TrialResume(trial).load() is not None


def test_remove_all_checkpoints_then_resumes_stop_cleanly(store: Store) -> None:
    study = run(store, 40)
    assert store.list_ids()
    remove_all_checkpoints(study)
    assert store.list_ids() == set()
    trial = _continue_by_hand(study, _paused(study)[0])
    with (
        pytest.raises(optuna.TrialPruned, match="was removed by remove_all_checkpoints"),
        pytest.warns(DyHPOWarning, match="The configuration is stopped"),
    ):
        TrialResume(trial).load()
    with pytest.raises(CheckpointError, match="has no checkpoint"):
        load_checkpoint(study, 10_000, artifact_store=store.store)


def test_cleanup_validates_its_arguments(tmp_path: Path) -> None:
    study = make_study(MAX_BUDGET, tmp_path=tmp_path)
    with pytest.raises(ValueError, match=r"`keep_best` must be an integer >= 1.*got 0"):
        remove_checkpoints(study, keep_best=0)
    plain = optuna.create_study()
    with pytest.raises(ValueError, match="`artifact_store` is required"):
        remove_all_checkpoints(plain)
    with pytest.raises(ValueError, match="`artifact_store` must be an Optuna artifact store"):
        remove_checkpoints(plain, artifact_store="not a store")  # type: ignore[arg-type]
