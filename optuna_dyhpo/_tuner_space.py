"""ConfigSpace for the HPO4DL-compatible Tuner: mapping to Optuna, conditions, description."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any
import warnings

from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution

from optuna_dyhpo._warnings import DyHPOWarning

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution


class _Param:
    """One ConfigSpace hyperparameter as Optuna sees it.

    ``distribution`` is ``None`` for a constant (never suggested, always in the configuration).
    ``values`` maps the Optuna value back to the ConfigSpace value (ordinal: index -> value).
    """

    def __init__(
        self,
        name: str,
        distribution: BaseDistribution | None,
        constant: Any = None,
        values: tuple[Any, ...] | None = None,
    ) -> None:
        self.name = name
        self.distribution = distribution
        self.constant = constant
        self.values = values

    def suggest(self, trial: optuna.Trial) -> Any:
        dist = self.distribution
        if dist is None:
            return self.constant
        if isinstance(dist, FloatDistribution):
            return trial.suggest_float(self.name, dist.low, dist.high, log=dist.log)
        if isinstance(dist, IntDistribution):
            value = trial.suggest_int(self.name, dist.low, dist.high, log=dist.log)
            return value if self.values is None else self.values[value]
        assert isinstance(dist, CategoricalDistribution)
        return trial.suggest_categorical(self.name, dist.choices)


def plain(value: Any) -> Any:
    """numpy scalars -> Python scalars (Optuna's categorical choices must be plain)."""
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, (str, bytes)) else value


def _check_choice(hp_name: str, kind: str, value: Any) -> Any:
    value = plain(value)
    if value is not None and not isinstance(value, (bool, int, float, str)):
        raise ValueError(
            f"{kind} hyperparameter '{hp_name}' has the choice {value!r} of type "
            f"{type(value).__name__}; Optuna supports None, bool, int, float and str choices."
        )
    return value


def configspace_to_optuna(configuration_space: Any) -> dict[str, _Param]:
    """Map a ``ConfigSpace.ConfigurationSpace`` to Optuna, hyperparameter by hyperparameter.

    * ``UniformFloatHyperparameter`` -> ``FloatDistribution`` (``log`` kept),
    * ``UniformIntegerHyperparameter`` -> ``IntDistribution`` (``log`` kept),
    * ``CategoricalHyperparameter`` -> ``CategoricalDistribution`` (``weights`` are ignored,
      with a warning: DyHPO samples the space uniformly),
    * ``OrdinalHyperparameter`` -> ``IntDistribution`` over the index of its ``sequence`` (so
      the surrogate sees the order); the objective receives the value itself,
    * ``Constant`` -> not suggested; its value is always in the configuration.

    Conditions are honoured when trials suggest parameters (only active hyperparameters are
    suggested). Forbidden clauses and other hyperparameter types (normal, beta) raise a
    ``ValueError`` naming the unsupported feature.

    Returns:
        Parameters in ConfigSpace's (topological) order.
    """
    import ConfigSpace as CS

    if not isinstance(configuration_space, CS.ConfigurationSpace):
        raise ValueError(
            "`configuration_space` must be a ConfigSpace.ConfigurationSpace, but got "
            f"{type(configuration_space).__name__}."
        )
    if list(configuration_space.forbidden_clauses):
        raise ValueError(
            "`configuration_space` has forbidden clauses "
            f"({len(list(configuration_space.forbidden_clauses))}); the DyHPO Tuner supports "
            "conditions but not forbidden clauses. Remove them, or reject such configurations "
            "in the objective function."
        )
    out: dict[str, _Param] = {}
    for hp in configuration_space.values():
        name = hp.name
        if isinstance(hp, CS.UniformFloatHyperparameter):
            out[name] = _Param(
                name, FloatDistribution(float(hp.lower), float(hp.upper), log=bool(hp.log))
            )
        elif isinstance(hp, CS.UniformIntegerHyperparameter):
            out[name] = _Param(
                name, IntDistribution(int(hp.lower), int(hp.upper), log=bool(hp.log))
            )
        elif isinstance(hp, CS.CategoricalHyperparameter):
            weights = getattr(hp, "weights", None)
            if weights is not None and len(set(weights)) > 1:
                warnings.warn(
                    f"Categorical hyperparameter '{name}' has weights {tuple(weights)}; the "
                    "DyHPO Tuner ignores them (choices are sampled uniformly).",
                    DyHPOWarning,
                    stacklevel=3,
                )
            choices = tuple(_check_choice(name, "Categorical", c) for c in hp.choices)
            out[name] = _Param(name, CategoricalDistribution(choices))
        elif isinstance(hp, CS.OrdinalHyperparameter):
            sequence = tuple(plain(v) for v in hp.sequence)
            out[name] = _Param(name, IntDistribution(0, len(sequence) - 1), values=sequence)
        elif isinstance(hp, CS.Constant):
            out[name] = _Param(name, None, constant=plain(hp.value))
        else:
            raise ValueError(
                f"Hyperparameter '{name}' is a {type(hp).__name__}; the DyHPO Tuner supports "
                "UniformFloatHyperparameter, UniformIntegerHyperparameter, "
                "CategoricalHyperparameter, OrdinalHyperparameter and Constant."
            )
    return out


def is_active(configuration_space: Any, name: str, values: Mapping[str, Any]) -> bool:
    """Whether hyperparameter ``name`` is active given the values of earlier ones.

    ``values`` holds the active hyperparameters only; ConfigSpace orders hyperparameters
    topologically, so every parent is decided before its children.
    """
    return all(
        _satisfied(condition, values)
        for condition in configuration_space.parent_conditions_of.get(name, [])
    )


def _satisfied(condition: Any, values: Mapping[str, Any]) -> bool:
    """A condition or conjunction; a condition on an inactive parent is not satisfied."""
    import ConfigSpace as CS

    if isinstance(condition, CS.AndConjunction):
        return all(_satisfied(c, values) for c in condition.components)
    if isinstance(condition, CS.OrConjunction):
        return any(_satisfied(c, values) for c in condition.components)
    if condition.parent.name not in values:
        return False
    return bool(condition.satisfied_by_value(dict(values)))


def describe_space(configuration_space: Any) -> list[dict[str, Any]]:
    """The content of HPO4DL's ``configuration_space.json``: one record per hyperparameter.

    Each record has HPO4DL's fields ``name``, ``type`` (the ConfigSpace class name),
    ``default``, ``values`` (the choices of a categorical, the sequence of an ordinal, else
    ``None``), ``bounds`` (``[lower, upper]`` of a numeric one, else ``None``) and ``log``
    (``None`` where it does not apply).
    """
    out: list[dict[str, Any]] = []
    for hp in configuration_space.values():
        discrete = getattr(hp, "choices", None)
        if discrete is None:
            discrete = getattr(hp, "sequence", None)
        has_bounds = hasattr(hp, "lower") and hasattr(hp, "upper")
        out.append(
            {
                "name": hp.name,
                "type": type(hp).__name__,
                "default": plain(hp.default_value),
                "values": None if discrete is None else [plain(v) for v in discrete],
                "bounds": [plain(hp.lower), plain(hp.upper)] if has_bounds else None,
                "log": bool(hp.log) if hasattr(hp, "log") else None,
            }
        )
    return out
