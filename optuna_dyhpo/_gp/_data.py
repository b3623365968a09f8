from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SurrogateInputs:
    """Rows of the surrogate's input: configuration, budget, and the partial learning curve.

    Attributes:
        params: Encoded hyperparameters, shape ``(n, d)``, each feature in ``[0, 1]`` (or a
            negative sentinel for an inactive conditional parameter).
        budgets: Budget of each row divided by the maximum budget, shape ``(n,)``.
        curves: Normalised learning curve observed *before* the row's budget, left aligned and
            zero padded, shape ``(n, max_budget)``.
        masks: 1 where ``curves`` holds an observation, 0 for padding, shape ``(n, max_budget)``.
    """

    params: torch.Tensor
    budgets: torch.Tensor
    curves: torch.Tensor
    masks: torch.Tensor

    @property
    def n(self) -> int:
        return int(self.params.shape[0])

    def pack(self) -> torch.Tensor:
        """One ``(n, d + 1 + 2 * max_budget)`` tensor, the layout the feature extractor reads."""
        return torch.cat(
            [self.params, self.budgets.unsqueeze(-1), self.curves, self.masks], dim=-1
        )

    def select(self, index: torch.Tensor) -> SurrogateInputs:
        return SurrogateInputs(
            self.params[index], self.budgets[index], self.curves[index], self.masks[index]
        )

    @staticmethod
    def build(
        params: torch.Tensor,
        budgets: Sequence[int],
        prefixes: Sequence[Sequence[float]],
        max_budget: int,
    ) -> SurrogateInputs:
        """Assemble rows from per-row encoded params, integer budgets and curve prefixes.

        Args:
            params: Encoded hyperparameters, shape ``(n, d)``.
            budgets: Budget (1-based step) of each row.
            prefixes: For each row, the normalised curve values observed before its budget.
            max_budget: Largest budget; the curve width.
        """
        n = len(budgets)
        curves = torch.zeros((n, max_budget), dtype=torch.float64)
        masks = torch.zeros((n, max_budget), dtype=torch.float64)
        for i, prefix in enumerate(prefixes):
            k = min(len(prefix), max_budget)
            if k:
                curves[i, :k] = torch.as_tensor(prefix[:k], dtype=torch.float64)
                masks[i, :k] = 1.0
        b = torch.as_tensor(list(budgets), dtype=torch.float64) / float(max_budget)
        return SurrogateInputs(params.to(torch.float64), b, curves, masks)


def normalise_targets(values: torch.Tensor) -> tuple[float, float]:
    """Location and scale that map ``values`` to zero mean and unit variance.

    Returns ``(mean, std)``; ``std`` falls back to 1 when the values are (nearly) constant so
    that the normalisation never divides by zero.
    """
    if values.numel() == 0:
        return 0.0, 1.0
    mean = float(values.mean())
    std = float(values.std(unbiased=False)) if values.numel() > 1 else 0.0
    if not std > 1e-12:
        std = 1.0
    return mean, std
