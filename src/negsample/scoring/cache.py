"""A persistent judgement cache: one sqlite3 file, safe with threads and against kills.

Each answer is committed as soon as it arrives (WAL journal), so a run that is killed keeps
every judgement it had received, and a rerun or a resumed run asks only for the rest. Only
valid labels are stored: a failed or malformed answer is counted by the judge, never
cached, and asked again next time.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._files import ensure_file
from ..errors import InputError
from .base import LABELS, JudgeItem, Label

__all__ = ["JudgementCache"]

_SCHEMA = 1
_CHUNK = 500  # keys per SELECT (sqlite's variable limit is 999 on old builds)


class JudgementCache:
    """Judgements keyed by (model, prompt version, query, positive, document) texts.

    Parameters
    ----------
    path : the sqlite file (created, with its folder, if absent), or ``":memory:"``.

    Examples
    --------
    >>> from negsample.scoring import JudgementCache, JudgeItem
    >>> cache = JudgementCache(":memory:")
    >>> key = cache.key("my-model", "v1", JudgeItem("q", "relevant passage", "candidate"))
    >>> cache.put(key, "HN", model="my-model", prompt_version="v1")
    >>> cache.get_many([key]) == {key: "HN"}, len(cache)
    (True, 1)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            p = Path(self.path)
            if p.exists() and not p.is_file():
                raise InputError(f"judgement cache {p}: not a file")
            ensure_file(p)  # its folders and the file, with the one mode (sqlite's follow it)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=60.0, check_same_thread=False, isolation_level=None
            )
            if self.path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS negsample_meta (name TEXT PRIMARY KEY, value TEXT)"
            )
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS judgements (key TEXT PRIMARY KEY, label TEXT NOT NULL,"
                " model TEXT, prompt_version TEXT, answer TEXT, created REAL)"
            )
            row = self._conn.execute(
                "SELECT value FROM negsample_meta WHERE name = 'schema'"
            ).fetchone()
            if row is None:
                self._conn.execute(
                    "INSERT OR IGNORE INTO negsample_meta VALUES ('schema', ?)", (str(_SCHEMA),)
                )
            elif row[0] != str(_SCHEMA):
                raise InputError(
                    f"judgement cache {self.path}: schema {row[0]}, this version reads {_SCHEMA}"
                )
        except sqlite3.DatabaseError as exc:
            raise InputError(
                f"judgement cache {self.path}: not a usable sqlite file ({exc})"
            ) from exc

    @staticmethod
    def key(model: str, prompt_version: str, item: JudgeItem) -> str:
        """The cache key: a SHA-256 of the model name, the prompt version and the three
        texts (so no text is stored in the key, and any change asks again)."""
        blob = json.dumps([model, prompt_version, *item], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def get_many(self, keys: Iterable[str]) -> dict[str, Label]:
        """The cached labels of ``keys`` (those absent are left out)."""
        ks = list(dict.fromkeys(keys))
        out: dict[str, Label] = {}
        with self._lock:
            for s in range(0, len(ks), _CHUNK):
                part = ks[s : s + _CHUNK]
                q = f"SELECT key, label FROM judgements WHERE key IN ({','.join('?' * len(part))})"
                for k, label in self._conn.execute(q, part):
                    if label in LABELS:
                        out[k] = label
        return out

    def put(
        self,
        key: str,
        label: Label,
        *,
        model: str = "",
        prompt_version: str = "",
        answer: str | None = None,
    ) -> None:
        """Store one valid label (committed at once)."""
        if label not in LABELS:
            raise InputError(f"only the labels {LABELS} are cached, got {label!r}")
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO judgements VALUES (?, ?, ?, ?, ?, ?)",
                (key, label, model, prompt_version, answer, time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM judgements").fetchone()[0])

    def counts(self) -> dict[str, int]:
        """Cached judgements per label."""
        with self._lock:
            rows = self._conn.execute("SELECT label, COUNT(*) FROM judgements GROUP BY label")
            return {str(k): int(v) for k, v in rows}

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> JudgementCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JudgementCache({self.path!r})"
