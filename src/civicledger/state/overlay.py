"""Write buffers over the committed state: one per block, one per transaction.

A transaction runs against a ``TxOverlay`` stacked on the block's ``BlockOverlay``; if the
call succeeds its writes are merged into the block, otherwise they are dropped. The
block's writes become the state changes stored with the block and applied to the
state tree. Nothing here touches the committed state.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Protocol

from sortedcontainers import SortedList

__all__ = ["BlockOverlay", "KeyIndex", "StateReader", "TxOverlay", "merged_scan"]

_DELETED = None

#: Called by a scan with how many entries it looked at without returning them.
Meter = Callable[[int], None]


class StateReader(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def scan(
        self, prefix: bytes, after: bytes, limit: int, meter: Meter | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` entries whose key starts with ``prefix`` and sorts strictly after
        ``after``, in byte order of the keys. ``meter``, if given, is called with the number
        of entries the scan went past without returning them (see ``merged_scan``)."""
        ...


class KeyIndex:
    """The keys of a dict of pending writes, sorted, brought up to date when asked.

    A dict of writes only ever gains keys (a deletion is stored as ``None``), so the keys
    added since the last look are the newest in insertion order.
    """

    __slots__ = ("_keys", "_source")

    def __init__(self) -> None:
        self._source: dict[bytes, bytes | None] | None = None
        self._keys = SortedList()

    def get(self, writes: dict[bytes, bytes | None]) -> SortedList:
        if writes is not self._source:
            self._source = writes
            self._keys = SortedList(writes)
        elif len(writes) > len(self._keys):
            self._keys.update(islice(reversed(writes), len(writes) - len(self._keys)))
        return self._keys


#: One layer of pending writes, with its sorted keys.
Layer = tuple[dict[bytes, bytes | None], SortedList]


def _layers_of(reader: StateReader) -> tuple[list[Layer], StateReader]:
    get_layers = getattr(reader, "get_layers", None)
    if get_layers is None:
        return [], reader
    layers, base = get_layers()
    assert isinstance(layers, list)
    return layers, base


def merged_scan(
    layers: list[Layer],
    base: StateReader,
    prefix: bytes,
    after: bytes,
    limit: int,
    meter: Meter | None = None,
) -> list[tuple[bytes, bytes]]:
    """``base.scan`` as seen through layers of pending writes (newest first; ``None``:
    deleted).

    The entries of every layer and of ``base`` are merged in key order, lazily, until
    ``limit`` entries are returned: the work is proportional to the entries gone through.
    ``meter`` is called once with the number of entries gone through but not returned:
    those with keys after ``after`` and up to the last key returned (to the end of the
    prefix if fewer than ``limit`` are) that are deletions, or older entries of a key a
    newer layer wrote.
    """
    out: list[tuple[bytes, bytes]] = []
    if limit <= 0:
        return out
    from_prefix = after < prefix

    def pending(
        depth: int, writes: dict[bytes, bytes | None], keys: SortedList
    ) -> Iterator[tuple[bytes, int, bytes | None]]:
        if from_prefix:
            found = keys.irange(minimum=prefix)
        else:
            found = keys.irange(minimum=after, inclusive=(False, True))
        for key in found:
            if not key.startswith(prefix):
                return
            yield key, depth, writes[key]

    def committed() -> Iterator[tuple[bytes, int, bytes | None]]:
        cursor = after
        while True:
            page = base.scan(prefix, cursor, limit)
            for key, value in page:
                yield key, len(layers), value
            if len(page) < limit:
                return
            cursor = page[-1][0]

    streams = [pending(depth, w, k) for depth, (w, k) in enumerate(layers)]
    streams.append(committed())
    skipped = 0
    last: bytes | None = None
    for key, _, value in heapq.merge(*streams):
        if key == last:
            skipped += 1  # an older entry of a key already seen
            continue
        if len(out) >= limit:
            break
        last = key
        if value is None:
            skipped += 1  # a deleted key
            continue
        out.append((key, value))
    if meter is not None and skipped:
        meter(skipped)
    return out


class BlockOverlay:
    """The writes of one block, over a read-only view of the committed state."""

    __slots__ = ("_index", "base", "writes")

    def __init__(self, base: StateReader) -> None:
        self.base = base
        #: key -> new value, or ``None`` for a deletion; insertion-ordered. Keys are never
        #: removed (``KeyIndex`` relies on it).
        self.writes: dict[bytes, bytes | None] = {}
        self._index = KeyIndex()

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self.base.get(key)

    def get_layers(self) -> tuple[list[Layer], StateReader]:
        layers, base = _layers_of(self.base)
        return [(self.writes, self._index.get(self.writes)), *layers], base

    def scan(
        self, prefix: bytes, after: bytes, limit: int, meter: Meter | None = None
    ) -> list[tuple[bytes, bytes]]:
        layers, base = self.get_layers()
        return merged_scan(layers, base, prefix, after, limit, meter)

    def changes(self) -> dict[bytes, bytes | None]:
        """The net changes, without writes that restore the committed value."""
        return {k: v for k, v in self.writes.items() if self.base.get(k) != v}


class TxOverlay:
    """The writes of one transaction, merged into the block only on success."""

    __slots__ = ("_index", "parent", "writes")

    def __init__(self, parent: BlockOverlay) -> None:
        self.parent = parent
        #: As ``BlockOverlay.writes``: keys are never removed.
        self.writes: dict[bytes, bytes | None] = {}
        self._index = KeyIndex()

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self.parent.get(key)

    def get_layers(self) -> tuple[list[Layer], StateReader]:
        layers, base = self.parent.get_layers()
        return [(self.writes, self._index.get(self.writes)), *layers], base

    def scan(
        self, prefix: bytes, after: bytes, limit: int, meter: Meter | None = None
    ) -> list[tuple[bytes, bytes]]:
        layers, base = self.get_layers()
        return merged_scan(layers, base, prefix, after, limit, meter)

    def set(self, key: bytes, value: bytes) -> None:
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        self.writes[key] = _DELETED

    def commit(self) -> None:
        self.parent.writes.update(self.writes)
        self.writes = {}
