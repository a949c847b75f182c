"""The state tree: a compact binary sparse Merkle tree whose root is every block's state root.

The rules are specified in ``docs/spec/state.md``; the test vectors live in
``tests/vectors/state.json``. In short:

* a key's *path* is ``SHA-256(key)`` read as 256 bits, most significant bit of byte 0
  first; bit 0 goes left, bit 1 goes right;
* ``leaf = SHA-256(0x00 || path || SHA-256(value))``,
  ``internal = SHA-256(0x01 || left || right)``, an empty subtree hashes to 32 zero bytes;
* the root of a set at depth ``d`` is EMPTY if the set is empty, the leaf hash of its only
  entry if it has one (a lone leaf is lifted as high as it is alone), and otherwise the
  internal hash of the roots of its two halves (split on bit ``d``) at depth ``d + 1``.

The root therefore depends only on the set of (key, value) pairs, never on the order of
the updates, and every internal node has at least two leaves below it.

In memory a subtree is ``None`` (empty), a ``bytes`` object (a leaf: its 32-byte path;
the value sits in a dict beside the tree, keyed by that very same object), or a slotted
``_Node``. A node caches its hash; an update only clears the caches along the paths it
walks, and ``root()`` rehashes just those, so a batch of ``k`` changes in a tree of ``n``
keys costs about ``k·log2(n/k) + 2k`` SHA-256 calls, once.
"""

from __future__ import annotations

import gc
import hashlib
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

from civicledger.encoding import Value
from civicledger.errors import DecodeError, InvalidProof
from civicledger.types import HASH_SIZE, Hash32

__all__ = [
    "EMPTY_HASH",
    "PATH_BITS",
    "SparseMerkleTree",
    "StateProof",
    "is_valid_proof",
    "key_path",
    "leaf_hash",
    "node_hash",
    "verify_proof",
]

#: Bits in a path, hence the greatest possible depth of a leaf.
PATH_BITS = 256
#: The hash of an empty subtree (and the root of the empty tree).
EMPTY_HASH = Hash32(bytes(HASH_SIZE))

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_EMPTY = bytes(HASH_SIZE)
_sha256 = hashlib.sha256


def key_path(key: bytes) -> Hash32:
    """The 256-bit path of ``key`` in the tree: ``SHA-256(key)``."""
    return Hash32(_sha256(key).digest())


def leaf_hash(path: bytes, value_hash: bytes) -> Hash32:
    """``SHA-256(0x00 || path || value_hash)`` where ``value_hash = SHA-256(value)``."""
    return Hash32(_sha256(_LEAF_PREFIX + path + value_hash).digest())


def node_hash(left: bytes, right: bytes) -> Hash32:
    """``SHA-256(0x01 || left || right)``."""
    return Hash32(_sha256(_NODE_PREFIX + left + right).digest())


def _bit(path: bytes, depth: int) -> int:
    """Bit ``depth`` of ``path`` (0 is the most significant bit of byte 0)."""
    return (path[depth >> 3] >> (7 - (depth & 7))) & 1


