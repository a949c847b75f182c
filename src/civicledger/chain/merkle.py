"""RFC 6962 / RFC 9162 Merkle trees: the transactions root and receipts root of blocks.

The tree is exactly the Merkle Tree Hash of RFC 6962 section 2.1 (RFC 9162 section 2.1.1)
with SHA-256, so any Certificate Transparency implementation computes the same roots and
checks the same proofs. The rules are specified in ``docs/spec/merkle.md``; the test
vectors live in ``tests/vectors/merkle.json``.

* A leaf is hashed as ``SHA-256(0x00 || data)`` and an interior node as
  ``SHA-256(0x01 || left || right)``; the prefixes keep a leaf from passing as a node.
* The root of the empty tree is ``SHA-256("")``.
* A tree of ``n > 1`` leaves splits at ``k``, the largest power of two below ``n``.

Roots are computed bottom-up, level by level, carrying an unpaired last node up
unchanged: that builds exactly the RFC 6962 shape (the left subtree of every split is a
perfect tree) without recursion, in ``n - 1`` node hashes.

In block headers the transactions root is computed over the canonical encodings of the
block's transactions, in block order, and the receipts root over the canonical
encodings of their receipts, in the same order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from civicledger.crypto.hashing import sha256
from civicledger.encoding import Value
from civicledger.errors import DecodeError, InvalidProof
from civicledger.types import HASH_SIZE, Hash32

__all__ = [
    "EMPTY_ROOT",
    "LEAF_PREFIX",
    "MAX_PATH_LENGTH",
    "MAX_TREE_SIZE",
    "NODE_PREFIX",
    "InclusionProof",
    "compute_inclusion_proof",
    "compute_inclusion_proofs",
    "compute_root",
    "expected_path_length",
    "hash_leaf",
    "hash_node",
    "is_included",
    "verify_inclusion",
]

#: Domain prefix of a leaf hash (RFC 6962 section 2.1).
LEAF_PREFIX = b"\x00"
#: Domain prefix of an interior node hash (RFC 6962 section 2.1).
NODE_PREFIX = b"\x01"
#: The root of a tree with no leaves: SHA-256 of the empty string.
EMPTY_ROOT: Hash32 = sha256(b"")
#: Tree sizes are unsigned 64-bit integers, as in RFC 9162.
MAX_TREE_SIZE = 2**64 - 1
#: No inclusion path in a tree of at most ``MAX_TREE_SIZE`` leaves is longer than this.
MAX_PATH_LENGTH = 64

_sha256 = hashlib.sha256


def hash_leaf(data: bytes) -> Hash32:
    """``SHA-256(0x00 || data)``: the hash of a leaf holding ``data``."""
    return Hash32(_sha256(LEAF_PREFIX + data).digest())


def hash_node(left: Hash32, right: Hash32) -> Hash32:
    """``SHA-256(0x01 || left || right)``: the hash of an interior node."""
    return Hash32(_sha256(NODE_PREFIX + left + right).digest())


def _hash_leaves(leaves: Sequence[bytes]) -> list[bytes]:
    sha = _sha256
    return [sha(b"\x00" + data).digest() for data in leaves]


def _next_level(level: list[bytes]) -> list[bytes]:
    """Hash the nodes of ``level`` in pairs; an unpaired last node goes up unchanged."""
    sha = _sha256
    paired = len(level) & ~1
    parents = [sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, paired, 2)]
    if paired != len(level):
        parents.append(level[-1])
    return parents


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaf hashes first and the one-node root level last."""
    level = _hash_leaves(leaves)
    levels = [level]
    while len(level) > 1:
        level = _next_level(level)
        levels.append(level)
    return levels


def compute_root(leaves: Sequence[bytes]) -> Hash32:
    """The RFC 6962 Merkle Tree Hash of ``leaves`` (raw leaf data, not leaf hashes)."""
    if not leaves:
        return EMPTY_ROOT
    level = _hash_leaves(leaves)
    while len(level) > 1:
        level = _next_level(level)
    return Hash32(level[0])


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """The audit path proving that leaf ``index`` is in a tree of ``tree_size`` leaves.

    ``path`` is ordered from the leaf's sibling up to the child of the root, as in
    RFC 6962 section 2.1.1 and RFC 9162 section 2.1.3.
    """

    index: int
    tree_size: int
    path: tuple[Hash32, ...]

    def to_value(self) -> Value:
        """The canonical-encoding value ``[index, tree_size, [path...]]``."""
        path: list[Value] = list(self.path)
        return [self.index, self.tree_size, path]

    @classmethod
    def from_value(cls, value: Value) -> InclusionProof:
        """Parse ``[index, tree_size, [path...]]``; raises ``DecodeError`` on bad shape.

        Only the shape is checked here (types, ranges, 32-byte path elements); whether
        the proof holds, including whether ``index < tree_size`` and whether the path
        has the right length, is for :func:`verify_inclusion` to say.
        """
        if not isinstance(value, list) or len(value) != 3:
            raise DecodeError("inclusion proof must be a list [index, tree_size, path]")
        index, tree_size, path = value
        if not isinstance(index, int) or isinstance(index, bool):
            raise DecodeError("inclusion proof index must be an integer")
        if not isinstance(tree_size, int) or isinstance(tree_size, bool):
            raise DecodeError("inclusion proof tree_size must be an integer")
        if not 0 <= index <= MAX_TREE_SIZE:
            raise DecodeError(f"inclusion proof index must be in 0..2**64-1, got {index}")
        if not 0 <= tree_size <= MAX_TREE_SIZE:
            raise DecodeError(f"inclusion proof tree_size must be in 0..2**64-1, got {tree_size}")
        if not isinstance(path, list):
            raise DecodeError("inclusion proof path must be a list of hashes")
        if len(path) > MAX_PATH_LENGTH:
            raise DecodeError(
                f"inclusion proof path has {len(path)} elements, at most {MAX_PATH_LENGTH} allowed"
            )
        hashes: list[Hash32] = []
        for position, element in enumerate(path):
            if not isinstance(element, bytes) or len(element) != HASH_SIZE:
                got = len(element) if isinstance(element, bytes) else type(element).__name__
                raise DecodeError(
                    f"inclusion proof path element {position} must be {HASH_SIZE} bytes, got {got}"
                )
            hashes.append(Hash32(element))
        return cls(index=index, tree_size=tree_size, path=tuple(hashes))


