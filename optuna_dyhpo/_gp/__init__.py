"""Pure tensor math behind DyHPO: the deep-kernel GP surrogate, its rows and the acquisition.

Nothing in this package knows about Optuna studies or trials; everything takes and returns
``torch.float64`` tensors.
"""

from __future__ import annotations

from optuna_dyhpo._gp._acquisition import LOOKAHEAD_FACTORS
from optuna_dyhpo._gp._acquisition import best_over_budgets
from optuna_dyhpo._gp._acquisition import distinct_budgets
from optuna_dyhpo._gp._acquisition import log_expected_improvement
from optuna_dyhpo._gp._acquisition import lookahead_budgets
from optuna_dyhpo._gp._data import CurveTable
from optuna_dyhpo._gp._data import SurrogateInputs
from optuna_dyhpo._gp._data import normalise_targets
from optuna_dyhpo._gp._model import FitError
from optuna_dyhpo._gp._model import Surrogate
from optuna_dyhpo._gp._model import SurrogateSettings
from optuna_dyhpo._gp._threads import small_math

__all__ = [
    "LOOKAHEAD_FACTORS",
    "CurveTable",
    "FitError",
    "Surrogate",
    "SurrogateInputs",
    "SurrogateSettings",
    "best_over_budgets",
    "distinct_budgets",
    "log_expected_improvement",
    "lookahead_budgets",
    "normalise_targets",
    "small_math",
]
