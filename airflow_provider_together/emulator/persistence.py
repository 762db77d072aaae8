"""
SQLite persistence for ``--state FILE``: files, jobs, the clock and the settings survive a restart.

Only mutations write (create, upload, validation result, cancel, delete, settings); reads are served from
memory, so polling costs no disk I/O even with a state file. Each record is one JSON row: the schema of a
job is the emulator's own, versioned by ``meta.schema``.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Persistence"]

_SCHEMA = 1


class Persistence:
    """
    A small key/JSON store in one SQLite file.

    :param path: the state file; its parent directory is created if needed.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # The emulator serves from one event-loop thread; autocommit keeps each mutation durable on its own.
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        for table in ("files", "jobs", "meta"):
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
        schema = self.get_meta("schema")
        if schema is None:
            self.put_meta("schema", _SCHEMA)
        elif schema != _SCHEMA:
            raise RuntimeError(f"state file {path} has schema {schema}, this emulator reads {_SCHEMA}")

    def put(self, table: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace one record."""
        # An upsert, not REPLACE: the rowid (and so the listing order) of an updated record must not change.
        self._db.execute(
            f"INSERT INTO {table} (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def delete(self, table: str, key: str) -> None:
        """Remove one record."""
        self._db.execute(f"DELETE FROM {table} WHERE key = ?", (key,))

    def load(self, table: str) -> list[dict[str, Any]]:
        """All records of a table, in insertion order."""
        rows = self._db.execute(f"SELECT value FROM {table} ORDER BY rowid").fetchall()
        return [json.loads(row[0]) for row in rows]

    def clear(self) -> None:
        """Drop every file and job (the admin reset)."""
        self._db.execute("DELETE FROM files")
        self._db.execute("DELETE FROM jobs")

    def put_meta(self, key: str, value: Any) -> None:
        """Store a setting."""
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str) -> Any:
        """Read a setting, or ``None``."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def close(self) -> None:
        """Close the database."""
        self._db.close()
