"""Copy finished benchmark runs into ONE journal file, for optuna-dashboard.

Each run writes its own JournalStorage file (parallel runs never contend for a lock); this
command copies the studies of finished runs into a single file so that optuna-dashboard lists
them side by side::

    python -m benchmarks.merge --out benchmarks/out/dashboard.journal --filter lcbench-3945
    optuna-dashboard benchmarks/out/dashboard.journal

Studies already present in the target file are skipped, so the command can be rerun as more
runs finish.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import json
from pathlib import Path
import sys

from benchmarks.run import DEFAULT_OUT


def merge(out_dir: Path, target: Path, filters: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """Copy the studies of finished runs under ``out_dir`` into the journal file ``target``.

    Args:
        out_dir: The runner's output folder (with ``results/`` and ``studies/``).
        target: Journal file to create or extend.
        filters: Only runs whose id contains every one of these substrings.

    Returns:
        The copied and the skipped study names.
    """
    import optuna
    from optuna.storages.journal import JournalFileBackend
    from optuna.storages.journal import JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    target.parent.mkdir(parents=True, exist_ok=True)
    to_storage = JournalStorage(JournalFileBackend(str(target)))
    existing = {s.study_name for s in to_storage.get_all_studies()}
    copied: list[str] = []
    skipped: list[str] = []
    for path in sorted((out_dir / "results").glob("*.json")):
        with open(path) as f:
            data = json.load(f)
        if data.get("status") != "finished":
            continue
        name = data["storage"]["study_name"]
        if not all(flt in name for flt in filters):
            continue
        if name in existing:
            skipped.append(name)
            continue
        src = out_dir / data["storage"]["path"]
        from_storage = JournalStorage(JournalFileBackend(str(src)))
        optuna.copy_study(from_study_name=name, from_storage=from_storage, to_storage=to_storage)
        copied.append(name)
    return copied, skipped


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.merge", description=__doc__)
    p.add_argument("--runs", type=Path, default=DEFAULT_OUT, help="the runner's --out folder")
    p.add_argument(
        "--out", type=Path, default=None, help="target journal (default <runs>/dashboard.journal)"
    )
    p.add_argument("--filter", nargs="*", default=[], help="substrings run ids must contain")
    args = p.parse_args(argv)
    target = args.out or args.runs / "dashboard.journal"
    copied, skipped = merge(args.runs, target, args.filter)
    print(
        f"[benchmarks] copied {len(copied)} studies into {target} "
        f"({len(skipped)} already there); view with: optuna-dashboard {target}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
