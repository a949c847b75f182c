"""Tests of ``civicledger.chain.merkle`` against RFC 6962, a reference and the vectors."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from civicledger.chain.merkle import (
    EMPTY_ROOT,
    MAX_PATH_LENGTH,
    InclusionProof,
    compute_inclusion_proof,
    compute_inclusion_proofs,
    compute_root,
    expected_path_length,
    hash_leaf,
    hash_node,
    is_included,
    verify_inclusion,
)
from civicledger.encoding import decode, encode
from civicledger.errors import DecodeError, InvalidProof
from civicledger.types import Hash32

VECTORS_DIR = Path(__file__).resolve().parents[1] / "vectors"
VECTORS_FILE = VECTORS_DIR / "merkle.json"

CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
CT_ROOT_8 = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


# --- A straightforward recursive reference, as RFC 6962 section 2.1 states it ----------


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n > 1``)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_root(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = _split(n)
    return hashlib.sha256(b"\x01" + ref_root(leaves[:k]) + ref_root(leaves[k:])).digest()


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_root(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_root(leaves[:k])]


def ref_directions(m: int, n: int) -> tuple[bool, ...]:
    """For each element of PATH(m, D[n]), leaf end first: is the sibling on the left?"""
    if n == 1:
        return ()
    k = _split(n)
    if m < k:
        return (*ref_directions(m, k), False)
    return (*ref_directions(m - k, n - k), True)


def ref_verify(leaf: bytes, proof: InclusionProof, root: bytes) -> bool:
    """Verification from the RFC 6962 tree shape, independent of RFC 9162's bit tricks."""
    if not 0 <= proof.index < proof.tree_size:
        return False
    directions = ref_directions(proof.index, proof.tree_size)
    if len(directions) != len(proof.path):
        return False
    r = hashlib.sha256(b"\x00" + leaf).digest()
    for sibling, on_left in zip(proof.path, directions, strict=True):
        pair = sibling + r if on_left else r + sibling
        r = hashlib.sha256(b"\x01" + pair).digest()
    return r == root


def leaves_of(n: int) -> list[bytes]:
    # Varying lengths, including the empty leaf.
    return [bytes([i % 256]) * (i % 5) + i.to_bytes(2, "big")[: i % 3] for i in range(n)]


def flip(h: bytes, byte: int = 0) -> Hash32:
    return Hash32(h[:byte] + bytes([h[byte] ^ 0x01]) + h[byte + 1 :])


# --- Hash domains -------------------------------------------------------------------------


