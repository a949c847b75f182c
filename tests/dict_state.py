"""A dict-backed ``StateReader`` for tests that execute transactions without a node."""

from __future__ import annotations


class DictState:
    """The committed state as a plain dict; ``scan`` sorts on every call (tests only)."""

    def __init__(self, items: dict[bytes, bytes] | None = None) -> None:
        self.items: dict[bytes, bytes] = dict(items or {})

    def get(self, key: bytes) -> bytes | None:
        return self.items.get(key)

    def scan(
        self, prefix: bytes, after: bytes, limit: int, meter: object = None
    ) -> list[tuple[bytes, bytes]]:
        keys = sorted(k for k in self.items if k.startswith(prefix) and k > after)
        return [(k, self.items[k]) for k in keys[:limit]]

    def apply(self, changes: dict[bytes, bytes | None]) -> None:
        for key, value in changes.items():
            if value is None:
                self.items.pop(key, None)
            else:
                self.items[key] = value
