from __future__ import annotations

import numpy as np

from benchmarks.fresh_choice import probe


def test_the_probe_compares_qualities_of_the_same_decisions() -> None:
    rows = probe("noisy:e6", seed=0, every=1)
    assert rows.ndim == 2 and rows.shape[1] == 3 and len(rows) > 0
    # Qualities of configurations of the space: between chance (0) and the optimum (1).
    assert np.all((rows >= -1e-9) & (rows <= 1 + 1e-9))
