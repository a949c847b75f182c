"""Write buffers over the committed state: one per block, one per transaction.

A transaction runs against a ``TxOverlay`` stacked on the block's ``BlockOverlay``; if the
call succeeds its writes are merged into the block, otherwise they are dropped. The
block's writes become the state changes stored with the block and applied to the
state tree. Nothing here touches the committed state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

__all__ = ["BlockOverlay", "StateReader", "TxOverlay", "merged_scan"]

_DELETED = None


class StateReader(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def scan(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` entries whose key starts with ``prefix`` and sorts strictly after
        ``after``, in byte order of the keys."""
        ...


def merged_scan(
    base: StateReader,
    writes: Mapping[bytes, bytes | None],
    prefix: bytes,
    after: bytes,
    limit: int,
) -> list[tuple[bytes, bytes]]:
    """``base.scan`` as seen through pending ``writes`` (``None``: deleted)."""
    out: list[tuple[bytes, bytes]] = []
    if limit <= 0:
        return out
    own = sorted(k for k in writes if k.startswith(prefix) and k > after)
    j = 0
    cursor = after
    while True:
        page = base.scan(prefix, cursor, limit)
        for key, value in page:
            # Our own keys that sort before this one come first.
            while j < len(own) and own[j] < key:
                mine = writes[own[j]]
                j += 1
                if mine is not None:
                    out.append((own[j - 1], mine))
                    if len(out) >= limit:
                        return out
            if key in writes:
                j += 1  # own[j] is this key
                mine = writes[key]
                if mine is None:
                    continue
                out.append((key, mine))
            else:
                out.append((key, value))
            if len(out) >= limit:
                return out
        if len(page) < limit:
            break
        cursor = page[-1][0]
    while j < len(own) and len(out) < limit:
        mine = writes[own[j]]
        if mine is not None:
            out.append((own[j], mine))
        j += 1
    return out


class BlockOverlay:
    """The writes of one block, over a read-only view of the committed state."""

    __slots__ = ("base", "writes")

    def __init__(self, base: StateReader) -> None:
        self.base = base
        #: key -> new value, or ``None`` for a deletion; insertion-ordered.
        self.writes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self.base.get(key)

    def scan(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        return merged_scan(self.base, self.writes, prefix, after, limit)

    def changes(self) -> dict[bytes, bytes | None]:
        """The net changes, without writes that restore the committed value."""
        return {k: v for k, v in self.writes.items() if self.base.get(k) != v}


class TxOverlay:
    """The writes of one transaction, merged into the block only on success."""

    __slots__ = ("parent", "writes")

    def __init__(self, parent: BlockOverlay) -> None:
        self.parent = parent
        self.writes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self.parent.get(key)

    def scan(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        return merged_scan(self.parent, self.writes, prefix, after, limit)

    def set(self, key: bytes, value: bytes) -> None:
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        self.writes[key] = _DELETED

    def commit(self) -> None:
        self.parent.writes.update(self.writes)
        self.writes = {}
