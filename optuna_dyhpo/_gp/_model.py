from __future__ import annotations

from dataclasses import dataclass
import math
import warnings

import gpytorch
from gpytorch.utils.warnings import GPInputWarning
import torch
from torch import nn

from optuna_dyhpo._gp._data import SurrogateInputs
from optuna_dyhpo._gp._likelihood import negative_log_marginal_likelihood
from optuna_dyhpo._gp._threads import gp_settings
from optuna_dyhpo._gp._threads import small_math
from optuna_dyhpo._warnings import FitError

# What fitting and linear algebra raise on bad numerics (NotPSDError and LinAlgError are
# RuntimeErrors). A programming error (TypeError, AttributeError, ...) is never caught.
_NUMERIC_ERRORS = (RuntimeError, ValueError, ArithmeticError)


@dataclass(frozen=True)
class SurrogateSettings:
    """Hyper-hyperparameters of the deep-kernel GP.

    Attributes:
        hidden: Width of the hyperparameter/budget branch.
        n_filters: Number of 1-D convolution filters over the learning curve.
        kernel_size: Width of the convolution.
        out_features: Dimension of the learned features the GP kernel sees.
        learning_rate: Adam step size.
        scratch_steps: Adam steps of a fit from a fresh initialisation.
        warm_steps: Adam steps of a warm-started refit.
        max_fit_rows: Largest number of rows the marginal likelihood is optimised on (a seeded
            subsample, always keeping the newest rows); prediction always conditions on all rows.
    """

    hidden: int = 64
    n_filters: int = 4
    kernel_size: int = 3
    out_features: int = 32
    learning_rate: float = 0.01
    scratch_steps: int = 300
    warm_steps: int = 40
    max_fit_rows: int = 256


