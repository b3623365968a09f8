"""Invariants of a finished multi-worker DyHPO study, checked from its storage alone.

Used by ``benchmarks.stress`` (which re-exports :func:`check_invariants` and
:func:`recovery_figures`) and the storage tests.
"""

from __future__ import annotations

from typing import Any

from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_dyhpo._state import BUDGET_SPENT
from optuna_dyhpo._state import CHECKPOINT_KEY
from optuna_dyhpo._state import PAUSED_KEY
from optuna_dyhpo._state import SEGMENT_KEY
from optuna_dyhpo._state import SETTLED_STATES
from optuna_dyhpo._state import USER_STATUS
from optuna_dyhpo._state import build_configurations
from optuna_dyhpo._state import is_crashed
from optuna_dyhpo._state import parse_trial

WORKER_ATTR = "stress_worker"
"""User attribute naming the worker (its index) that ran a trial."""

_FINAL_STATUSES = ("paused", "completed", "stopped", "diverged", "crashed")


def _segment(t: FrozenTrial) -> dict[str, Any] | None:
    seg = t.system_attrs.get(SEGMENT_KEY)
    return seg if isinstance(seg, dict) else None


def _crashed(t: FrozenTrial) -> bool:
    # As DyHPO reads it: a worker killed after ``after_trial`` wrote the status and before
    # Optuna stored the state leaves a FAIL trial with a status other than "failed".
    status = t.user_attrs.get(USER_STATUS)
    return is_crashed(t.state, status if isinstance(status, str) else None)


def recovery_figures(trials: list[FrozenTrial]) -> dict[str, int]:
    """How kills showed in the study.

    Returns:
        ``crashed_trials`` (FAIL without ``dyhpo_status``: the worker died), of which
        ``crashed_continuations`` (a resumed segment) and ``crashed_roots``;
        ``recovered_continuations``: crashed continuations whose parent was resumed again
        afterwards by a trial of another worker; ``resumes``: live continuations.
    """
    by_number = {t.number: t for t in trials}
    crashed = [t for t in trials if _crashed(t) and _segment(t) is not None]
    cont = [t for t in crashed if _segment(t)["parent"] is not None]  # type: ignore[index]
    recovered = 0
    for c in cont:
        parent = _segment(c)["parent"]  # type: ignore[index]
        for t in by_number.values():
            seg = _segment(t)
            if (
                seg is not None
                and seg.get("parent") == parent
                and t.number > c.number
                and not _crashed(t)
                and t.user_attrs.get(WORKER_ATTR) != c.user_attrs.get(WORKER_ATTR, -1)
            ):
                recovered += 1
                break
    resumes = sum(
        1
        for t in trials
        if (s := _segment(t)) is not None and s.get("parent") is not None and not _crashed(t)
    )
    return {
        "crashed_trials": len(crashed),
        "crashed_continuations": len(cont),
        "crashed_roots": len(crashed) - len(cont),
        "recovered_continuations": recovered,
        "resumes": resumes,
    }


def check_invariants(
    storage: BaseStorage | str,
    study_name: str,
    max_budget: int,
    *,
    require_recovery: bool = False,
) -> list[str]:
    """Check a finished DyHPO study from its storage alone; return the violations.

    (a) every trial has at most one non-crashed continuation; (b) every configuration ended
    paused, completed, stopped, diverged or crashed (no trial RUNNING, and no trial WAITING that
    DyHPO had started; an enqueued trial no worker reached before the budget ran out holds no
    configuration and is left to the user), every paused
    trial is either continued or its configuration's resumable end (with a checkpoint at its
    last step), and every crashed continuation's configuration is paused again or was resumed
    afterwards; (c) each configuration's curve is contiguous: segments chain through their
    parents, a continuation starts right after its parent's last step and carries the
    parent's values unchanged, the latest live segment holds exactly steps ``1..k``, and all
    segments share the root's parameters; (d) no step beyond ``max_budget``; (e) every FAIL
    is a crash (no ``dyhpo_status``, or one written just before the kill: not ``"failed"``),
    and finished non-FAIL segments carry a status; (f) with
    ``require_recovery``, at least one crashed continuation was resumed afterwards by another
    worker.

    Args:
        storage: The storage (or a URL for :func:`make_storage`).
        study_name: The study.
        max_budget: The sampler's ``max_budget``.
        require_recovery: Also require (f).

    Returns:
        Human-readable violations; empty if every invariant holds.
    """
    from benchmarks.stress import dispose_storage
    from benchmarks.stress import make_storage

    own_storage = isinstance(storage, str)
    st = make_storage(storage, heartbeat=False) if isinstance(storage, str) else storage
    try:
        study_id = st.get_study_id_from_name(study_name)
        trials = st.get_all_trials(study_id, deepcopy=False)
    finally:
        if own_storage:
            dispose_storage(st)
    return _check(trials, max_budget, require_recovery)


