from __future__ import annotations

from .postgres import postgres_cluster
from .postgres import postgres_url

__all__ = ["postgres_cluster", "postgres_url"]