def test_hash_domains() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert hash_leaf(b"abc") == hashlib.sha256(b"\x00abc").digest()
    left, right = Hash32(b"\x11" * 32), Hash32(b"\x22" * 32)
    assert hash_node(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    # A leaf holding the concatenation of two hashes is not the node over them.
    assert hash_leaf(left + right) != hash_node(left, right)


def test_empty_and_single() -> None:
    assert compute_root([]) == EMPTY_ROOT
    assert compute_root([b"x"]) == hash_leaf(b"x")
    assert compute_inclusion_proofs([]) == []


# --- (a) Against the recursive reference ------------------------------------------------


@pytest.mark.parametrize("n", range(71))
def test_root_matches_reference(n: int) -> None:
    leaves = leaves_of(n)
    assert compute_root(leaves) == ref_root(leaves)


@pytest.mark.parametrize("n", range(1, 71))
def test_paths_match_reference(n: int) -> None:
    leaves = leaves_of(n)
    batch = compute_inclusion_proofs(leaves)
    assert len(batch) == n
    for m in range(n):
        expected = InclusionProof(m, n, tuple(Hash32(h) for h in ref_path(m, leaves)))
        assert compute_inclusion_proof(leaves, m) == expected
        assert batch[m] == expected
        assert expected_path_length(m, n) == len(expected.path)


def test_accepts_bytes_like_leaves() -> None:
    leaves = leaves_of(9)
    as_bytearrays: list[Any] = [bytearray(x) for x in leaves]
    as_views: list[Any] = [memoryview(x) for x in leaves]
    assert compute_root(as_bytearrays) == compute_root(leaves)
    assert compute_root(as_views) == compute_root(leaves)


def test_ct_reference_root() -> None:
    assert compute_root(CT_LEAVES).hex() == CT_ROOT_8


def test_large_tree() -> None:
    leaves = [i.to_bytes(4, "big") for i in range(20_000)]
    root = compute_root(leaves)
    assert root == ref_root(leaves)
    for m in (0, 1, 16_383, 16_384, 19_999):
        proof = compute_inclusion_proof(leaves, m)
        assert len(proof.path) == expected_path_length(m, len(leaves))
        verify_inclusion(leaves[m], proof, root)


def test_proof_index_out_of_range() -> None:
    for leaves, index in (([], 0), ([b"a"], 1), ([b"a", b"b"], -1)):
        with pytest.raises(IndexError):
            compute_inclusion_proof(leaves, index)


# --- (b) Every proof verifies; every alteration fails ---------------------------------


def _assert_rejected(leaf: bytes, proof: InclusionProof, root: Hash32, match: str) -> None:
    with pytest.raises(InvalidProof, match=match):
        verify_inclusion(leaf, proof, root)
    assert not is_included(leaf, proof, root)


@pytest.mark.parametrize("n", range(1, 41))
def test_every_proof_verifies_and_alterations_fail(n: int) -> None:
    leaves = [f"tx-{i}".encode() for i in range(n)]
    root = compute_root(leaves)
    for proof in compute_inclusion_proofs(leaves):
        m = proof.index
        leaf = leaves[m]
        verify_inclusion(leaf, proof, root)
        assert is_included(leaf, proof, root)

        # Any altered path element.
        for j, h in enumerate(proof.path):
            for byte in (0, 31):
                path = (*proof.path[:j], flip(h, byte), *proof.path[j + 1 :])
                _assert_rejected(leaf, InclusionProof(m, n, path), root, "expected root")
        # Elements reordered.
        if len(proof.path) >= 2 and proof.path[0] != proof.path[1]:
            path = (proof.path[1], proof.path[0], *proof.path[2:])
            _assert_rejected(leaf, InclusionProof(m, n, path), root, "expected root")
        # Path too long or too short.
        too_long = InclusionProof(m, n, (*proof.path, Hash32(bytes(32))))
        _assert_rejected(leaf, too_long, root, "must have")
        if proof.path:
            too_short = InclusionProof(m, n, proof.path[:-1])
            _assert_rejected(leaf, too_short, root, "must have")
        # Any other index: wrong length or wrong root, never accepted.
        for other in range(n):
            if other != m:
                assert not is_included(leaf, InclusionProof(other, n, proof.path), root)
        # Index out of range.
        for bad in (-1, n, n + 5):
            _assert_rejected(leaf, InclusionProof(bad, n, proof.path), root, "out of range")
        # Other tree sizes: rejected unless the leaf sits at the same place in both
        # shapes (the root does not bind the tree size; see test_tree_size_is_not_bound).
        for size in range(1, 2 * n + 2):
            resized = InclusionProof(m, size, proof.path)
            assert is_included(leaf, resized, root) == ref_verify(leaf, resized, root)
            if size != n and ref_directions(m, size) != ref_directions(m, n):
                assert not is_included(leaf, resized, root)
        # Another leaf, an altered leaf, the leaf hash instead of the leaf.
        for wrong in {leaves[(m + 1) % n], leaf + b"\x00", hash_leaf(leaf)} - {leaf}:
            _assert_rejected(wrong, proof, root, "expected root")
        # Another root.
        _assert_rejected(leaf, proof, flip(root), "expected root")
        _assert_rejected(leaf, proof, EMPTY_ROOT, "expected root")


def test_zero_size_tree_rejected() -> None:
    _assert_rejected(b"", InclusionProof(0, 0, ()), EMPTY_ROOT, "out of range")


def test_malformed_path_element_rejected() -> None:
    leaves = [b"a", b"b", b"c"]
    root = compute_root(leaves)
    proof = compute_inclusion_proof(leaves, 0)
    short = InclusionProof(0, 3, (proof.path[0], Hash32(proof.path[1][:31])))
    _assert_rejected(b"a", short, root, "element 1 is not a 32-byte hash")


def test_second_preimage_of_interior_node_rejected() -> None:
    # Presenting an interior node's children as a "leaf" of a smaller tree fails,
    # thanks to the leaf/node prefixes.
    leaves = [b"a", b"b", b"c", b"d"]
    root = compute_root(leaves)
    inner = hash_leaf(b"a") + hash_leaf(b"b")
    right = hash_node(hash_leaf(b"c"), hash_leaf(b"d"))
    assert not is_included(inner, InclusionProof(0, 2, (right,)), root)


# --- Encoding of proofs -----------------------------------------------------------------


def test_proof_value_round_trip() -> None:
    leaves = leaves_of(13)
    for proof in compute_inclusion_proofs(leaves):
        value = proof.to_value()
        assert value == [proof.index, proof.tree_size, list(proof.path)]
        assert InclusionProof.from_value(value) == proof
        assert InclusionProof.from_value(decode(encode(value))) == proof


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (None, "must be a list"),
        ([0, 1], "must be a list"),
        ([0, 1, [], 4], "must be a list"),
        ({"index": 0}, "must be a list"),
        ([True, 1, []], "index must be an integer"),
        ([b"\x00", 1, []], "index must be an integer"),
        ([0, False, []], "tree_size must be an integer"),
        ([0, "1", []], "tree_size must be an integer"),
        ([-1, 1, []], "index must be in"),
        ([2**64, 1, []], "index must be in"),
        ([0, -1, []], "tree_size must be in"),
        ([0, 2**64, []], "tree_size must be in"),
        ([0, 2, b"\x00" * 32], "path must be a list"),
        ([0, 2, [b"\x00" * 31]], "element 0 must be 32 bytes, got 31"),
        ([0, 3, [b"\x00" * 32, b"\x00" * 33]], "element 1 must be 32 bytes, got 33"),
        ([0, 2, ["00" * 32]], "element 0 must be 32 bytes, got str"),
        ([0, 2, [b"\x00" * 32] * (MAX_PATH_LENGTH + 1)], "at most 64"),
    ],
)
def test_proof_from_value_rejects(value: Any, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        InclusionProof.from_value(value)


def test_from_value_leaves_semantics_to_verify() -> None:
    proof = InclusionProof.from_value([5, 3, []])
    _assert_rejected(b"x", proof, EMPTY_ROOT, "out of range")


# --- (c) Properties -----------------------------------------------------------------------

leaf_lists = st.lists(st.binary(max_size=40), min_size=1, max_size=300)


@settings(max_examples=200, deadline=None)
@given(leaf_lists, st.data())
def test_property_proofs_verify(leaves: list[bytes], data: st.DataObject) -> None:
    root = compute_root(leaves)
    assert root == ref_root(leaves)
    m = data.draw(st.integers(0, len(leaves) - 1))
    proof = compute_inclusion_proof(leaves, m)
    assert tuple(proof.path) == tuple(ref_path(m, leaves))
    verify_inclusion(leaves[m], proof, root)
    assert InclusionProof.from_value(decode(encode(proof.to_value()))) == proof


@settings(max_examples=200, deadline=None)
@given(leaf_lists, st.data())
def test_property_changed_leaf_changes_root(leaves: list[bytes], data: st.DataObject) -> None:
    m = data.draw(st.integers(0, len(leaves) - 1))
    replacement = data.draw(st.binary(max_size=40).filter(lambda b: b != leaves[m]))
    changed = [*leaves[:m], replacement, *leaves[m + 1 :]]
    assert compute_root(changed) != compute_root(leaves)
    proof = compute_inclusion_proof(leaves, m)
    assert not is_included(replacement, proof, compute_root(leaves))


@settings(max_examples=200, deadline=None)
@given(leaf_lists, st.data())
def test_property_tampered_proof_fails(leaves: list[bytes], data: st.DataObject) -> None:
    root = compute_root(leaves)
    n = len(leaves)
    m = data.draw(st.integers(0, n - 1))
    proof = compute_inclusion_proof(leaves, m)
    index = data.draw(st.integers(-2, n + 2))
    size = data.draw(st.integers(0, 2 * n + 2))
    path = list(proof.path)
    alter, extend = data.draw(st.booleans()), data.draw(st.booleans())
    if alter and path:
        j = data.draw(st.integers(0, len(path) - 1))
        path[j] = flip(path[j], data.draw(st.integers(0, 31)))
    elif extend:
        path.append(data.draw(st.binary(min_size=32, max_size=32).map(Hash32)))
    tampered = InclusionProof(index, size, tuple(path))
    accepted = is_included(leaves[m], tampered, root)
    assert accepted == ref_verify(leaves[m], tampered, root)
    if tuple(path) != proof.path:
        assert not accepted
    if tampered == proof:
        assert accepted
    # With the true size, only the genuine proof of an equal leaf is accepted.
    if accepted and size == n:
        assert leaves[index] == leaves[m]


def test_tree_size_is_not_bound_by_the_root() -> None:
    # Documented limitation shared with RFC 9162: the verifier must take the tree size
    # from a trusted source (the block's transaction count), not from the proof.
    leaves = [b"a", b"b", b"c"]
    root = compute_root(leaves)
    proof = compute_inclusion_proof(leaves, 0)
    assert is_included(b"a", InclusionProof(0, 4, proof.path), root)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2**64 - 1), st.data())
