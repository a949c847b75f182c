"""The node's state: the sparse Merkle tree plus an ordered index of its keys.

The tree (``state.smt``) authenticates the state but keeps no key order: it is keyed by
``SHA-256(key)``. Contracts may list their keys in order (``ctx.items(prefix)``) and the
chain finds due scheduled calls in order of their due height or time, so the node keeps
the keys in a sorted set beside the tree (``sortedcontainers``), updated with it.
``scan(prefix, after, limit)`` returns up to ``limit`` entries whose key starts with
``prefix`` and sorts strictly after ``after``, in byte order. The order is part of the
state machine: every node lists the same keys in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from sortedcontainers import SortedSet

from civicledger.state.smt import SparseMerkleTree

__all__ = ["StateTree"]


class StateTree(SparseMerkleTree):
    """A ``SparseMerkleTree`` whose keys can also be listed in order."""

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        super().__init__()
        self._keys: SortedSet = SortedSet()

    @classmethod
    def from_items(cls, items: Iterable[tuple[bytes, bytes]]) -> StateTree:
        pairs = list(items)
        tree = super().from_items(pairs)
        assert isinstance(tree, StateTree)
        tree._keys = SortedSet(key for key, _ in pairs)
        return tree

    def set(self, key: bytes, value: bytes) -> None:
        super().set(key, value)
        self._keys.add(key)

    def delete(self, key: bytes) -> None:
        super().delete(key)
        self._keys.discard(key)

    def update(self, changes: Mapping[bytes, bytes | None]) -> None:
        super().update(changes)
        keys = self._keys
        for key, value in changes.items():
            if value is None:
                keys.discard(key)
            else:
                keys.add(key)

    def scan(
        self,
        prefix: bytes,
        after: bytes,
        limit: int,
        meter: Callable[[int], None] | None = None,
    ) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` entries with keys starting with ``prefix``, after ``after``
        (every entry gone through is returned, so ``meter`` is never called)."""
        out: list[tuple[bytes, bytes]] = []
        if limit <= 0:
            return out
        if after < prefix:
            keys = self._keys.irange(minimum=prefix)
        else:
            keys = self._keys.irange(minimum=after, inclusive=(False, True))
        for key in keys:
            if not key.startswith(prefix):
                break
            value = self.get(key)
            assert value is not None
            out.append((key, value))
            if len(out) >= limit:
                break
        return out