def _check_index(index: int, tree_size: int) -> None:
    if not 0 <= index < tree_size:
        raise IndexError(f"leaf index {index} is out of range for a tree of {tree_size} leaves")


def _path_from_levels(levels: list[list[bytes]], index: int) -> tuple[Hash32, ...]:
    path: list[Hash32] = []
    i = index
    for level in levels[:-1]:
        sibling = i ^ 1
        if sibling < len(level):
            path.append(Hash32(level[sibling]))
        i >>= 1
    return tuple(path)


def compute_inclusion_proof(leaves: Sequence[bytes], index: int) -> InclusionProof:
    """The RFC 6962 audit path PATH(index, leaves); ``IndexError`` if no such leaf."""
    _check_index(index, len(leaves))
    levels = _levels(leaves)
    return InclusionProof(index, len(leaves), _path_from_levels(levels, index))


def compute_inclusion_proofs(leaves: Sequence[bytes]) -> list[InclusionProof]:
    """The proofs of every leaf, in leaf order, from one build of the tree (O(n log n))."""
    if not leaves:
        return []
    levels = _levels(leaves)
    size = len(leaves)
    return [InclusionProof(i, size, _path_from_levels(levels, i)) for i in range(size)]


def expected_path_length(index: int, tree_size: int) -> int:
    """How many hashes the audit path of leaf ``index`` has in a tree of ``tree_size``.

    At each level, counting from the leaves, a node has a sibling unless it is the
    unpaired last node of its level (an even position equal to the last position).
    """
    _check_index(index, tree_size)
    fn, sn = index, tree_size - 1
    length = 0
    while sn > 0:
        if fn & 1 or fn < sn:
            length += 1
        fn >>= 1
        sn >>= 1
    return length


def verify_inclusion(leaf_data: bytes, proof: InclusionProof, root: Hash32) -> None:
    """Check that ``leaf_data`` is leaf ``proof.index`` of the tree with root ``root``.

    Implements RFC 9162 section 2.1.3.2 and raises ``InvalidProof`` saying what is wrong:
    an index out of range, a path of the wrong length or with a malformed element, or a
    root that does not match.
    """
    index, tree_size, path = proof.index, proof.tree_size, proof.path
    if isinstance(index, bool) or not isinstance(index, int):
        raise InvalidProof("inclusion proof index must be an integer")
    if isinstance(tree_size, bool) or not isinstance(tree_size, int):
        raise InvalidProof("inclusion proof tree_size must be an integer")
    if not 0 <= index < tree_size:
        raise InvalidProof(
            f"inclusion proof index {index} is out of range for a tree of {tree_size} leaves"
        )
    expected = expected_path_length(index, tree_size)
    if len(path) != expected:
        raise InvalidProof(
            f"inclusion proof path for leaf {index} of {tree_size} must have {expected} "
            f"hashes, got {len(path)}"
        )
    for position, element in enumerate(path):
        if not isinstance(element, bytes) or len(element) != HASH_SIZE:
            raise InvalidProof(f"inclusion proof path element {position} is not a 32-byte hash")

    # RFC 9162 section 2.1.3.2, steps 2 to 5.
    sha = _sha256
    fn, sn = index, tree_size - 1
    r = sha(b"\x00" + leaf_data).digest()
    for p in path:
        if sn == 0:  # unreachable after the length check, kept as in the RFC
            raise InvalidProof("inclusion proof path is longer than the tree is high")
        if fn & 1 or fn == sn:
            r = sha(b"\x01" + p + r).digest()
            while fn != 0 and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = sha(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:  # unreachable after the length check, kept as in the RFC
        raise InvalidProof("inclusion proof path is shorter than the tree is high")
    if r != root:
        raise InvalidProof(
            f"inclusion proof for leaf {index} of {tree_size} does not lead to the expected "
            f"root: computed {r.hex()}, expected {root.hex()}"
        )


def is_included(leaf_data: bytes, proof: InclusionProof, root: Hash32) -> bool:
    """``True`` if :func:`verify_inclusion` accepts, ``False`` otherwise."""
    try:
        verify_inclusion(leaf_data, proof, root)
    except InvalidProof:
        return False
    return True