def test_property_expected_path_length(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1))
    length = expected_path_length(index, size)
    assert 0 <= length <= MAX_PATH_LENGTH
    if size > 1:
        assert length <= (size - 1).bit_length()
    if size & (size - 1) == 0:  # perfect tree: every leaf is at full depth
        assert length == size.bit_length() - 1


# --- (d) The vectors file --------------------------------------------------------------


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_merkle", VECTORS_DIR / "generate_merkle.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _vectors() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    return loaded


def test_vectors_file_is_up_to_date() -> None:
    generator = _load_generator()
    assert VECTORS_FILE.read_text(encoding="utf-8") == generator.render(), (
        "tests/vectors/merkle.json is stale: run tests/vectors/generate_merkle.py"
    )


def test_vectors_cover_the_required_sizes() -> None:
    sizes = {len(tree["leaves"]) for tree in _vectors()["trees"]}
    assert {0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17} <= sizes


def test_vectors_trees() -> None:
    trees = _vectors()["trees"]
    assert trees
    for tree in trees:
        leaves = [bytes.fromhex(h) for h in tree["leaves"]]
        root = Hash32(bytes.fromhex(tree["root"]))
        assert compute_root(leaves) == root, tree["name"]
        assert len(tree["proofs"]) == len(leaves)
        for raw in tree["proofs"]:
            proof = InclusionProof.from_value(
                [raw["index"], raw["tree_size"], [bytes.fromhex(h) for h in raw["path"]]]
            )
            assert compute_inclusion_proof(leaves, proof.index) == proof, tree["name"]
            verify_inclusion(leaves[proof.index], proof, root)


def test_vectors_ct_tree() -> None:
    ct = [t for t in _vectors()["trees"] if t["name"] == "certificate transparency, size 8"]
    assert len(ct) == 1
    assert [bytes.fromhex(h) for h in ct[0]["leaves"]] == CT_LEAVES
    assert ct[0]["root"] == CT_ROOT_8


def test_vectors_invalid_proofs() -> None:
    cases = _vectors()["invalid_proofs"]
    assert cases
    for case in cases:
        raw = case["proof"]
        proof = InclusionProof.from_value(
            [raw["index"], raw["tree_size"], [bytes.fromhex(h) for h in raw["path"]]]
        )
        leaf = bytes.fromhex(case["leaf"])
        root = Hash32(bytes.fromhex(case["root"]))
        with pytest.raises(InvalidProof):
            verify_inclusion(leaf, proof, root)
