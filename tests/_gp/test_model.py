from __future__ import annotations

import pytest
import torch

from optuna_dyhpo._gp import FitError
from optuna_dyhpo._gp import Surrogate
from optuna_dyhpo._gp import SurrogateInputs
from optuna_dyhpo._gp import normalise_targets

L = 20


def _curves(n_configs: int, seed: int) -> tuple[SurrogateInputs, torch.Tensor]:
    """Rows of a known curve family y_b = a - exp(-r b) with a, r set by the hyperparameters."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_configs, 3, generator=g, dtype=torch.float64)
    rows_x, budgets, prefixes, ys = [], [], [], []
    for i in range(n_configs):
        a, r = float(x[i, 0]), 0.05 + 0.4 * float(x[i, 1])
        k = int(torch.randint(1, L + 1, (1,), generator=g))
        curve = [a - float(torch.exp(torch.tensor(-r * b))) for b in range(1, k + 1)]
        for b in range(1, k + 1):
            rows_x.append(x[i])
            budgets.append(b)
            prefixes.append(curve[: b - 1])
            ys.append(curve[b - 1])
    return SurrogateInputs.build(torch.stack(rows_x), budgets, prefixes, L), torch.tensor(
        ys, dtype=torch.float64
    )


def test_fits_curve_family_better_than_constant() -> None:
    train, y = _curves(30, seed=0)
    test, y_test = _curves(15, seed=1)
    loc, scale = normalise_targets(y)
    model = Surrogate(3, seed=0)
    model.fit(train, (y - loc) / scale, warm_start=False)
    mean, std = model.predict(test)
    pred = mean * scale + loc
    rmse = float(((pred - y_test) ** 2).mean().sqrt())
    constant = float(((y_test - y.mean()) ** 2).mean().sqrt())
    assert rmse < 0.3 * constant
    assert mean.dtype == torch.float64 and (std > 0).all()


def test_warm_start_and_condition_keep_a_usable_model() -> None:
    train, y = _curves(20, seed=2)
    model = Surrogate(3, seed=0)
    model.fit(train.select(torch.arange(train.n // 2)), y[: train.n // 2], warm_start=False)
    model.fit(train, y, warm_start=True)
    more, y_more = _curves(25, seed=2)
    model.condition(more, y_more)
    mean, _ = model.predict(more)
    assert torch.isfinite(mean).all()


def test_same_seed_same_model() -> None:
    train, y = _curves(10, seed=3)
    a, b = Surrogate(3, seed=5), Surrogate(3, seed=5)
    a.fit(train, y, warm_start=False)
    b.fit(train, y, warm_start=False)
    assert torch.equal(a.predict(train)[0], b.predict(train)[0])


def test_failed_fit_rolls_back_to_last_good_model() -> None:
    train, y = _curves(10, seed=4)
    model = Surrogate(3, seed=0)
    model.fit(train, y, warm_start=False)
    before = model.predict(train)[0]
    bad = y.clone()
    bad[0] = float("nan")
    with pytest.raises(FitError):
        model.fit(train, bad, warm_start=True)
    assert torch.equal(model.predict(train)[0], before)


def test_failed_first_fit_leaves_no_model() -> None:
    train, y = _curves(5, seed=5)
    model = Surrogate(3, seed=0)
    with pytest.raises(FitError):
        model.fit(train, torch.full_like(y, float("nan")), warm_start=False)
    assert not model.is_fitted
    with pytest.raises(FitError):
        model.predict(train)


def test_cached_posterior_matches_gpytorch_prediction() -> None:
    train, y = _curves(25, seed=6)
    test, _ = _curves(10, seed=7)
    model = Surrogate(3, seed=0)
    model.fit(train, y, warm_start=False)
    for _ in range(2):  # the second call reuses the cached factor
        mean, std = model.predict(test)
        ref_mean, ref_std = model.predict_with_gpytorch(test)
        assert torch.allclose(mean, ref_mean, atol=1e-6, rtol=1e-5)
        assert torch.allclose(std, ref_std, atol=1e-6, rtol=1e-4)
    more, y_more = _curves(30, seed=6)
    model.condition(more, y_more)  # new data: the cache must not be reused
    assert torch.allclose(
        model.predict(test)[0], model.predict_with_gpytorch(test)[0], atol=1e-6, rtol=1e-5
    )


def test_a_white_noise_fit_is_rejected() -> None:
    """A fit whose rows are all unrelated to each other (the kernel matrix is the identity)
    predicts the prior everywhere: it is rejected, a correlated one is kept."""
    from types import SimpleNamespace

    import gpytorch
    import pytest

    from optuna_dyhpo._gp import FitError

    kernel = gpytorch.kernels.RBFKernel().to(torch.float64)
    x = torch.rand(20, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    spread = SimpleNamespace(
        extractor=lambda v: 100.0 * v, covar_module=SimpleNamespace(base_kernel=kernel)
    )
    with pytest.raises(FitError, match="degenerate"):
        Surrogate._check_not_degenerate(spread, x)  # type: ignore[arg-type]
    close = SimpleNamespace(
        extractor=lambda v: v, covar_module=SimpleNamespace(base_kernel=kernel)
    )
    Surrogate._check_not_degenerate(close, x)  # type: ignore[arg-type]


def test_held_out_prediction_adds_the_noise_and_leaves_the_conditioning_alone() -> None:
    train, y = _curves(20, seed=4)
    query, _ = _curves(6, seed=5)
    model = Surrogate(3, seed=0)
    model.fit(train, y, warm_start=False)
    before = model.predict(query)
    half = torch.arange(train.n // 2)
    mean, sd = model.predict_held_out(train.select(half), y[half], query)
    after = model.predict(query)
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])
    model.condition(train.select(half), y[half])
    mean_half, sd_half = model.predict(query)
    noise = float(model._model.likelihood.noise.detach())  # type: ignore[union-attr]
    assert torch.allclose(mean, mean_half)
    assert torch.allclose(sd.square(), sd_half.square() + noise)
