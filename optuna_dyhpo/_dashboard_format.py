"""Writing a note and plotly figures in optuna-dashboard's storage format, without importing it.

optuna-dashboard keeps a study's note and its saved plotly figures in study system attributes:

* note: ``"dashboard:note_ver"`` (an int, incremented on every save) and the Markdown body in
  chunks ``"dashboard:note_str:0"``, ``"dashboard:note_str:1"``, ...;
* figure ``<id>``: its JSON in chunks ``"dashboard:plot_data:<id>:0"``, ``...:1``, ...

It reads a value back by joining chunks ``0, 1, ...``; a chunk left over from a longer earlier
version is blanked (``""``). ``optuna_dashboard.save_note`` and ``save_plotly_graph_object``
write exactly this, but importing ``optuna_dashboard`` takes about 2 s (it imports scikit-learn)
and it writes figures in 2,045-character chunks, one storage transaction each (about 250 for the
three DyHPO plots of a 300-epoch study). Here a figure is written in chunks of at most
:data:`FIGURE_CHUNK` characters once JSON-encoded (as storages store them), so each fits
MySQL's 64 KiB ``TEXT`` column: about 10 writes instead of 250. ``tests/test_dashboard.py``
reads what is written here back with optuna-dashboard's own readers, so a change of format fails
the tests.
"""

from __future__ import annotations

import json
from typing import Any

import optuna

NOTE_VERSION_KEY = "dashboard:note_ver"
NOTE_PREFIX = "dashboard:note_str:"
NOTE_CHUNK = 2045  # optuna-dashboard's own chunk size (it also writes notes edited in the UI)
PLOT_PREFIX = "dashboard:plot_data:"
FIGURE_CHUNK = 60_000  # characters per chunk, JSON-encoded: under MySQL's 65,535-byte TEXT


def split(text: str, size: int, max_stored: int | None = None) -> list[str]:
    """``text`` in chunks of at most ``size`` characters, each at most ``max_stored``
    characters once JSON-encoded as storages do (``json.dumps``); ``[""]`` for ``""``.

    Example:
        >>> split("abcde", 2)
        ['ab', 'cd', 'e']
        >>> split("\u00e9\u00e9\u00e9", 3, max_stored=14)  # "\\u00e9" is 6 characters stored
        ['\u00e9', '\u00e9\u00e9']
    """
    chunks: list[str] = []
    i = 0
    while i < len(text):
        n = min(size, len(text) - i)
        while max_stored is not None and n > 1 and len(json.dumps(text[i : i + n])) > max_stored:
            n //= 2
        chunks.append(text[i : i + n])
        i += n
    return chunks or [""]


def _write_chunks(
    study: optuna.Study,
    prefix: str,
    chunks: list[str],
    existing: dict[str, Any],
) -> None:
    storage, study_id = study._storage, study._study_id
    for i, chunk in enumerate(chunks):
        if existing.get(f"{prefix}{i}") != chunk:
            storage.set_study_system_attr(study_id, f"{prefix}{i}", chunk)
    old = sum(1 for k in existing if k.startswith(prefix))
    for i in range(len(chunks), old):
        if existing.get(f"{prefix}{i}"):
            storage.set_study_system_attr(study_id, f"{prefix}{i}", "")


def save_note(study: optuna.Study, body: str, existing: dict[str, Any]) -> None:
    """Replace the study's optuna-dashboard note (``optuna_dashboard.save_note``).

    Args:
        study: The study.
        body: Markdown.
        existing: The study's system attributes before this write.
    """
    version = existing.get(NOTE_VERSION_KEY, 0)
    version = version + 1 if isinstance(version, int) else 1
    study._storage.set_study_system_attr(study._study_id, NOTE_VERSION_KEY, version)
    _write_chunks(study, NOTE_PREFIX, split(body, NOTE_CHUNK), existing)


def save_figure(
    study: optuna.Study, graph_object_id: str, figure_json: str, existing: dict[str, Any]
) -> None:
    """Save a plotly figure for optuna-dashboard, as ``optuna_dashboard.save_plotly_graph_object``
    does, in chunks of at most :data:`FIGURE_CHUNK` characters once JSON-encoded.

    Args:
        study: The study.
        graph_object_id: The figure's id (letters, digits, ``-``, ``_``, ``:`` and ``.``).
        figure_json: ``figure.to_json()``.
        existing: The study's system attributes before this write.
    """
    chunks = split(figure_json, FIGURE_CHUNK, FIGURE_CHUNK)
    _write_chunks(study, f"{PLOT_PREFIX}{graph_object_id}:", chunks, existing)
