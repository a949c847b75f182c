"""Write buffers over the committed state: one per block, one per transaction.

A transaction runs against a ``TxOverlay`` stacked on the block's ``BlockOverlay``; if the
call succeeds its writes are merged into the block, otherwise they are dropped. The
block's writes become the state changes stored with the block and applied to the
state tree. Nothing here touches the committed state.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["BlockOverlay", "StateReader", "TxOverlay"]

_DELETED = None


class StateReader(Protocol):
    def get(self, key: bytes) -> bytes | None: ...


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

    def set(self, key: bytes, value: bytes) -> None:
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        self.writes[key] = _DELETED

    def commit(self) -> None:
        self.parent.writes.update(self.writes)
        self.writes = {}
