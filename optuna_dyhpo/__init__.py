"""DyHPO for Optuna: a learning-curve-aware multi-fidelity sampler with a freeze-thaw pruner.

``import optuna_dyhpo`` is light: torch and gpytorch are imported on the first decision.
"""

from __future__ import annotations

from optuna_dyhpo._budget import StopAfterEpochs
from optuna_dyhpo._budget import epochs_spent
from optuna_dyhpo._cleanup import load_checkpoint
from optuna_dyhpo._cleanup import remove_all_checkpoints
from optuna_dyhpo._cleanup import remove_checkpoints
from optuna_dyhpo._dashboard import DashboardUpdater
from optuna_dyhpo._incumbent import BestConfiguration
from optuna_dyhpo._incumbent import best_configuration
from optuna_dyhpo._pruner import DyHPOPruner
from optuna_dyhpo._resume import TrialResume
from optuna_dyhpo._sampler import DyHPOSampler
from optuna_dyhpo._state import Configuration
from optuna_dyhpo._state import get_configurations
from optuna_dyhpo._tuner import Tuner
from optuna_dyhpo._warnings import CheckpointError
from optuna_dyhpo._warnings import DyHPOWarning

__version__ = "0.1.0"

__all__ = [
    "BestConfiguration",
    "CheckpointError",
    "Configuration",
    "DashboardUpdater",
    "DyHPOPruner",
    "DyHPOSampler",
    "DyHPOWarning",
    "StopAfterEpochs",
    "TrialResume",
    "Tuner",
    "best_configuration",
    "epochs_spent",
    "get_configurations",
    "load_checkpoint",
    "remove_all_checkpoints",
    "remove_checkpoints",
]
