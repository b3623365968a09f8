from __future__ import annotations

import gpytorch
import pytest
import torch

from optuna_dyhpo._gp import Surrogate
from optuna_dyhpo._gp import SurrogateInputs
from optuna_dyhpo._gp._likelihood import cholesky
from optuna_dyhpo._gp._likelihood import negative_log_marginal_likelihood


def _model(
    seed: int, n: int, d: int, width: int
) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    rows = SurrogateInputs(
        rand(n, d), rand(n), rand(n, width), (rand(n, width) > 0.3).double(), rand(n)
    )
    x, y = rows.pack(), torch.randn(n, generator=g, dtype=torch.float64)
    model = Surrogate(d, seed)._new_model(x, y)
    # Move every parameter off its initialisation so that no gradient is trivially zero.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    model.train()
    return model, x, y


@pytest.mark.parametrize("seed,n,d,width", [(0, 40, 3, 5), (1, 120, 7, 20), (2, 256, 1, 50)])
def test_value_and_gradient_match_gpytorch(seed: int, n: int, d: int, width: int) -> None:
    model, x, y = _model(seed, n, d, width)
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(model.likelihood, model)
    with gpytorch.settings.max_cholesky_size(100_000):
        reference = -mll(model(x), y)
    reference.backward()
    expected = [p.grad.clone() for p in model.parameters()]  # type: ignore[union-attr]
    model.zero_grad()
    features = model.extractor(x)
    covariance = model.covar_module(features).to_dense() + model.likelihood.noise * torch.eye(
        n, dtype=torch.float64
    )
    loss = negative_log_marginal_likelihood(covariance, y - model.mean_module(features))
    loss.backward()
    assert float(loss.detach()) == pytest.approx(float(reference.detach()), rel=1e-10)
    for p, want in zip(model.parameters(), expected, strict=True):
        assert p.grad is not None
        assert torch.allclose(p.grad, want, rtol=1e-7, atol=1e-10 * float(want.abs().max()))


def test_gradient_matches_finite_differences() -> None:
    g = torch.Generator().manual_seed(3)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64)
    k = (a @ a.T + 6 * torch.eye(6, dtype=torch.float64)).requires_grad_()
    r = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)

    def symmetric(k: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return negative_log_marginal_likelihood(0.5 * (k + k.T), r)

    assert torch.autograd.gradcheck(symmetric, (k, r))


def test_singular_covariance_gets_jitter_and_indefinite_one_raises() -> None:
    v = torch.ones(5, 1, dtype=torch.float64)
    singular = v @ v.T  # rank one
    factor = cholesky(singular)
    assert torch.allclose(factor @ factor.T, singular, atol=1e-5)
    with pytest.raises(RuntimeError, match="not positive definite"):
        cholesky(-torch.eye(3, dtype=torch.float64))
