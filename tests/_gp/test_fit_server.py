"""The background fit helper: the same fit as in this process, errors and a dead helper."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from optuna_dyhpo._gp import Surrogate
from optuna_dyhpo._gp import SurrogateSettings
from optuna_dyhpo._gp._fit_server import BackgroundFitError
from optuna_dyhpo._gp._fit_server import BackgroundFitter
from tests._gp.test_model import _curves

# Short fits: what is tested is the helper, not the fit.
FAST = SurrogateSettings(scratch_steps=40, warm_steps=10)


@pytest.fixture(scope="module")
def fitter() -> BackgroundFitter:
    helper = BackgroundFitter()
    yield helper  # type: ignore[misc]
    helper.close()


def test_a_background_fit_is_the_fit_in_this_process(fitter: BackgroundFitter) -> None:
    train, y = _curves(20, seed=0)
    test, _ = _curves(8, seed=1)
    here = Surrogate(3, seed=4, settings=FAST)
    here.fit(train, y, warm_start=False)
    there = fitter.result(fitter.submit(Surrogate(3, seed=4, settings=FAST), train, y, warm=False))
    assert there.error is None and there.seconds > 0
    assert torch.allclose(there.surrogate.predict(test)[0], here.predict(test)[0], rtol=1e-9)
    # A warm refit of a copy: the original is left as it was.
    more, y_more = _curves(30, seed=0)
    before = here.predict(test)[0]
    warm = fitter.result(fitter.submit(here, more, y_more, warm=True))
    assert torch.equal(here.predict(test)[0], before)
    here.fit(more, y_more, warm_start=True)
    assert torch.allclose(warm.surrogate.predict(test)[0], here.predict(test)[0], rtol=1e-9)


def test_jobs_one_after_another_and_a_failed_fit_is_rolled_back(
    fitter: BackgroundFitter,
) -> None:
    train, y = _curves(12, seed=2)
    model = Surrogate(3, seed=0, settings=FAST)
    model.fit(train, y, warm_start=False)
    bad = y.clone()
    bad[0] = float("nan")
    first = fitter.submit(model, train, bad, warm=True)
    second = fitter.submit(model, train, y, warm=True)
    ok = fitter.result(second)  # the first was read before the second was sent
    failed = fitter.result(first)
    assert ok.error is None
    assert failed.error is not None
    assert torch.equal(failed.surrogate.predict(train)[0], model.predict(train)[0])


def test_a_dead_helper_raises_and_a_new_one_starts(fitter: BackgroundFitter) -> None:
    train, y = _curves(10, seed=3)
    fitter.result(fitter.submit(Surrogate(3, seed=0, settings=FAST), train, y, warm=False))
    pid = fitter.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    job = fitter.submit(Surrogate(3, seed=0, settings=FAST), train, y, warm=False)
    with pytest.raises(BackgroundFitError, match="fit helper process failed"):
        fitter.result(job)
    assert job.fit_here().error is None  # what the engine falls back to
    again = fitter.result(fitter.submit(Surrogate(3, seed=0, settings=FAST), train, y, warm=False))
    assert again.error is None and fitter.pid not in (None, pid)
