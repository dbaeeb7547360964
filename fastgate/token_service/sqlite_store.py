"""The token service's store in an embedded SQLite file (no `redis:` configured).

Invariant: sqlite3 never runs on the event loop: every call goes to one dedicated worker thread
(one connection, so no cross-thread use), and each operation is one IMMEDIATE transaction, so
workers of one node sharing the file (WAL mode) see single-use records used exactly once.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (kid TEXT PRIMARY KEY, parent TEXT UNIQUE, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (kind TEXT, key TEXT, data TEXT NOT NULL, used INTEGER NOT NULL,
    expires REAL NOT NULL, PRIMARY KEY (kind, key));
CREATE TABLE IF NOT EXISTS family_jti (family TEXT, jti TEXT, exp REAL, expires REAL,
    PRIMARY KEY (family, jti));
CREATE TABLE IF NOT EXISTS family_revoked (family TEXT PRIMARY KEY, expires REAL);
CREATE TABLE IF NOT EXISTS once (key TEXT PRIMARY KEY, expires REAL);
CREATE TABLE IF NOT EXISTS revoked (id INTEGER PRIMARY KEY AUTOINCREMENT, jti TEXT, exp REAL);
"""
CLEAN_EVERY = 500  # writes between sweeps of expired rows
BUSY_TIMEOUT = 5.0


class SqliteStore:
    def __init__(self, path: Path, clock=time.time) -> None:
        self.path = path
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastgate-sqlite")
        self._db: sqlite3.Connection | None = None
        self._writes = 0

    # ---------------------------------------------------------------- plumbing
    async def _call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _open(self) -> None:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None,
                             check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        try:
            self.path.chmod(0o600)
        except OSError:
            pass
        self._db = db

    def _tx(self, fn, *args):
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            out = fn(db, *args)
            self._writes += 1
            if self._writes % CLEAN_EVERY == 0:
                self._clean(db)
            db.execute("COMMIT")
            return out
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _clean(self, db: sqlite3.Connection) -> None:
        now = self.clock()
        for table in ("records", "family_jti", "family_revoked", "once"):
            db.execute(f"DELETE FROM {table} WHERE expires < ?", (now,))  # noqa: S608 - fixed names
        db.execute("DELETE FROM revoked WHERE exp < ?", (now - 300,))

    async def start(self) -> None:
        if self._db is None:
            await self._call(self._open)

    async def close(self) -> None:
        if self._db is not None:
            await self._call(self._db.close)
            self._db = None
        self._pool.shutdown(wait=False)

    # ---------------------------------------------------------------- keys
    async def keys(self) -> list[dict[str, Any]]:
        rows = await self._call(lambda: self._db.execute("SELECT data FROM keys").fetchall())
        return [json.loads(r[0]) for r in rows]

    async def add_key(self, rec: dict[str, Any], parent: str) -> bool:
        def run(db):
            cur = db.execute("INSERT OR IGNORE INTO keys (kid, parent, data) VALUES (?, ?, ?)",
                             (rec["kid"], parent, json.dumps(rec)))
            return cur.rowcount == 1

        return await self._call(self._tx, run)

    # ---------------------------------------------------------------- single-use records
    async def put(self, kind: str, key: str, data: dict[str, Any], ttl: float) -> None:
        def run(db):
            db.execute("INSERT OR REPLACE INTO records VALUES (?, ?, ?, 0, ?)",
                       (kind, key, json.dumps(data), self.clock() + ttl))

        await self._call(self._tx, run)

    async def take(self, kind: str, key: str) -> tuple[dict[str, Any] | None, bool]:
        def run(db):
            row = db.execute("SELECT data, used FROM records WHERE kind = ? AND key = ? AND expires >= ?",
                             (kind, key, self.clock())).fetchone()
            if row is None:
                return None, False
            db.execute("UPDATE records SET used = used + 1 WHERE kind = ? AND key = ?", (kind, key))
            return json.loads(row[0]), row[1] == 0

        return await self._call(self._tx, run)

    async def peek(self, kind: str, key: str) -> tuple[dict[str, Any] | None, bool]:
        def run():
            row = self._db.execute(
                "SELECT data, used FROM records WHERE kind = ? AND key = ? AND expires >= ?",
                (kind, key, self.clock())).fetchone()
            return (None, False) if row is None else (json.loads(row[0]), row[1] > 0)

        return await self._call(run)

    # ---------------------------------------------------------------- families
    async def add_to_family(self, family: str, jti: str, exp: float, ttl: float) -> None:
        def run(db):
            db.execute("INSERT OR REPLACE INTO family_jti VALUES (?, ?, ?, ?)",
                       (family, jti, exp, self.clock() + ttl))

        await self._call(self._tx, run)

    async def revoke_family(self, family: str, ttl: float) -> list[tuple[str, float]]:
        def run(db):
            db.execute("INSERT OR REPLACE INTO family_revoked VALUES (?, ?)", (family, self.clock() + ttl))
            rows = db.execute("SELECT jti, exp FROM family_jti WHERE family = ?", (family,)).fetchall()
            return [(j, float(e)) for j, e in rows]

        return await self._call(self._tx, run)

    async def family_revoked(self, family: str) -> bool:
        def run():
            row = self._db.execute("SELECT 1 FROM family_revoked WHERE family = ? AND expires >= ?",
                                   (family, self.clock())).fetchone()
            return row is not None

        return await self._call(run)

    # ---------------------------------------------------------------- replay markers
    async def once(self, key: str, ttl: float) -> bool:
        def run(db):
            db.execute("DELETE FROM once WHERE key = ? AND expires < ?", (key, self.clock()))
            cur = db.execute("INSERT OR IGNORE INTO once VALUES (?, ?)", (key, self.clock() + ttl))
            return cur.rowcount == 1

        return await self._call(self._tx, run)

    # ---------------------------------------------------------------- revoked jti
    async def revoke_jti(self, jti: str, exp: float) -> None:
        def run(db):
            db.execute("INSERT INTO revoked (jti, exp) VALUES (?, ?)", (jti, exp))

        await self._call(self._tx, run)

    async def revoked_since(self, cursor: Any) -> tuple[list[tuple[str, float]], Any]:
        def run():
            rows = self._db.execute("SELECT id, jti, exp FROM revoked WHERE id > ? ORDER BY id",
                                    (cursor or 0,)).fetchall()
            last = rows[-1][0] if rows else (cursor or 0)
            return [(j, float(e)) for _, j, e in rows], last

        return await self._call(run)
