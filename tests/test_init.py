"""The package itself."""

from __future__ import annotations

import subprocess
import sys


def test_import_is_light() -> None:
    code = "import sys, optuna_dyhpo; assert 'torch' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
