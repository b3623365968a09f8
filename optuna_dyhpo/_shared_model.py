"""A fitted surrogate shared between the processes of a study.

Each process keeps its fitted surrogate in memory (``_model_cache.ModelCache``), so a worker that
joins a running study (or replaces a killed one) would fit from scratch before its first
decision with a model. Instead, after every fit the engine hands its surrogate to
:class:`SharedModels`, which publishes the surrogate's state to the study (the system attribute
``MODEL_KEY``; every parameter and buffer of the feature extractor, mean, kernel and likelihood
as little-endian float64, base64-encoded, with the number of observations it was fitted on and
the seed and fit count that its next fits derive their subsamples from). A process about to fit
(it has no model of the study yet, or the refit rule asks for a refit) first reads the
published state; when it belongs to the same model (search-space encoding, training rows,
surrogate settings) and was fitted on more observations than the process's own model, the
process adopts it and applies the refit rule to it: a new worker starts with the study's latest
model instead of a fit from scratch, and of several workers that all reach a refit, the first
one fits and the others adopt its model.

Adopting a published state is exactly equivalent to holding the surrogate that was published
(the float64 round trip is bitwise), so a process that adopts the state it published itself
decides as if it had kept it. A sequential run never adopts a model it did not fit: its own
model is never older than the published one.

This module never touches storage: the sampler gives it the two callables that read and write
the attribute (``_study_io.model_attribute``). A published state that cannot be parsed or
belongs to another model is ignored (with a debug log).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from collections.abc import Iterator
import contextlib
import dataclasses
from dataclasses import dataclass
import hashlib
import json
from typing import TYPE_CHECKING
from typing import Any

import numpy as np

from optuna_dyhpo._logging import get_logger

if TYPE_CHECKING:
    import torch

    from optuna_dyhpo._decision import EngineSettings
    from optuna_dyhpo._gp import Surrogate
    from optuna_dyhpo._study_io import FitLease

_logger = get_logger("engine")

FORMAT = 1
# Largest published state (characters of JSON): MySQL's TEXT column (Optuna's attribute values)
# holds 65,535 bytes. A larger model is not shared.
MAX_CHARS = 60_000


def encode_tensor(t: torch.Tensor) -> list[Any]:
    """``[shape, base64 of the little-endian float64 bytes]`` (exact)."""
    a = t.detach().cpu().double().numpy().astype("<f8")
    return [list(a.shape), base64.b64encode(a.tobytes(order="C")).decode("ascii")]


def decode_tensor(obj: Any) -> torch.Tensor:
    """The tensor :func:`encode_tensor` encoded.

    Raises:
        ValueError: ``obj`` is not such an encoding.
    """
    import torch

    if not (isinstance(obj, list) and len(obj) == 2 and isinstance(obj[1], str)):
        raise ValueError("not an encoded tensor")
    shape = obj[0]
    if not (isinstance(shape, list) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise ValueError(f"bad shape {shape!r}")
    a = np.frombuffer(base64.b64decode(obj[1], validate=True), dtype="<f8")
    return torch.from_numpy(a.astype(np.float64).reshape(shape))


def model_key(settings: EngineSettings, encoder_key: Any, dim: int) -> str:
    """What a surrogate must share to be used in place of another: the search-space encoding,
    the training rows (budget, look-ahead rows or not) and the surrogate's own settings."""
    surrogate = None if settings.surrogate is None else dataclasses.asdict(settings.surrogate)
    lookahead = settings.acquisition != "next-step"
    text = repr((FORMAT, encoder_key, dim, settings.max_budget, lookahead, surrogate))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class PublishedModel:
    """A surrogate's state as published to the study.

    Attributes:
        key: :func:`model_key` of the surrogate.
        fit_obs: Observations it was fitted on.
        last_scratch_obs: Observations at its last fit from scratch.
        n_params: Width of the encoded hyperparameter vector.
        seed: The surrogate's seed.
        n_fits: Fits it went through (its next fit subsamples rows with it).
        state: Its ``state_dict`` (float64).
    """

    key: str
    fit_obs: int
    last_scratch_obs: int
    n_params: int
    seed: int
    n_fits: int
    state: dict[str, torch.Tensor]

    def to_json(self) -> dict[str, Any]:
        """The attribute value (JSON-serialisable)."""
        return {
            "format": FORMAT,
            "key": self.key,
            "fit_obs": self.fit_obs,
            "last_scratch_obs": self.last_scratch_obs,
            "n_params": self.n_params,
            "seed": self.seed,
            "n_fits": self.n_fits,
            "state": {k: encode_tensor(v) for k, v in self.state.items()},
        }

    @staticmethod
    def from_json(obj: Any) -> PublishedModel:
        """Parse an attribute value.

        Raises:
            ValueError: It is not a published model of this format.
        """
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise ValueError("not a published model of this format")
        ints = ("fit_obs", "last_scratch_obs", "n_params", "seed", "n_fits")
        if not all(isinstance(obj.get(k), int) for k in ints) or not isinstance(obj["key"], str):
            raise ValueError("missing or malformed fields")
        state = obj.get("state")
        if not isinstance(state, dict):
            raise ValueError("missing state")
        return PublishedModel(
            key=obj["key"],
            state={str(k): decode_tensor(v) for k, v in state.items()},
            **{k: int(obj[k]) for k in ints},
        )

    @staticmethod
    def of(surrogate: Surrogate, key: str, fit_obs: int, last_scratch_obs: int) -> PublishedModel:
        """The published form of a fitted surrogate."""
        state = surrogate._good_state
        if state is None:
            raise ValueError("the surrogate has not been fitted")
        return PublishedModel(
            key=key,
            fit_obs=fit_obs,
            last_scratch_obs=last_scratch_obs,
            n_params=surrogate.n_params,
            seed=surrogate._seed,
            n_fits=surrogate._n_fits,
            state=dict(state),
        )

    def surrogate(self, settings: EngineSettings) -> Surrogate:
        """Rebuild the surrogate (exactly: the same parameters, seed and fit count).

        Raises:
            ValueError, RuntimeError: The state does not fit the model's architecture, or a
                parameter is not finite.
        """
        import torch

        from optuna_dyhpo._gp import Surrogate

        s = Surrogate(self.n_params, self.seed, settings.surrogate)
        # Any training data: the engine conditions the surrogate on its rows before predicting.
        width = self.n_params + 4
        model = s._new_model(torch.zeros(1, width, dtype=torch.float64), torch.zeros(1))
        model.load_state_dict(self.state, strict=True)
        # (Buffers may be infinite: a constraint without an upper bound.)
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            raise ValueError("non-finite parameters")
        s._model = model
        s._good_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        s._n_fits = self.n_fits
        return s