def _check(trials: list[FrozenTrial], max_budget: int, require_recovery: bool) -> list[str]:
    errors: list[str] = []
    by_number = {t.number: t for t in trials}
    segs = {t.number: s for t in trials if (s := _segment(t)) is not None}

    # States, (e) failures and statuses.
    for t in trials:
        if t.state == TrialState.RUNNING or (t.state == TrialState.WAITING and t.number in segs):
            errors.append(f"(b) trial {t.number} is still {t.state.name}")
        status = t.user_attrs.get(USER_STATUS)
        # FAIL with the status of a finished objective: killed after DyHPO's after_trial and
        # before Optuna stored the state (a kill too; DyHPO counts it as that status).
        if t.state == TrialState.FAIL and status is not None and status not in SETTLED_STATES:
            errors.append(f"(e) trial {t.number} FAILED with dyhpo_status={status!r} (not a kill)")
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.number in segs:
            if status is None:
                errors.append(f"(e) finished trial {t.number} ({t.state.name}) has no status")
        if (
            t.state.is_finished()
            and t.number not in segs
            and t.state != TrialState.FAIL
            and status != BUDGET_SPENT
        ):
            errors.append(f"trial {t.number} ({t.state.name}) was not started by DyHPO")

    # (a) at most one live continuation per trial.
    live_children: dict[int, list[int]] = {}
    for n, s in segs.items():
        if s.get("parent") is not None and not _crashed(by_number[n]):
            live_children.setdefault(int(s["parent"]), []).append(n)
    for parent, kids in sorted(live_children.items()):
        if len(kids) > 1:
            errors.append(f"(a) trial {parent} was resumed {len(kids)} times: trials {kids}")

    # (d) budget.
    for t in trials:
        if t.intermediate_values and max(t.intermediate_values) > max_budget:
            errors.append(
                f"(d) trial {t.number} reported step {max(t.intermediate_values)} "
                f"> max_budget {max_budget}"
            )

    # (c) per configuration.
    by_config: dict[int, list[int]] = {}
    for n, s in segs.items():
        by_config.setdefault(int(s["config"]), []).append(n)
    for cid, numbers in sorted(by_config.items()):
        root = by_number.get(cid)
        if root is None or cid not in segs or segs[cid].get("parent") is not None:
            errors.append(f"(c) configuration {cid} has no root trial {cid}")
            continue
        if int(segs[cid]["start"]) != 1:
            errors.append(f"(c) root trial {cid} starts at {segs[cid]['start']}")
        for n in numbers:
            params = by_number[n].params
            if params and root.params and params != root.params:
                errors.append(f"(c) trial {n} of configuration {cid} has other params")
        live = sorted((n for n in numbers if not _crashed(by_number[n])), key=lambda n: n)
        for n in live:
            s, t = segs[n], by_number[n]
            if s.get("parent") is None:
                if n != cid:
                    errors.append(f"(c) trial {n} of configuration {cid} has no parent")
                continue
            p = int(s["parent"])
            pt = by_number.get(p)
            if pt is None or p not in segs or int(segs[p]["config"]) != cid:
                errors.append(f"(c) trial {n} continues {p}, not a trial of configuration {cid}")
                continue
            settled = SETTLED_STATES.get(pt.user_attrs.get(USER_STATUS, ""), pt.state)
            if _crashed(pt) or TrialState.PRUNED not in (pt.state, settled):
                errors.append(f"(c) trial {n} continues trial {p} in state {pt.state.name}")
            p_steps = sorted(pt.intermediate_values)
            if p_steps != list(range(1, len(p_steps) + 1)):
                errors.append(f"(c) parent trial {p} has steps {p_steps}")
            start = int(s["start"])
            if start != len(p_steps) + 1 or pt.system_attrs.get(PAUSED_KEY) != start - 1:
                errors.append(
                    f"(c) trial {n} starts at {start}; its parent {p} has steps 1..{len(p_steps)}"
                    f" and paused at {pt.system_attrs.get(PAUSED_KEY)}"
                )
            copied = {k: v for k, v in t.intermediate_values.items() if k < start}
            if copied != dict(pt.intermediate_values):
                errors.append(f"(c) trial {n} does not carry parent {p}'s values unchanged")
        if live:
            latest = by_number[max(live, key=lambda n: (int(segs[n]["start"]), n))]
            steps = sorted(latest.intermediate_values)
            if steps != list(range(1, len(steps) + 1)):
                errors.append(
                    f"(c) configuration {cid}: latest trial {latest.number} has steps {steps}"
                )

    # (b) configurations and paused trials.
    segments = [seg for seg in (parse_trial(t) for t in trials) if seg is not None]
    configs = build_configurations(
        [seg for seg in segments if seg.state != TrialState.WAITING], max_budget
    )
    for cid, c in sorted(configs.items()):
        if c.status not in _FINAL_STATUSES:
            errors.append(f"(b) configuration {cid} ended {c.status!r}")
        if c.last_step > max_budget:
            errors.append(f"(d) configuration {cid} has {c.last_step} steps")
    for n, s in segs.items():
        t = by_number[n]
        if t.user_attrs.get(USER_STATUS) != "paused" or _crashed(t):
            continue
        ckpt = t.system_attrs.get(CHECKPOINT_KEY)
        last = max(t.intermediate_values, default=0)
        if not isinstance(ckpt, dict) or ckpt.get("step") != last:
            errors.append(f"(b) paused trial {n} has no checkpoint at step {last}: {ckpt!r}")
        c = configs[int(s["config"])]
        if n not in live_children and not (
            c.status == "paused" and c.last_trial_id == t._trial_id
        ):
            errors.append(
                f"(b) paused trial {n} was never resumed, yet configuration {c.config_id} is "
                f"{c.status!r} (last trial id {c.last_trial_id})"
            )
    for n, s in segs.items():
        t = by_number[n]
        if not _crashed(t) or s.get("parent") is None:
            continue
        c = configs[int(s["config"])]
        later = [m for m in c.trial_numbers if m > n and not _crashed(by_number[m])]
        if c.status != "paused" and not later:
            errors.append(
                f"(b) configuration {c.config_id} of crashed trial {n} is {c.status!r} and "
                "was not resumed afterwards"
            )

    if require_recovery and recovery_figures(trials)["recovered_continuations"] == 0:
        errors.append("(f) no crashed continuation was resumed afterwards by another worker")
    return errors
