"""Where a Tuner run keeps its files, in HPO4DL's layout, and its checkpoint bookkeeping.

One run is one experiment, ``experiment_<YYYYmmdd-HHMMSS>``:

* ``<output_path>/<experiment>/``: the results (``hpo4dl_results.csv``,
  ``configuration_space.json``), the Optuna study (``dyhpo.db``) and, at the end,
  ``checkpoints/``: a copy of the best configuration's checkpoint folder;
* ``<storage_path>/hpo4dl/<experiment>/trial_<configuration_id>/``: the folder of each
  configuration; the objective function saves its state at ``.../last``. Deleted at the end.

Nothing of another experiment is ever touched: a second run gets a new folder.
"""

from __future__ import annotations

from datetime import datetime
import itertools
import json
from pathlib import Path
import shutil
from typing import Any
import warnings

from optuna_dyhpo._logging import get_logger
from optuna_dyhpo._warnings import DyHPOWarning

_logger = get_logger("tuner")

STORAGE_DIR = "hpo4dl"
BEST_CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_NAME = "last"
SPACE_FILE = "configuration_space.json"
DATABASE_FILE = "dyhpo.db"


class ExperimentFiles:
    """The folders of one experiment; creating it reserves a new experiment folder.

    The experiment is named ``experiment_<YYYYmmdd-HHMMSS>`` after the local time, as in
    HPO4DL; if that folder (or its storage folder) exists already, e.g. two tuners created
    within the same second, ``_1``, ``_2``, ... is appended. Both folders are created at once,
    so two tuners never share one.

    Args:
        output_root: The ``output_path`` given to the Tuner.
        storage_root: The ``storage_path`` given to the Tuner; ``None`` for ``output_root``.
    """

    def __init__(self, output_root: Path, storage_root: Path | None) -> None:
        self.storage_path = (output_root if storage_root is None else storage_root) / STORAGE_DIR
        output_root.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        self.storage_path.mkdir(parents=True, exist_ok=True)
        for n in itertools.count():
            name = f"experiment_{stamp}" if n == 0 else f"experiment_{stamp}_{n}"
            try:
                (self.storage_path / name).mkdir()
            except FileExistsError:
                continue
            try:
                (output_root / name).mkdir()
            except FileExistsError:
                (self.storage_path / name).rmdir()
                continue
            break
        self.experiment_name = name
        self.output_path = output_root / name

    @property
    def checkpoint_root(self) -> Path:
        """The experiment's storage folder, holding one folder per configuration."""
        return self.storage_path / self.experiment_name

    @property
    def best_checkpoint_path(self) -> Path:
        return self.output_path / BEST_CHECKPOINT_DIR

    @property
    def database_path(self) -> Path:
        return self.output_path / DATABASE_FILE

    def checkpoint_dir(self, configuration_id: int) -> Path:
        """The folder of a configuration (its id is its first trial's number)."""
        return self.checkpoint_root / f"trial_{configuration_id}"

    def checkpoint_path(self, configuration_id: int) -> str:
        """``checkpoint_path`` for the objective function; its folder is created."""
        directory = self.checkpoint_dir(configuration_id)
        directory.mkdir(parents=True, exist_ok=True)
        return str(directory / CHECKPOINT_NAME)

    def write_space(self, description: list[dict[str, Any]]) -> None:
        with (self.output_path / SPACE_FILE).open("w") as f:
            json.dump(description, f, indent=4)

    def save_best(self, configuration_id: int) -> None:
        """Copy the folder of ``configuration_id`` to ``<experiment>/checkpoints/``.

        The copy replaces an earlier one of this experiment. If the folder is gone (deleted at
        the end of an earlier :meth:`Tuner.run`), an existing copy is kept.
        """
        source = self.checkpoint_dir(configuration_id)
        target = self.best_checkpoint_path
        if not source.is_dir():
            if not target.exists():
                warnings.warn(
                    f"The checkpoint folder of the best configuration {configuration_id} "
                    f"({source}) does not exist; {target} is not written.",
                    DyHPOWarning,
                    stacklevel=3,
                )
            return
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target)
        if not any(target.iterdir()):
            _logger.info(f"The best configuration {configuration_id} saved no checkpoint.")

    def remove_checkpoints(self) -> None:
        """Delete the experiment's storage folder (and ``hpo4dl/`` if nothing else is in it)."""
        shutil.rmtree(self.checkpoint_root, ignore_errors=True)
        try:
            self.storage_path.rmdir()
        except OSError:  # missing, or holds other experiments
            pass
