"""The validator's record of its last signature, in a file of its own.

A validator must never sign two different messages for one height, round and step, also
across crashes, so before it signs it records what it signs (``node/consensus.py``,
``encode_signed_record``). The record lives beside the chain database, not in it: a
damaged database (a torn or overwritten write-ahead log makes SQLite open an older
state without a word) must not take the record back in time with it, and a database
that cannot be opened at all must not keep the record from being carried over when the
node re-syncs (``civic node resync``).

The file ``signer-state`` holds ``record || SHA-256(record)``. It is replaced atomically:
written to a temporary file, flushed to disk, renamed over the old one, and the folder
flushed too, so after a crash it holds either the old or the new record, whole.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from civicledger.errors import CorruptionError

__all__ = ["SIGNER_STATE_FILE", "SignerState"]

SIGNER_STATE_FILE = "signer-state"
_DIGEST = 32


class SignerState:
    """Reads and durably replaces the last-signature record of one node."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / SIGNER_STATE_FILE

    def load(self) -> bytes | None:
        """The record, or ``None`` if this validator has never signed."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CorruptionError(f"cannot read {self.path}: {exc.strerror}") from None
        record, digest = data[:-_DIGEST], data[-_DIGEST:]
        if len(data) <= _DIGEST or hashlib.sha256(record).digest() != digest:
            raise CorruptionError(
                f"{self.path} (the record of this validator's last signature) is damaged; "
                "refusing to start, since a validator that forgets what it signed could sign "
                "twice. Restore it from a backup, or, if you are sure this validator has not "
                "signed since, move it away"
            )
        return record

    def save(self, record: bytes) -> None:
        """Replace the record; returns once it is on disk."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("wb") as f:
            f.write(record + hashlib.sha256(record).digest())
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
