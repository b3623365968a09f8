"""Argument checks shared by the public classes: messages name the parameter, what is
allowed, and what was received."""

from __future__ import annotations


def check_int(name: str, value: object, minimum: int, extra: str = "") -> int:
    """``value`` if it is an integer (not a bool) >= ``minimum``, else a ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}{extra}, but got {value!r} "
            f"({type(value).__name__})."
        )
    return value


def check_bool(name: str, value: object) -> bool:
    """``value`` if it is a bool, else a ``ValueError``."""
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be True or False, but got {value!r}.")
    return value