class SharedModels:
    """The engine's access to the model published in one study, for one decision.

    Args:
        settings: The engine's settings (for :func:`model_key`).
        read: Returns the attribute's value (``None``: nothing published).
        write: Publishes a value.
        lease: The study's fit lease (``_study_io.fit_lease``): while another worker fits, a
            worker without a model decides without one and a worker with a model keeps it,
            instead of all fitting nearly the same model at once. ``None``: no lease.
    """

    def __init__(
        self,
        settings: EngineSettings,
        read: Callable[[], Any],
        write: Callable[[dict[str, Any]], None],
        lease: FitLease | None = None,
    ) -> None:
        self._settings = settings
        self._read = read
        self._write = write
        self._lease = lease
        self._seen: PublishedModel | None = None

    def fitting_elsewhere(self) -> bool:
        """Whether another worker is fitting the study's model right now."""
        if self._lease is None:
            return False
        try:
            return self._lease.held_elsewhere()
        except Exception as err:  # sharing is an optimisation: a decision never fails on it
            _logger.debug(f"Could not read the fit lease ({type(err).__name__}: {err}).")
            return False

    def take_lease(self) -> None:
        """Take the study's fit lease: this worker (or its fit helper) is fitting."""
        if self._lease is not None:
            _quietly(self._lease.take, "take the fit lease")

    def release_lease(self) -> None:
        """Give the lease up (the fit is over, published or not)."""
        if self._lease is not None:
            _quietly(self._lease.release, "release the fit lease")

    @contextlib.contextmanager
    def fitting(self) -> Iterator[None]:
        """Hold the study's fit lease while this worker fits."""
        self.take_lease()
        try:
            yield
        finally:
            self.release_lease()

    def adopt(self, cache: Any, n_obs: int, dim: int) -> bool:
        """Replace the surrogate of ``cache`` (an ``_model_cache.ModelCache``) by the published one
        when that is a fit of the same model on more observations; return whether it did.

        Called only when the process would otherwise fit. Never after a failed fit (the engine
        then fits from scratch).
        """
        if cache.scratch_next:
            return False
        try:
            raw = self._read()
        except Exception as err:  # sharing is an optimisation: a decision never fails on it
            _logger.debug(f"Could not read the published model ({type(err).__name__}: {err}).")
            return False
        if raw is None:
            return False
        try:
            published = PublishedModel.from_json(raw)
        except (ValueError, TypeError, KeyError) as err:
            _logger.debug(f"Ignoring the study's published model ({err}).")
            return False
        if published.key != model_key(self._settings, cache.encoder_key, dim):
            return False
        if cache.surrogate is not None and published.fit_obs <= cache.fit_obs:
            self._seen = published
            return False
        try:
            surrogate = published.surrogate(self._settings)
        except (ValueError, RuntimeError, TypeError) as err:
            _logger.debug(f"Ignoring the study's published model ({err}).")
            return False
        self._seen = published
        cache.surrogate = surrogate
        cache.fit_obs = published.fit_obs
        cache.last_scratch_obs = published.last_scratch_obs
        cache.conditioned = None
        cache.fresh_pred = None
        _logger.debug(f"Adopted the study's model fitted on {published.fit_obs} observations.")
        return True

    def publish(self, cache: Any, dim: int) -> None:
        """Publish the surrogate of ``cache`` just fitted, unless the study already holds a
        fit of the same model on at least as many observations."""
        key = model_key(self._settings, cache.encoder_key, dim)
        seen = self._seen  # a usable fit of this model that the study held just before
        if seen is not None and seen.key == key and seen.fit_obs >= cache.fit_obs:
            return
        try:
            value = PublishedModel.of(
                cache.surrogate, key, cache.fit_obs, cache.last_scratch_obs
            ).to_json()
            if len(json.dumps(value)) > MAX_CHARS:
                _logger.debug("The fitted model is too large to publish.")
                return
            self._write(value)
        except Exception as err:  # sharing is an optimisation: a decision never fails on it
            _logger.debug(f"Could not publish the fitted model ({type(err).__name__}: {err}).")


def _quietly(action: Callable[[], None], what: str) -> None:
    try:
        action()
    except Exception as err:  # sharing is an optimisation: a decision never fails on it
        _logger.debug(f"Could not {what} ({type(err).__name__}: {err}).")
