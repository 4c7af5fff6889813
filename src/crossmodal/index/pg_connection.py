"""Talking to a PostgreSQL database: its URL as shown (no password), connections that fail
in one line, vectors in pgvector's text form, and the probe a web server's page cache asks.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import numpy as np

from crossmodal.errors import CollectionError

__all__ = ["ChangeProbe", "DatabasePath", "connect", "first_line", "shown_url", "vector_text"]


def shown_url(url: str) -> str:
    """The database URL without its password, for messages."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(url)
    except Exception:  # a malformed URL is reported by connect itself
        return url.split("@")[-1]
    host = parts.get("host") or "localhost"
    port = f":{parts['port']}" if parts.get("port") else ""
    user = f"{parts['user']}@" if parts.get("user") else ""
    return f"postgresql://{user}{host}{port}/{parts.get('dbname') or ''}"


#: the concrete Path class of this platform (PosixPath, WindowsPath), to derive from
_PathClass: Any = type(Path())


class DatabasePath(_PathClass):
    """`Collection.path` of a collection in a database: a `Path` for the code that takes one
    (it names no file: nothing is written there), printed as the database's URL."""

    url = ""

    def __str__(self) -> str:
        return self.url or str(super().__str__())


def vector_text(vector: np.ndarray) -> str:
    """A float32 vector in pgvector's text form; float64 repr, so it reads back bit-exact."""
    values = np.asarray(vector, np.float32).astype(np.float64).tolist()
    return "[" + ",".join(map(repr, values)) + "]"


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def connect(url: str, shown: str, connect_timeout: int = 10) -> Any:
    """An autocommit connection (`psycopg.Connection`), or one line saying why there is none."""
    try:
        import psycopg
    except ImportError:
        raise CollectionError(
            "a collection in PostgreSQL (--db) needs the psycopg client: "
            "pip install 'crossmodal[postgres]'"
        ) from None
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout)
    except psycopg.Error as exc:
        raise CollectionError(f"cannot connect to database {shown}: {first_line(exc)}") from None


class ChangeProbe:
    """`change_count` read on a connection of its own; callable, thread-safe."""

    def __init__(self, url: str, shown: str) -> None:
        self.shown = shown
        self._con = connect(url, shown)
        self._lock = threading.Lock()

    def __call__(self) -> int:
        import psycopg

        with self._lock:
            try:
                row = self._con.execute("SELECT n FROM change_count").fetchone()
            except psycopg.OperationalError as exc:
                raise CollectionError(f"database {self.shown}: {first_line(exc)}") from None
        return int(row[0]) if row is not None else 0

    def close(self) -> None:
        with self._lock, contextlib.suppress(Exception):
            self._con.close()
