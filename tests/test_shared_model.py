"""The fitted surrogate shared through the study: exact round trip, adoption, robustness."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import FloatDistribution
from optuna.storages import BaseStorage
from optuna.trial import TrialState
import pytest
import torch

from optuna_dyhpo import DyHPOPruner
from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import epochs_spent
from optuna_dyhpo._engine import DecisionEngine
from optuna_dyhpo._engine import EngineSettings
from optuna_dyhpo._gp import Surrogate
from optuna_dyhpo._gp import SurrogateInputs
from optuna_dyhpo._gp import SurrogateSettings
from optuna_dyhpo._shared_model import PublishedModel
from optuna_dyhpo._shared_model import SharedModels
from optuna_dyhpo._state import FIT_LEASE_KEY
from optuna_dyhpo._state import MODEL_KEY
from optuna_dyhpo._state import Configuration
from tests.synthetic import make_objective
from tests.synthetic import make_study

SPACE = {"x": FloatDistribution(0.0, 1.0)}
FAST = SurrogateSettings(scratch_steps=40, warm_steps=10)


def _rows(n_configs: int, seed: int) -> tuple[SurrogateInputs, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_configs, 2, generator=g, dtype=torch.float64)
    rows_x, budgets, prefixes, ys = [], [], [], []
    for i in range(n_configs):
        curve = [float(x[i, 0]) * (1 - 0.5**b) for b in range(1, 6)]
        for b in range(1, 6):
            rows_x.append(x[i])
            budgets.append(b)
            prefixes.append(curve[: b - 1])
            ys.append(curve[b - 1])
    inputs = SurrogateInputs.build(torch.stack(rows_x), budgets, prefixes, 5)
    return inputs, torch.tensor(ys, dtype=torch.float64)


def _through_json(published: PublishedModel) -> PublishedModel:
    return PublishedModel.from_json(json.loads(json.dumps(published.to_json())))


def test_a_published_surrogate_round_trips_exactly() -> None:
    train, y = _rows(12, seed=0)
    test, _ = _rows(6, seed=1)
    original = Surrogate(2, seed=3, settings=FAST)
    original.fit(train, y, warm_start=False)
    published = _through_json(PublishedModel.of(original, "k", 60, 60))
    for name, value in original._good_state.items():  # type: ignore[union-attr]
        assert torch.equal(published.state[name], value.to(torch.float64)), name
    settings = EngineSettings(5, surrogate=FAST)
    copy = published.surrogate(settings)
    copy.condition(train, y)
    for a, b in zip(original.predict(test), copy.predict(test), strict=True):
        assert torch.equal(a, b)
    # The next fit (its subsample and its start) is the same too.
    more, y_more = _rows(20, seed=2)
    original.fit(more, y_more, warm_start=True)
    copy.fit(more, y_more, warm_start=True)
    for a, b in zip(original.predict(test), copy.predict(test), strict=True):
        assert torch.equal(a, b)


def _configs(n: int, steps: int, start: int = 0) -> dict[int, Configuration]:
    out = {}
    for i in range(start, start + n):
        x = (i - start + 0.5) / n
        curve = [x * (1.0 - 0.5**b) for b in range(1, steps + 1)]
        out[i] = Configuration(
            i, {"x": x}, curve, [i], "paused", dict(SPACE), step_trials=[i] * steps
        )
    return out


def _engine(seed: int = 0) -> DecisionEngine:
    settings = EngineSettings(
        10, n_candidates=32, promotion_probability=0, stagnation=0, surrogate=FAST
    )
    return DecisionEngine(settings, seed)


class _Attribute:
    """A study attribute held in memory."""

    def __init__(self, value: Any = None) -> None:
        self.value = value
        self.writes = 0

    def models(self, engine: DecisionEngine) -> SharedModels:
        def write(v: dict[str, Any]) -> None:
            self.value = json.loads(json.dumps(v))
            self.writes += 1

        return SharedModels(engine.settings, lambda: self.value, write)


def _decide(engine: DecisionEngine, configs: dict[int, Configuration], attr: _Attribute) -> Any:
    engine.models = attr.models(engine)
    try:
        return engine.decide(configs, maximize=True)
    finally:
        engine.models = None


def test_an_engine_that_adopts_the_published_model_decides_as_its_publisher() -> None:
    configs = _configs(12, 4)
    attr = _Attribute()
    a = _engine()
    first = _decide(a, configs, attr)
    assert (a.stats.scratch_fits, attr.writes) == (1, 1)
    snapshot = _Attribute(attr.value)
    b = _engine()  # a new process: no model of its own
    assert _decide(b, configs, snapshot) == first
    assert (b.stats.scratch_fits, b.stats.warm_fits, b.stats.adopted_models) == (0, 0, 1)
    assert snapshot.writes == 0  # nothing newer to publish
    # Both refit (warm) on new data: the adopted model refits exactly as the publisher's.
    grown = {**configs, **_configs(40, 3, start=12)}
    assert _decide(a, grown, attr) == _decide(b, grown, snapshot)
    assert a.stats.warm_fits == b.stats.warm_fits == 1 and b.stats.scratch_fits == 0


def test_a_process_about_to_refit_adopts_a_newer_published_model() -> None:
    configs = _configs(12, 4)
    attr = _Attribute()
    a, b = _engine(0), _engine(1)
    _decide(a, configs, attr)
    _decide(b, configs, _Attribute())  # b fitted its own model, not published here
    grown = {**configs, **_configs(40, 3, start=12)}
    _decide(a, grown, attr)  # a refits and publishes
    assert attr.writes == 2
    _decide(b, grown, attr)  # b would refit: it adopts a's fit instead
    assert (b.stats.scratch_fits, b.stats.warm_fits, b.stats.adopted_models) == (1, 0, 1)
    # A process whose model is as new as the published one keeps its own.
    _decide(a, grown, attr)
    assert a.stats.adopted_models == 0


def _valid_payload() -> dict[str, Any]:
    attr = _Attribute()
    _decide(_engine(), _configs(12, 4), attr)
    return attr.value  # type: ignore[no-any-return]


def _corrupt(kind: str) -> Any:
    if kind == "text":
        return "not a model"
    payload = _valid_payload()
    if kind == "format":
        payload["format"] = 999
    elif kind == "foreign":
        payload["key"] = "0" * 32
    elif kind == "base64":
        name = next(iter(payload["state"]))
        payload["state"][name][1] = "***"
    elif kind == "shape":
        noise = payload["state"]["likelihood.noise_covar.raw_noise"]
        payload["state"]["extractor.fc_hp.weight"] = noise
    elif kind == "nan":
        nan = PublishedModel.from_json(payload).state
        nan["extractor.fc_out.bias"] = torch.full_like(nan["extractor.fc_out.bias"], math.nan)
        payload["state"] = {k: [list(v.shape), _b64(v)] for k, v in nan.items()}
    elif kind == "missing":
        del payload["state"]["likelihood.noise_covar.raw_noise"]
    return payload


def _b64(t: torch.Tensor) -> str:
    import base64

    return base64.b64encode(t.numpy().astype("<f8").tobytes()).decode()


@pytest.mark.parametrize(
    "kind", ["text", "format", "foreign", "base64", "shape", "nan", "missing"]
)
def test_a_corrupt_or_foreign_published_model_is_ignored(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    attr = _Attribute(_corrupt(kind))
    engine = _engine()
    with caplog.at_level(logging.DEBUG, logger="optuna.dyhpo.engine"):
        d = _decide(engine, _configs(12, 4), attr)
    assert d.reason == "ei" and d.kind in ("fresh", "resume")
    assert (engine.stats.scratch_fits, engine.stats.adopted_models) == (1, 0)
    assert attr.writes == 1  # replaced by the process's own fit
    assert PublishedModel.from_json(attr.value).fit_obs == 48
    if kind not in ("foreign", "format"):
        assert "Ignoring the study's published model" in caplog.text


def test_a_failed_read_or_write_does_not_break_the_decision() -> None:
    engine = _engine()

    def read() -> Any:
        raise RuntimeError("database is locked")

    def write(value: dict[str, Any]) -> None:
        raise RuntimeError("storage is read-only")

    engine.models = SharedModels(engine.settings, read, write)
    assert engine.decide(_configs(12, 4), maximize=True).reason == "ei"
    assert engine.stats.scratch_fits == 1


def _storage(kind: str, tmp_path: Path) -> BaseStorage | str | None:
    if kind == "inmemory":
        return optuna.storages.InMemoryStorage()
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    from optuna.storages.journal import JournalFileBackend
    from optuna.storages.journal import JournalStorage

    return JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))


@pytest.mark.parametrize("kind", ["inmemory", "sqlite", "journal"])
def test_a_joining_sampler_starts_from_the_published_model(kind: str, tmp_path: Path) -> None:
    storage = _storage(kind, tmp_path)
    study = make_study(8, tmp_path=tmp_path, storage=storage, n_startup_configs=3)  # type: ignore[arg-type]
    study.optimize(make_objective(), callbacks=[StopAfterEpochs(40)])
    assert MODEL_KEY in study._storage.get_study_system_attrs(study._study_id)
    joiner = DyHPOSampler(8, seed=1, n_candidates=64, n_startup_configs=3)
    joined = optuna.load_study(
        study_name=study.study_name, storage=study._storage, sampler=joiner, pruner=DyHPOPruner()
    )
    joined.optimize(make_objective(), callbacks=[StopAfterEpochs(60)])
    stats = joiner._engine.stats
    assert stats.adopted_models >= 1 and stats.scratch_fits == 0
    assert stats.decisions > stats.promotions  # it decided with the model
    trials = joined.get_trials(deepcopy=False)
    assert not [t.number for t in trials if t.state == TrialState.FAIL]
    assert all(0.0 <= t.params["x"] <= 1.0 for t in trials)


def test_a_corrupt_study_attribute_never_breaks_a_run(tmp_path: Path) -> None:
    study = make_study(8, tmp_path=tmp_path, n_startup_configs=3)
    study._storage.set_study_system_attr(study._study_id, MODEL_KEY, {"format": 1, "key": 3})
    study.optimize(make_objective(), callbacks=[StopAfterEpochs(30)])
    stats = study.sampler._engine.stats  # type: ignore[attr-defined]
    assert stats.scratch_fits >= 1 and stats.adopted_models == 0
    published = study._storage.get_study_system_attrs(study._study_id)[MODEL_KEY]
    assert PublishedModel.from_json(published).fit_obs > 0


def test_the_fit_lease_is_taken_only_for_a_fit(tmp_path: Path) -> None:
    """A decision that fits nothing writes no lease (each take and release is a storage
    write of every decision otherwise)."""
    study = make_study(8, tmp_path=tmp_path, n_startup_configs=3)
    writes: list[Any] = []
    write = study._storage.set_study_system_attr

    def counted(study_id: int, key: str, value: Any) -> None:
        if key == FIT_LEASE_KEY:
            writes.append(value)
        write(study_id, key, value)

    study._storage.set_study_system_attr = counted  # type: ignore[method-assign]
    study.optimize(make_objective(), callbacks=[StopAfterEpochs(60)])
    stats = study.sampler._engine.stats  # type: ignore[attr-defined]
    fits = stats.scratch_fits + stats.warm_fits
    assert fits >= 2 and stats.decisions > 2 * fits
    assert len(writes) == 2 * fits  # a take and a release around each fit


def test_a_fit_in_the_background_holds_the_fit_lease(tmp_path: Path) -> None:
    """A refit running in the helper holds the lease from its start to its installation, so
    other workers keep their models meanwhile instead of fitting the same one."""
    study = make_study(8, tmp_path=tmp_path, n_startup_configs=3, fit_in_background=True)
    owners: list[Any] = []
    write = study._storage.set_study_system_attr

    def counted(study_id: int, key: str, value: Any) -> None:
        if key == FIT_LEASE_KEY:
            owners.append(value["owner"])
        write(study_id, key, value)

    study._storage.set_study_system_attr = counted  # type: ignore[method-assign]
    study.optimize(make_objective(), callbacks=[StopAfterEpochs(70)])
    stats = study.sampler._engine.stats  # type: ignore[attr-defined]
    assert stats.background_fits >= 2
    # Take, release, take, release, ... (a fit still running at the end may hold it).
    assert all((owner is None) == (i % 2 == 1) for i, owner in enumerate(owners))
    assert len(owners) // 2 >= stats.scratch_fits + stats.warm_fits


def test_while_another_worker_fits_the_first_model_a_worker_decides_without_one(
    tmp_path: Path,
) -> None:
    import time

    from optuna_dyhpo._state import FIT_LEASE_KEY

    study = make_study(8, tmp_path=tmp_path, n_startup_configs=3)
    storage, sid = study._storage, study._study_id
    # Another process holds the lease (it is fitting): no fit here, decisions stay valid.
    storage.set_study_system_attr(sid, FIT_LEASE_KEY, {"owner": "x", "until": time.time() + 600})
    study.optimize(make_objective(), callbacks=[StopAfterEpochs(25)])
    stats = study.sampler._engine.stats  # type: ignore[attr-defined]
    assert stats.scratch_fits == 0 and stats.warm_fits == 0 and stats.failed_fits == 0
    assert stats.promotions > 0
    assert epochs_spent(study) == 25
    # Its lease expired (that worker died): this one fits, and its own lease never stops it.
    storage.set_study_system_attr(sid, FIT_LEASE_KEY, {"owner": "x", "until": time.time() - 1})
    study.optimize(make_objective(), callbacks=[StopAfterEpochs(50)])
    assert stats.scratch_fits >= 1
    assert storage.get_study_system_attrs(sid)[FIT_LEASE_KEY]["owner"] is None  # released
