"""Block and state storage in one SQLite file (WAL mode, fsync on every commit).

Each block is saved in one SQLite transaction together with its commit certificate, its
transactions, their receipts and the block's state changes, so after a crash the file
holds every block whose save returned, and nothing of a block whose save did not.
Tables::

    meta(key TEXT PRIMARY KEY, value BLOB)          chain_id, genesis hash, schema version
    blocks(height INTEGER PRIMARY KEY, hash BLOB UNIQUE, header BLOB, commit_ BLOB, tx_count)
    txs(tx_id BLOB PRIMARY KEY, height, idx, raw BLOB, receipt BLOB)   UNIQUE(height, idx)
    state(key BLOB PRIMARY KEY, value BLOB)         the current state
    validator_sets(hash BLOB PRIMARY KEY, value BLOB)   every validator set a header names
    scheduled(id BLOB PRIMARY KEY, height, idx, receipt BLOB)   receipts of scheduled calls
    handoffs(height INTEGER PRIMARY KEY, proof BLOB)   the state proof of the next validator
                                                    set after each block that changed it
    state_undo(height, key BLOB, old BLOB NULL)     what each recent block overwrote, so
                                                    the state at a retained height can be
                                                    rebuilt and proven
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from civicledger.errors import CorruptionError

__all__ = ["SCHEMA_VERSION", "BlockStore", "StoredBlock", "StoredTx"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    header BLOB NOT NULL,
    commit_ BLOB NOT NULL,
    tx_count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS txs (
    tx_id BLOB PRIMARY KEY,
    height INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    raw BLOB NOT NULL,
    receipt BLOB NOT NULL,
    UNIQUE (height, idx)
);
CREATE TABLE IF NOT EXISTS state (key BLOB PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS validator_sets (hash BLOB PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS scheduled (
    id BLOB PRIMARY KEY,
    height INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    receipt BLOB NOT NULL,
    UNIQUE (height, idx)
);
CREATE TABLE IF NOT EXISTS handoffs (height INTEGER PRIMARY KEY, proof BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS state_undo (
    height INTEGER NOT NULL,
    key BLOB NOT NULL,
    old BLOB,
    PRIMARY KEY (height, key)
);
"""


@dataclass(frozen=True, slots=True)
class StoredBlock:
    height: int
    hash: bytes
    header: bytes
    commit: bytes
    tx_count: int


@dataclass(frozen=True, slots=True)
class StoredTx:
    tx_id: bytes
    height: int
    index: int
    raw: bytes
    receipt: bytes


#: SQLite's own words for a damaged file (as opposed to a full disk or a busy lock).
_DAMAGED = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    return type(exc) is sqlite3.DatabaseError or exc.sqlite_errorname in _DAMAGED


class _Cursor:
    """A cursor whose reads report a damaged file as ``CorruptionError``."""

    __slots__ = ("_cursor", "_path")

    def __init__(self, cursor: sqlite3.Cursor, path: Path) -> None:
        self._cursor = cursor
        self._path = path

    def fetchone(self) -> Any:
        with _reported(self._path):
            return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        with _reported(self._path):
            return self._cursor.fetchall()

    def __iter__(self) -> Iterator[Any]:
        with _reported(self._path):
            yield from self._cursor


class _Connection:
    """The SQLite connection; a damaged file is reported as ``CorruptionError`` naming it,
    whichever query meets the damage (at start-up, in ``civic verify``, or serving a read)."""

    __slots__ = ("_db", "_path")

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path

    def execute(self, sql: str, params: Any = ()) -> _Cursor:
        with _reported(self._path):
            return _Cursor(self._db.execute(sql, params), self._path)

    def executemany(self, sql: str, rows: Any) -> None:
        with _reported(self._path):
            self._db.executemany(sql, rows)

    def executescript(self, script: str) -> None:
        with _reported(self._path):
            self._db.executescript(script)

    def close(self) -> None:
        self._db.close()