class _CurveConv(nn.Module):
    """1-D convolution (same padding) written as unfold + matmul.

    Mathematically ``nn.Conv1d``; float64 ``conv1d`` with autograd takes a slow kernel path on
    CPU (about 30 ms per call at a few hundred rows), the matmul form well under 1 ms.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        ref = nn.Conv1d(in_channels, out_channels, kernel_size)  # for its initialisation
        self.weight = nn.Parameter(ref.weight.detach().reshape(out_channels, -1).clone())
        assert ref.bias is not None
        self.bias = nn.Parameter(ref.bias.detach().clone())
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (n, C, L) -> (n, F, L)
        k = self.kernel_size
        windows = nn.functional.pad(x, (k // 2, k - 1 - k // 2)).unfold(-1, k, 1)  # n,C,L,k
        flat = windows.permute(0, 2, 1, 3).reshape(x.shape[0], x.shape[-1], -1)  # n,L,C*k
        return (flat @ self.weight.T + self.bias).transpose(1, 2)


class _FeatureExtractor(nn.Module):
    """MLP over (hyperparameters, budget) joined with a 1-D CNN over the partial curve."""

    def __init__(self, n_params: int, s: SurrogateSettings) -> None:
        super().__init__()
        self._n_params = n_params
        self.fc_hp = nn.Linear(n_params + 2, s.hidden)
        self.conv = _CurveConv(2, s.n_filters, s.kernel_size)
        self.fc_out = nn.Linear(s.hidden + s.n_filters, s.out_features)
        self.act = nn.LeakyReLU()

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        d = self._n_params
        L = (packed.shape[-1] - d - 2) // 2  # the curve width: the longest observed curve
        hp = packed[..., : d + 2]
        curve = packed[..., d + 2 : d + 2 + L]
        mask = packed[..., d + 2 + L : d + 2 + 2 * L]
        h = self.act(self.fc_hp(hp))
        seen = mask.any(dim=-1)
        if torch.is_grad_enabled() or bool(seen.all()):
            pooled = self._pool(curve, mask)
        else:
            # Prediction: a row that sees no curve (a new configuration) pools the
            # convolution's bias alone, the same value for all: computed once. (The same
            # numbers; a fit keeps the plain form, whose gradient sums in the same order.)
            empty = (self.act(self.conv.bias) - 1e3).clamp_min(0.0)
            pooled = empty.expand(*mask.shape[:-1], empty.shape[0])
            if bool(seen.any()):
                pooled = pooled.index_put((seen,), self._pool(curve[seen], mask[seen]))
        # Bounded features: with unbounded ones the marginal likelihood can be maximised by
        # pushing every row far from every other (a white-noise fit that predicts the prior
        # everywhere, measured on chance-level first epochs).
        return torch.tanh(self.fc_out(torch.cat([h, pooled], dim=-1)))

    def _pool(self, curve: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        c = self.conv(torch.stack([curve, mask], dim=-2))
        # Padding must not win the max-pool: push masked positions far down before pooling.
        c = self.act(c) - (1.0 - mask).unsqueeze(-2) * 1e3
        return c.max(dim=-1).values.clamp_min(0.0)


MIN_LENGTHSCALE = 1.0
# A fit whose median row is correlated less than this with its most similar other row explains
# the data as independent noise: it is rejected as degenerate.
MIN_NEIGHBOUR_CORRELATION = 0.05


class _DeepKernelGP(gpytorch.models.ExactGP):
    def __init__(
        self,
        train_x: torch.Tensor,
        train_y: torch.Tensor,
        likelihood: gpytorch.likelihoods.GaussianLikelihood,
        extractor: _FeatureExtractor,
    ) -> None:
        super().__init__(train_x, train_y, likelihood)
        self.extractor = extractor
        self.mean_module = gpytorch.means.ConstantMean()
        # Features live in [-1, 1]^k; a length scale below MIN_LENGTHSCALE would let the kernel
        # treat neighbouring rows as unrelated.
        self.covar_module = gpytorch.kernels.ScaleKernel(
            gpytorch.kernels.RBFKernel(
                lengthscale_constraint=gpytorch.constraints.GreaterThan(MIN_LENGTHSCALE)
            )
        )

    def forward(self, x: torch.Tensor) -> gpytorch.distributions.MultivariateNormal:
        f = self.extractor(x)
        return gpytorch.distributions.MultivariateNormal(self.mean_module(f), self.covar_module(f))


class Surrogate:
    """Deep-kernel GP over (hyperparameters, budget, partial learning curve) -> next value.

    The model lives in float64. :meth:`fit` optimises the marginal likelihood (from a fresh,
    seeded initialisation or warm-started from the previous fit) and rolls back to the last
    good state when the optimisation fails. :meth:`condition` swaps in new training data
    without optimising, which is what happens between refits.

    Args:
        n_params: Width of the encoded hyperparameter vector.
        seed: Seed of the initialisation and of the fit subsample.
        settings: Model and optimiser settings.
    """

    def __init__(
        self,
        n_params: int,
        seed: int,
        settings: SurrogateSettings | None = None,
    ) -> None:
        self.n_params = n_params
        self.settings = settings or SurrogateSettings()
        self._seed = seed
        self._n_fits = 0
        self._model: _DeepKernelGP | None = None
        self._good_state: dict[str, torch.Tensor] | None = None
        self._cache: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @property
    def is_fitted(self) -> bool:
        return self._good_state is not None

    def _new_model(self, x: torch.Tensor, y: torch.Tensor) -> _DeepKernelGP:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._seed + 7919 * self._n_fits)
            extractor = _FeatureExtractor(self.n_params, self.settings)
            likelihood = gpytorch.likelihoods.GaussianLikelihood(
                noise_constraint=gpytorch.constraints.GreaterThan(1e-6)
            )
            model = _DeepKernelGP(x, y, likelihood, extractor).to(torch.float64)
        model.likelihood.noise = 1e-2
        return model

    def fit_rows(self, n: int) -> torch.Tensor:
        """Indices of the rows (of ``n``, oldest first) the next :meth:`fit` optimises on:
        all if at most ``max_fit_rows``, else the newest quarter of the cap and a seeded
        subsample of the rest. A caller may build only these rows and pass them to
        :meth:`fit`."""
        cap = self.settings.max_fit_rows
        if n <= cap:
            return torch.arange(n)
        # Keep the newest quarter, subsample the rest reproducibly.
        n_new = cap // 4
        g = torch.Generator().manual_seed(self._seed + 104729 * self._n_fits)
        older = torch.randperm(n - n_new, generator=g)[: cap - n_new]
        return torch.cat([older.sort().values, torch.arange(n - n_new, n)])

    def fit(self, inputs: SurrogateInputs, targets: torch.Tensor, warm_start: bool) -> float:
        """Optimise the marginal likelihood on (a subsample of) the rows, then condition on all.

        Args:
            inputs: Training rows.
            targets: Normalised targets, shape ``(n,)``.
            warm_start: Continue from the current parameters instead of a fresh initialisation.

        Returns:
            The final training loss (negative marginal log likelihood per row).

        Raises:
            FitError: The optimisation failed; the previous good model (if any) is restored.
        """
        targets = targets.to(torch.float64)
        self._cache = None
        idx = self.fit_rows(inputs.n)
        x_fit, y_fit = inputs.select(idx).pack(), targets[idx]
        previous = self._model
        previous_data = (
            None if previous is None else (previous.train_inputs[0], previous.train_targets)
        )
        if not warm_start or self._model is None:
            self._model = self._new_model(x_fit, y_fit)
            steps = self.settings.scratch_steps
        else:
            self._model.set_train_data(x_fit, y_fit, strict=False)
            steps = self.settings.warm_steps
        self._n_fits += 1
        model = self._model
        model.train()
        optimiser = torch.optim.Adam(model.parameters(), lr=self.settings.learning_rate)
        eye = torch.eye(x_fit.shape[0], dtype=torch.float64)
        loss_value = math.nan
        try:
            with small_math():
                for _ in range(steps):
                    optimiser.zero_grad()
                    features = model.extractor(x_fit)
                    covariance = model.covar_module(features).to_dense()
                    covariance = covariance + model.likelihood.noise * eye
                    loss = negative_log_marginal_likelihood(
                        covariance, y_fit - model.mean_module(features)
                    )
                    loss.backward()
                    optimiser.step()
                    loss_value = float(loss.detach())
                    if not math.isfinite(loss_value):
                        raise FitError(f"non-finite marginal likelihood ({loss_value})")
            self._check_not_degenerate(model, x_fit)
        except _NUMERIC_ERRORS as err:  # FitError is a RuntimeError too
            self._rollback(previous, previous_data)
            if isinstance(err, FitError):
                raise
            raise FitError(f"{type(err).__name__}: {err}") from err
        self._good_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.condition(inputs, targets)
        return loss_value

    @staticmethod
    def _check_not_degenerate(model: _DeepKernelGP, x: torch.Tensor) -> None:
        if x.shape[0] < 3:
            return
        with torch.no_grad():
            f = model.extractor(x)
            k = model.covar_module.base_kernel(f).to_dense()
            k.fill_diagonal_(0.0)
            neighbour = float(k.max(dim=1).values.median())
        if neighbour < MIN_NEIGHBOUR_CORRELATION:
            raise FitError(
                f"degenerate fit (median neighbour correlation {neighbour:.2g}): the model "
                "explains the data as independent noise"
            )

    def _rollback(
        self,
        previous: _DeepKernelGP | None,
        previous_data: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> None:
        if self._good_state is not None and previous is not None and previous_data is not None:
            previous.load_state_dict(self._good_state)
            previous.set_train_data(*previous_data, strict=False)
            self._model = previous
        else:
            self._model = None
            self._good_state = None
        self._cache = None

    def condition(self, inputs: SurrogateInputs, targets: torch.Tensor) -> None:
        """Use these rows as the GP's data without changing any learned parameter."""
        if self._model is None:
            raise FitError("the surrogate has not been fitted yet")
        self._model.set_train_data(inputs.pack(), targets.to(torch.float64), strict=False)
        self._cache = None

    def _posterior_cache(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cholesky factor of the training covariance, the weights ``K^-1 (y - m)`` and the
        training features, computed once per conditioning."""
        if self._cache is not None:
            return self._cache
        model = self._model
        assert model is not None
        x = model.train_inputs[0]
        y = model.train_targets
        features = model.extractor(x)
        k = model.covar_module(features).to_dense()
        k.diagonal().add_(model.likelihood.noise)
        factor, info = torch.linalg.cholesky_ex(k)
        jitter = 1e-8 * float(k.diagonal().mean())
        while int(info) != 0 and jitter < 1e-1:
            factor, info = torch.linalg.cholesky_ex(k + jitter * torch.eye(len(y), dtype=k.dtype))
            jitter *= 100.0
        if int(info) != 0:
            raise FitError("the training covariance is not positive definite")
        residual = (y - model.mean_module(features)).unsqueeze(-1)
        weights = torch.cholesky_solve(residual, factor).squeeze(-1)
        self._cache = (factor, weights, features)
        return self._cache

    def predict(self, inputs: SurrogateInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and standard deviation of the latent function at ``inputs``.

        The kernel, mean and noise are gpytorch's modules; the exact-GP posterior is solved
        with a cached Cholesky factor (gpytorch's generic prediction path costs about three
        times as much at our sizes). ``tests/_gp/test_model.py`` checks it against gpytorch's
        own prediction.

        Raises:
            FitError: The model has not been fitted or the posterior is not finite.
        """
        if self._model is None:
            raise FitError("the surrogate has not been fitted yet")
        model = self._model
        model.eval()
        try:
            with torch.no_grad(), small_math():
                factor, weights, train_features = self._posterior_cache()
                features = model.extractor(inputs.pack())
                cross = model.covar_module(features, train_features).to_dense()
                prior_var = model.covar_module(features, diag=True)
                mean = model.mean_module(features) + cross @ weights
                v = torch.linalg.solve_triangular(factor, cross.T, upper=False)
                var = prior_var - (v * v).sum(dim=0)
        except FitError:
            raise
        except _NUMERIC_ERRORS as err:
            raise FitError(f"prediction failed: {type(err).__name__}: {err}") from err
        if not (torch.isfinite(mean).all() and torch.isfinite(var).all()):
            raise FitError("prediction is not finite")
        return mean, var.clamp_min(1e-12).sqrt()

    def predict_held_out(
        self, rows: SurrogateInputs, targets: torch.Tensor, query: SurrogateInputs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictive mean and standard deviation of *observations* (the noise included) at
        ``query`` when conditioned on ``rows`` only; the model's own conditioning is left as
        it was.

        Raises:
            FitError: As :meth:`predict`.
        """
        if self._model is None:
            raise FitError("the surrogate has not been fitted yet")
        model, cache = self._model, self._cache
        data = (model.train_inputs[0], model.train_targets)
        try:
            self.condition(rows, targets)
            mean, sd = self.predict(query)
            noise = float(model.likelihood.noise.detach())
        finally:
            model.set_train_data(*data, strict=False)
            self._cache = cache
        return mean, (sd.square() + noise).sqrt()

    def predict_with_gpytorch(self, inputs: SurrogateInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """The same posterior through gpytorch's own prediction path (the reference)."""
        assert self._model is not None
        model = self._model
        model.eval()
        with torch.no_grad(), gp_settings(), warnings.catch_warnings():
            # Predicting at training inputs is legitimate here (a candidate may repeat a row).
            warnings.simplefilter("ignore", GPInputWarning)
            post = model(inputs.pack())
            return post.mean, post.variance.clamp_min(1e-12).sqrt()
