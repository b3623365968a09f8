"""Writing a note and plotly figures in optuna-dashboard's storage format, without importing it.

optuna-dashboard keeps a study's note and its saved plotly figures in study system attributes:

* note: ``"dashboard:note_ver"`` (an int, incremented on every save) and the Markdown body in
  chunks ``"dashboard:note_str:0"``, ``"dashboard:note_str:1"``, ...;
* figure ``<id>``: its JSON in chunks ``"dashboard:plot_data:<id>:0"``, ``...:1``, ...

It reads a value back by joining chunks ``0, 1, ...``; a chunk left over from a longer earlier
version is blanked (``""``). ``optuna_dashboard.save_note`` and ``save_plotly_graph_object``
write exactly this, but importing ``optuna_dashboard`` takes about 2 s (it imports scikit-learn)
and it writes figures in 2,045-character chunks, one storage transaction each (about 250 for the
three DyHPO plots of a 300-epoch study). Here figures are written in chunks of
:data:`FIGURE_CHUNK` characters: a fifth of the writes, and still under MySQL's 64 KiB ``TEXT``
column even if every character were escaped. ``tests/test_dashboard.py`` reads what is written
here back with optuna-dashboard's own readers, so a change of format fails the tests.
"""

from __future__ import annotations

from typing import Any

import optuna

NOTE_VERSION_KEY = "dashboard:note_ver"
NOTE_PREFIX = "dashboard:note_str:"
NOTE_CHUNK = 2045  # optuna-dashboard's own chunk size (it also writes notes edited in the UI)
PLOT_PREFIX = "dashboard:plot_data:"
FIGURE_CHUNK = 10_000


def _write_chunks(
    study: optuna.Study, prefix: str, text: str, size: int, existing: dict[str, Any]
) -> None:
    storage, study_id = study._storage, study._study_id
    chunks = [text[i : i + size] for i in range(0, len(text), size)] or [""]
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
    _write_chunks(study, NOTE_PREFIX, body, NOTE_CHUNK, existing)


def save_figure(
    study: optuna.Study, graph_object_id: str, figure_json: str, existing: dict[str, Any]
) -> None:
    """Save a plotly figure for optuna-dashboard (``optuna_dashboard.save_plotly_graph_object``
    with ``graph_object_id``), in chunks of :data:`FIGURE_CHUNK` characters.

    Args:
        study: The study.
        graph_object_id: The figure's id (letters, digits, ``-``, ``_``, ``:`` and ``.``).
        figure_json: ``figure.to_json()``.
        existing: The study's system attributes before this write.
    """
    _write_chunks(study, f"{PLOT_PREFIX}{graph_object_id}:", figure_json, FIGURE_CHUNK, existing)