def _shared_bits(a: bytes, b: bytes) -> int:
    """How many leading bits two 32-byte paths have in common (256 if equal)."""
    return PATH_BITS - (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_length()


class _Node:
    """An internal node: two subtrees and the cached hash (``None`` when stale)."""

    __slots__ = ("hash", "left", "right")

    def __init__(self, left: _Child, right: _Child, hash: bytes | None = None) -> None:
        self.left = left
        self.right = right
        self.hash = hash


#: A subtree: empty, a leaf (its path), or an internal node.
_Child = _Node | bytes | None


def _leaf(path: bytes, values: dict[bytes, bytes]) -> bytes:
    return _sha256(_LEAF_PREFIX + path + _sha256(values[path]).digest()).digest()


def _child_hash(child: _Child, values: dict[bytes, bytes]) -> bytes:
    if child is None:
        return _EMPTY
    if isinstance(child, bytes):
        return _leaf(child, values)
    h = child.hash
    return h if h is not None else _rehash(child, values)


def _rehash(node: _Node, values: dict[bytes, bytes]) -> bytes:
    """Recompute the stale hashes below ``node`` (and its own); clean subtrees are skipped."""
    left = node.left
    if left is None:
        lh = _EMPTY
    elif isinstance(left, bytes):
        lh = _sha256(_LEAF_PREFIX + left + _sha256(values[left]).digest()).digest()
    else:
        cached = left.hash
        lh = cached if cached is not None else _rehash(left, values)
    right = node.right
    if right is None:
        rh = _EMPTY
    elif isinstance(right, bytes):
        rh = _sha256(_LEAF_PREFIX + right + _sha256(values[right]).digest()).digest()
    else:
        cached = right.hash
        rh = cached if cached is not None else _rehash(right, values)
    h = _sha256(_NODE_PREFIX + lh + rh).digest()
    node.hash = h
    return h


def _split(old: bytes, new: bytes, depth: int) -> _Node:
    """The subtree at ``depth`` holding the two distinct leaves ``old`` and ``new``.

    Both paths share their first ``depth`` bits. Below that, one node per shared bit
    (with an empty other side), then the node where they part.
    """
    fork = _shared_bits(old, new)
    node = _Node(new, old) if _bit(old, fork) else _Node(old, new)
    for d in range(fork - 1, depth - 1, -1):
        node = _Node(None, node) if _bit(old, d) else _Node(node, None)
    return node


def _build(
    paths: list[bytes], leaves: list[bytes], lo: int, hi: int, depth: int
) -> tuple[_Node, bytes]:
    """Build, hashes included, the subtree at ``depth`` of the sorted ``paths[lo:hi]``.

    ``hi - lo >= 2``; ``leaves[i]`` is the leaf hash of ``paths[i]``.
    """
    first = paths[lo]
    # The first and last of a sorted range share exactly the range's common prefix, so
    # they part at the first bit where the range really splits in two.
    fork = (
        PATH_BITS
        - (int.from_bytes(first, "big") ^ int.from_bytes(paths[hi - 1], "big")).bit_length()
    )
    i = fork >> 3
    mask = 0x80 >> (fork & 7)
    # The smallest byte string with the range's common prefix and bit `fork` set: every
    # path of the range from it on goes right.
    boundary = first[:i] + bytes(((first[i] | mask) & (0x100 - mask),))
    mid = bisect_left(paths, boundary, lo, hi)
    left: _Child
    right: _Child
    if mid - lo == 1:
        left, lh = first, leaves[lo]
    else:
        left, lh = _build(paths, leaves, lo, mid, fork + 1)
    if hi - mid == 1:
        right, rh = paths[mid], leaves[mid]
    else:
        right, rh = _build(paths, leaves, mid, hi, fork + 1)
    h = _sha256(_NODE_PREFIX + lh + rh).digest()
    node = _Node(left, right, h)
    for d in range(fork - 1, depth - 1, -1):
        if (first[d >> 3] >> (7 - (d & 7))) & 1:
            h = _sha256(_NODE_PREFIX + _EMPTY + h).digest()
            node = _Node(None, node, h)
        else:
            h = _sha256(_NODE_PREFIX + h + _EMPTY).digest()
            node = _Node(node, None, h)
    return node, h


def _check_bytes(what: str, data: object) -> None:
    if not isinstance(data, bytes):
        raise TypeError(f"{what} must be bytes, got {type(data).__name__}")


class SparseMerkleTree:
    """An in-memory authenticated map from byte keys to byte values.

    Values may be empty (``b""`` is present, distinct from absent). Updates are cheap;
    hashes are recomputed lazily, on the next :meth:`root` or :meth:`prove`.
    """

    __slots__ = ("_root", "_values")

    def __init__(self) -> None:
        self._root: _Child = None
        # path -> value; the dict's key objects are the leaves of the tree.
        self._values: dict[bytes, bytes] = {}

    @classmethod
    def from_items(cls, items: Iterable[tuple[bytes, bytes]]) -> SparseMerkleTree:
        """Build a tree from ``(key, value)`` pairs in any order (a repeated key: last wins).

        Much faster than repeated :meth:`set`: the paths are sorted once and the tree is
        built, hashes included, in one recursive pass. The cyclic garbage collector is
        paused meanwhile (the tree has no cycles; scanning millions of fresh nodes over
        and over would cost more than the build itself).
        """
        values: dict[bytes, bytes] = {}
        sha = _sha256
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            # Typed as objects so that the checks below stay meaningful to mypy.
            for key, value in cast("Iterable[tuple[object, object]]", items):
                if not isinstance(key, bytes):
                    raise TypeError(f"key must be bytes, got {type(key).__name__}")
                if not isinstance(value, bytes):
                    raise TypeError(f"value must be bytes, got {type(value).__name__}")
                values[sha(key).digest()] = value
            return cls._from_path_values(values)
        finally:
            if gc_was_enabled:
                gc.enable()

    @classmethod
    def _from_path_values(cls, values: dict[bytes, bytes]) -> SparseMerkleTree:
        """Build from ``{path: value}``; the tree takes ``values`` over (no copy)."""
        tree = cls()
        tree._values = values
        if len(values) == 1:
            tree._root = next(iter(values))
        elif values:
            sha = _sha256
            entries = sorted(values.items())
            paths = [path for path, _ in entries]
            leaves = [
                sha(_LEAF_PREFIX + path + sha(value).digest()).digest() for path, value in entries
            ]
            del entries
            tree._root = _build(paths, leaves, 0, len(paths), 0)[0]
        return tree

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and _sha256(key).digest() in self._values

    def get(self, key: bytes) -> bytes | None:
        """The value stored under ``key``, or ``None``."""
        _check_bytes("key", key)
        return self._values.get(_sha256(key).digest())

    def set(self, key: bytes, value: bytes) -> None:
        """Store ``value`` under ``key``, replacing any previous value."""
        _check_bytes("key", key)
        _check_bytes("value", value)
        self._set(_sha256(key).digest(), value)

    def delete(self, key: bytes) -> None:
        """Remove ``key``; nothing happens if it is absent."""
        _check_bytes("key", key)
        path = _sha256(key).digest()
        if self._values.pop(path, None) is not None:
            self._remove(path)

    def update(self, changes: Mapping[bytes, bytes | None]) -> None:
        """Apply a batch: a ``None`` value deletes the key, bytes set it.

        Types are checked before anything changes, so a bad batch leaves the tree as it was.
        """
        for key, value in changes.items():
            _check_bytes("key", key)
            if value is not None:
                _check_bytes("value", value)
        sha = _sha256
        values = self._values
        for key, value in changes.items():
            path = sha(key).digest()
            if value is None:
                if values.pop(path, None) is not None:
                    self._remove(path)
            else:
                self._set(path, value)

    def root(self) -> Hash32:
        """The root hash; rehashes only what changed since the last call."""
        node = self._root
        if node is None:
            return EMPTY_HASH
        return Hash32(_child_hash(node, self._values))

    def prove(self, key: bytes) -> StateProof:
        """A proof that ``key`` has its current value, or is absent, under :meth:`root`."""
        _check_bytes("key", key)
        path = _sha256(key).digest()
        values = self._values
        self.root()  # make every cached hash fresh
        siblings: list[Hash32] = []
        node = self._root
        depth = 0
        while isinstance(node, _Node):
            if _bit(path, depth):
                siblings.append(Hash32(_child_hash(node.left, values)))
                node = node.right
            else:
                siblings.append(Hash32(_child_hash(node.right, values)))
                node = node.left
            depth += 1
        if node is None:
            return StateProof(key, None, tuple(siblings))
        if node == path:
            return StateProof(key, values[path], tuple(siblings))
        return StateProof(
            key,
            None,
            tuple(siblings),
            other_path=Hash32(node),
            other_value_hash=Hash32(_sha256(values[node]).digest()),
        )

    # -- internals ------------------------------------------------------------------

    def _set(self, path: bytes, value: bytes) -> None:
        values = self._values
        old = values.get(path)
        values[path] = value  # an existing entry keeps its key object, the tree's leaf
        if old is not None:
            if old != value:
                self._touch(path)
            return
        node = self._root
        if not isinstance(node, _Node):
            # Empty tree, or a single leaf (necessarily another path).
            self._root = path if node is None else _split(node, path, 0)
            return
        depth = 0
        while True:
            node.hash = None
            if (path[depth >> 3] >> (7 - (depth & 7))) & 1:
                child = node.right
                if not isinstance(child, _Node):
                    node.right = path if child is None else _split(child, path, depth + 1)
                    return
            else:
                child = node.left
                if not isinstance(child, _Node):
                    node.left = path if child is None else _split(child, path, depth + 1)
                    return
            node = child
            depth += 1

    def _touch(self, path: bytes) -> None:
        """Mark stale every node above the leaf ``path`` (its value changed)."""
        node = self._root
        depth = 0
        while isinstance(node, _Node):
            node.hash = None
            node = node.right if (path[depth >> 3] >> (7 - (depth & 7))) & 1 else node.left
            depth += 1

    def _remove(self, path: bytes) -> None:
        """Unlink the leaf ``path`` (already gone from the values) and lift a lone sibling."""
        node = self._root
        if not isinstance(node, _Node):
            self._root = None  # it was the only leaf
            return
        stack: list[_Node] = []
        depth = 0
        while True:
            node.hash = None
            stack.append(node)
            if (path[depth >> 3] >> (7 - (depth & 7))) & 1:
                child = node.right
                if not isinstance(child, _Node):
                    if child != path:
                        raise AssertionError("state tree and value index disagree")
                    node.right = None
                    other = node.left
                    break
            else:
                child = node.left
                if not isinstance(child, _Node):
                    if child != path:
                        raise AssertionError("state tree and value index disagree")
                    node.left = None
                    other = node.right
                    break
            node = child
            depth += 1
        if not isinstance(other, bytes):
            return  # the sibling is an internal node: it still has two leaves below it
        # `node` now holds a single leaf, `other`: lift the leaf as long as it is alone.
        stack.pop()
        while stack:
            parent = stack.pop()
            if parent.left is node:
                if parent.right is not None:
                    parent.left = other
                    return
            elif parent.left is not None:
                parent.right = other
                return
            node = parent
        self._root = other


@dataclass(frozen=True, slots=True)
class StateProof:
    """Proof that ``key`` maps to ``value`` (or, if ``value`` is None, is absent).

    ``siblings`` are the hashes beside the key's path, from the root downward: entry ``i``
    is the child, at depth ``i + 1``, of the depth-``i`` node on the path that the path does
    not enter. The walk ends at depth ``len(siblings)`` on the key's own leaf, on an empty
    subtree, or on a *different* leaf, given by ``other_path`` and ``other_value_hash``.
    """

    key: bytes
    value: bytes | None
    siblings: tuple[Hash32, ...]
    other_path: Hash32 | None = None
    other_value_hash: Hash32 | None = None

    def to_value(self) -> list[Value]:
        """``[key, value|None, [sibling, ...], other_path|None, other_value_hash|None]``."""
        siblings: list[Value] = [*self.siblings]
        return [self.key, self.value, siblings, self.other_path, self.other_value_hash]

    @classmethod
    def from_value(cls, value: Value) -> StateProof:
        """Parse :meth:`to_value`'s form; raise ``DecodeError`` on any deviation."""
        if not isinstance(value, list) or len(value) != 5:
            raise DecodeError("a state proof must be a list of 5 items")
        key, val, raw_siblings, other_path, other_value_hash = value
        if not isinstance(key, bytes):
            raise DecodeError("state proof key must be bytes")
        if val is not None and not isinstance(val, bytes):
            raise DecodeError("state proof value must be bytes or null")
        if not isinstance(raw_siblings, list):
            raise DecodeError("state proof siblings must be a list")
        if len(raw_siblings) > PATH_BITS:
            raise DecodeError(
                f"state proof has {len(raw_siblings)} siblings, at most {PATH_BITS} allowed"
            )
        siblings: list[Hash32] = []
        for i, sibling in enumerate(raw_siblings):
            if not isinstance(sibling, bytes) or len(sibling) != HASH_SIZE:
                raise DecodeError(f"state proof sibling {i} must be {HASH_SIZE} bytes")
            siblings.append(Hash32(sibling))
        if (other_path is None) != (other_value_hash is None):
            raise DecodeError("state proof other_path and other_value_hash go together")
        if other_path is not None:
            if val is not None:
                raise DecodeError("a state proof of presence cannot carry another leaf")
            if not isinstance(other_path, bytes) or len(other_path) != HASH_SIZE:
                raise DecodeError(f"state proof other_path must be {HASH_SIZE} bytes")
            if not isinstance(other_value_hash, bytes) or len(other_value_hash) != HASH_SIZE:
                raise DecodeError(f"state proof other_value_hash must be {HASH_SIZE} bytes")
            return cls(key, None, tuple(siblings), Hash32(other_path), Hash32(other_value_hash))
        return cls(key, val, tuple(siblings))


def verify_proof(root: Hash32, proof: StateProof) -> None:
    """Check ``proof`` against ``root``; raise ``InvalidProof`` saying what is wrong."""
    if not isinstance(root, bytes) or len(root) != HASH_SIZE:
        raise InvalidProof(f"state root must be {HASH_SIZE} bytes")
    if not isinstance(proof.key, bytes):
        raise InvalidProof("proof key must be bytes")
    siblings = proof.siblings
    n = len(siblings)
    if n > PATH_BITS:
        raise InvalidProof(f"proof has {n} siblings, at most {PATH_BITS} allowed")
    for i, sibling in enumerate(siblings):
        if not isinstance(sibling, bytes) or len(sibling) != HASH_SIZE:
            raise InvalidProof(f"proof sibling {i} is not a {HASH_SIZE}-byte hash")
    path = _sha256(proof.key).digest()
    other_path, other_value_hash = proof.other_path, proof.other_value_hash
    if proof.value is not None:
        if not isinstance(proof.value, bytes):
            raise InvalidProof("proof value must be bytes or None")
        if other_path is not None or other_value_hash is not None:
            raise InvalidProof("a proof of presence cannot carry another leaf")
        h = _sha256(_LEAF_PREFIX + path + _sha256(proof.value).digest()).digest()
    elif other_path is None and other_value_hash is None:
        h = _EMPTY
    else:
        if other_path is None or other_value_hash is None:
            raise InvalidProof("other_path and other_value_hash must be given together")
        if not isinstance(other_path, bytes) or len(other_path) != HASH_SIZE:
            raise InvalidProof(f"proof other_path is not {HASH_SIZE} bytes")
        if not isinstance(other_value_hash, bytes) or len(other_value_hash) != HASH_SIZE:
            raise InvalidProof(f"proof other_value_hash is not {HASH_SIZE} bytes")
        shared = _shared_bits(path, other_path)
        if shared == PATH_BITS:
            raise InvalidProof("the other leaf is the key's own path: not a proof of absence")
        if shared < n:
            raise InvalidProof(
                f"the other leaf's path leaves the key's path at bit {shared}, "
                f"above the proof's depth {n}"
            )
        h = _sha256(_LEAF_PREFIX + other_path + other_value_hash).digest()
    for depth in range(n - 1, -1, -1):
        if (path[depth >> 3] >> (7 - (depth & 7))) & 1:
            h = _sha256(_NODE_PREFIX + siblings[depth] + h).digest()
        else:
            h = _sha256(_NODE_PREFIX + h + siblings[depth]).digest()
    if h != root:
        what = "presence" if proof.value is not None else "absence"
        raise InvalidProof(
            f"proof of {what} computes state root {h.hex()}, expected {bytes(root).hex()}"
        )


def is_valid_proof(root: Hash32, proof: StateProof) -> bool:
    """``True`` if :func:`verify_proof` accepts ``proof`` against ``root``."""
    try:
        verify_proof(root, proof)
    except InvalidProof:
        return False
    return True