@contextlib.contextmanager
def _reported(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if not _is_damage(exc):
            raise
        raise CorruptionError(
            f"{path} is damaged ({exc}); run 'civic verify' for details and "
            "'civic node resync' to set it aside and re-sync from peers"
        ) from None


class BlockStore:
    """The node's durable copy of the chain and of the current state."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: fsync the WAL on every commit, so a saved block survives power loss.
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise CorruptionError(
                f"{path} is not a readable Civic Ledger database: {exc}"
            ) from None
        self._db = _Connection(db, path)
        version = None if row is None else bytes(row[0])
        if version is None:
            self.set_meta("schema_version", str(SCHEMA_VERSION).encode())
        elif version != str(SCHEMA_VERSION).encode():
            raise CorruptionError(
                f"{path} has schema version {version!r}, expected {SCHEMA_VERSION}"
            )
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    # -- meta -----------------------------------------------------------------

    def get_meta(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def set_meta(self, key: str, value: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def delete_meta(self, key: str) -> None:
        self._db.execute("DELETE FROM meta WHERE key = ?", (key,))

    # -- writes ---------------------------------------------------------------

    def save_block(
        self,
        *,
        height: int,
        block_hash: bytes,
        header: bytes,
        commit: bytes,
        txs: list[tuple[bytes, bytes, bytes]],
        changes: dict[bytes, bytes | None],
        validator_set: tuple[bytes, bytes] | None = None,
        undo: dict[bytes, bytes | None] | None = None,
        keep_undo_from: int = 0,
        scheduled: list[tuple[bytes, bytes]] | None = None,
        handoff: bytes | None = None,
    ) -> None:
        """Atomically append a block: ``txs`` are ``(tx_id, raw, receipt)`` in block order.

        ``handoff``: for a block after which another validator set signs, the encoded state
        proof of that set against this block's state root (``chain/handoff.py``).

        ``scheduled`` are ``(schedule_id, receipt)`` of the scheduled calls the block ran.
        ``undo`` maps each changed key to its value before the block (``None``: absent);
        undo records of blocks below ``keep_undo_from`` are dropped in the same transaction.
        """
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT INTO blocks (height, hash, header, commit_, tx_count) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (height, block_hash, header, commit, len(txs)),
                )
                db.executemany(
                    "INSERT INTO txs (tx_id, height, idx, raw, receipt) VALUES (?, ?, ?, ?, ?)",
                    [(tx_id, height, i, raw, rc) for i, (tx_id, raw, rc) in enumerate(txs)],
                )
                db.executemany(
                    "INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)",
                    [(k, v) for k, v in changes.items() if v is not None],
                )
                db.executemany(
                    "DELETE FROM state WHERE key = ?",
                    [(k,) for k, v in changes.items() if v is None],
                )
                if validator_set is not None:
                    db.execute(
                        "INSERT OR IGNORE INTO validator_sets (hash, value) VALUES (?, ?)",
                        validator_set,
                    )
                if handoff is not None:
                    db.execute(
                        "INSERT INTO handoffs (height, proof) VALUES (?, ?)", (height, handoff)
                    )
                if scheduled:
                    db.executemany(
                        "INSERT INTO scheduled (id, height, idx, receipt) VALUES (?, ?, ?, ?)",
                        [(sid, height, i, rc) for i, (sid, rc) in enumerate(scheduled)],
                    )
                if undo is not None:
                    db.executemany(
                        "INSERT INTO state_undo (height, key, old) VALUES (?, ?, ?)",
                        [(height, k, v) for k, v in undo.items()],
                    )
                    # The first block with undo records starts the retained history.
                    start = max(keep_undo_from, self.undo_from() or height)
                    db.execute("DELETE FROM state_undo WHERE height < ?", (start,))
                    self.set_meta("undo_from", str(start).encode())
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # -- reads ----------------------------------------------------------------

    def get_head_height(self) -> int | None:
        row = self._db.execute("SELECT MAX(height) FROM blocks").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def _block_row(self, row: tuple[object, ...] | None) -> StoredBlock | None:
        if row is None:
            return None
        h, bh, header, commit, count = row
        return StoredBlock(int(h), bytes(bh), bytes(header), bytes(commit), int(count))  # type: ignore[call-overload]

    def get_block(self, height: int) -> StoredBlock | None:
        row = self._db.execute(
            "SELECT height, hash, header, commit_, tx_count FROM blocks WHERE height = ?",
            (height,),
        ).fetchone()
        return self._block_row(row)

    def get_block_by_hash(self, block_hash: bytes) -> StoredBlock | None:
        row = self._db.execute(
            "SELECT height, hash, header, commit_, tx_count FROM blocks WHERE hash = ?",
            (block_hash,),
        ).fetchone()
        return self._block_row(row)

    def iter_blocks(self, start: int = 0) -> Iterator[StoredBlock]:
        cursor = self._db.execute(
            "SELECT height, hash, header, commit_, tx_count FROM blocks WHERE height >= ? "
            "ORDER BY height",
            (start,),
        )
        for row in cursor:
            block = self._block_row(row)
            assert block is not None
            yield block

    def get_block_txs(self, height: int) -> list[StoredTx]:
        rows = self._db.execute(
            "SELECT tx_id, height, idx, raw, receipt FROM txs WHERE height = ? ORDER BY idx",
            (height,),
        ).fetchall()
        return [StoredTx(bytes(a), int(b), int(c), bytes(d), bytes(e)) for a, b, c, d, e in rows]

    def get_scheduled_receipts(self, height: int) -> list[bytes]:
        """The receipts of the scheduled calls block ``height`` ran, in order."""
        rows = self._db.execute(
            "SELECT receipt FROM scheduled WHERE height = ? ORDER BY idx", (height,)
        ).fetchall()
        return [bytes(r[0]) for r in rows]

    def get_scheduled(self, schedule_id: bytes) -> tuple[int, int, bytes] | None:
        """``(height, index, receipt)`` of a scheduled call that ran, or ``None``."""
        row = self._db.execute(
            "SELECT height, idx, receipt FROM scheduled WHERE id = ?", (schedule_id,)
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), bytes(row[2]))

    def get_tx(self, tx_id: bytes) -> StoredTx | None:
        row = self._db.execute(
            "SELECT tx_id, height, idx, raw, receipt FROM txs WHERE tx_id = ?", (tx_id,)
        ).fetchone()
        if row is None:
            return None
        a, b, c, d, e = row
        return StoredTx(bytes(a), int(b), int(c), bytes(d), bytes(e))

    def get_state(self, key: bytes) -> bytes | None:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def iter_state(self) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self._db.execute("SELECT key, value FROM state"):
            yield bytes(key), bytes(value)

    def get_handoff(self, height: int) -> bytes | None:
        """The stored handoff proof of block ``height``, if the validators changed there."""
        row = self._db.execute("SELECT proof FROM handoffs WHERE height = ?", (height,)).fetchone()
        return None if row is None else bytes(row[0])

    def get_handoffs(self, below: int, limit: int) -> list[tuple[int, bytes]]:
        """``(height, proof)`` of the validator-set handoffs below ``below``, in order."""
        rows = self._db.execute(
            "SELECT height, proof FROM handoffs WHERE height < ? ORDER BY height LIMIT ?",
            (below, limit),
        ).fetchall()
        return [(int(h), bytes(p)) for h, p in rows]

    def state_undo_since(self, height: int, limit: int) -> dict[bytes, bytes | None] | None:
        """What undoes every block above ``height``: key -> its value after block ``height``.

        ``None`` if that takes more than ``limit`` records.
        """
        rows = self._db.execute(
            "SELECT key, old FROM state_undo WHERE height > ? ORDER BY height DESC LIMIT ?",
            (height, limit + 1),
        ).fetchall()
        if len(rows) > limit:
            return None
        # Later rows are older blocks: the oldest change of a key holds its value at ``height``.
        return {bytes(k): None if v is None else bytes(v) for k, v in rows}

    def undo_from(self) -> int | None:
        """The lowest block from which every block's undo record is kept (``None``: none)."""
        raw = self.get_meta("undo_from")
        return None if raw is None else int(raw)

    def get_validator_set(self, set_hash: bytes) -> bytes | None:
        row = self._db.execute(
            "SELECT value FROM validator_sets WHERE hash = ?", (set_hash,)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def count_txs(self) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM txs").fetchone()
        return int(row[0])
