"""Tests of ``civicledger.state.smt`` against its definition, deliberate cases and vectors."""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import importlib.util
import json
import random
from collections.abc import Collection
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from civicledger.encoding import Value, decode, encode
from civicledger.errors import DecodeError, InvalidProof
from civicledger.state.smt import (
    EMPTY_HASH,
    PATH_BITS,
    SparseMerkleTree,
    StateProof,
    is_valid_proof,
    key_path,
    leaf_hash,
    node_hash,
    verify_proof,
)
from civicledger.types import Hash32

VECTORS_DIR = Path(__file__).resolve().parents[1] / "vectors"
VECTORS_FILE = VECTORS_DIR / "state.json"


# --- A straightforward recursive reference, as docs/spec/state.md states it ------------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _bit(path: bytes, depth: int) -> int:
    return (path[depth // 8] >> (7 - depth % 8)) & 1


def ref_root(entries: dict[bytes, bytes], depth: int = 0) -> bytes:
    """Root of ``{path: value}`` at ``depth``: EMPTY, the lone leaf, or a node over halves."""
    if not entries:
        return bytes(32)
    if len(entries) == 1:
        ((path, value),) = entries.items()
        return _sha(b"\x00" + path + _sha(value))
    left = {p: v for p, v in entries.items() if _bit(p, depth) == 0}
    right = {p: v for p, v in entries.items() if _bit(p, depth) == 1}
    return _sha(b"\x01" + ref_root(left, depth + 1) + ref_root(right, depth + 1))


def ref_root_of(items: dict[bytes, bytes]) -> bytes:
    """Root of ``{key: value}``."""
    return ref_root({_sha(k): v for k, v in items.items()})


def tree_of(items: dict[bytes, bytes]) -> SparseMerkleTree:
    tree = SparseMerkleTree()
    for k, v in items.items():
        tree.set(k, v)
    return tree


def find_key(prefix_bits: str, *, avoid: Collection[bytes] = (), tag: str = "k") -> bytes:
    """The first key ``<tag>-<i>`` whose path starts with the bit string ``prefix_bits``."""
    n = len(prefix_bits)
    target = int(prefix_bits, 2) if n else 0
    i = 0
    while True:
        key = f"{tag}-{i}".encode()
        if key not in avoid and int.from_bytes(_sha(key), "big") >> (256 - n) == target:
            return key
        i += 1


keys_st = st.binary(max_size=6)
values_st = st.binary(max_size=6)
maps_st = st.dictionaries(keys_st, values_st, max_size=40)


# --- (a) Hashes and the root -----------------------------------------------------------


def test_hash_primitives() -> None:
    path = key_path(b"alice")
    assert path == _sha(b"alice")
    assert leaf_hash(path, _sha(b"v")) == _sha(b"\x00" + path + _sha(b"v"))
    assert node_hash(b"a" * 32, b"b" * 32) == _sha(b"\x01" + b"a" * 32 + b"b" * 32)
    assert bytes(32) == EMPTY_HASH
    assert PATH_BITS == 256


def test_empty_tree() -> None:
    tree = SparseMerkleTree()
    assert tree.root() == EMPTY_HASH == bytes(32)
    assert len(tree) == 0
    assert tree.get(b"x") is None
    assert SparseMerkleTree.from_items([]).root() == EMPTY_HASH


def test_single_leaf_is_lifted_to_the_root() -> None:
    tree = tree_of({b"k": b"v"})
    assert tree.root() == leaf_hash(key_path(b"k"), _sha(b"v"))


def test_two_leaves_sharing_a_prefix_have_a_chain_above_them() -> None:
    a = find_key("000")
    b = find_key("001", avoid={a})
    tree = tree_of({a: b"1", b: b"2"})
    la, lb = leaf_hash(key_path(a), _sha(b"1")), leaf_hash(key_path(b), _sha(b"2"))
    # Depth 2 splits them; depths 0 and 1 have an empty right side.
    expected = node_hash(node_hash(node_hash(la, lb), EMPTY_HASH), EMPTY_HASH)
    assert tree.root() == expected == ref_root_of({a: b"1", b: b"2"})


@given(maps_st)
def test_root_matches_reference(items: dict[bytes, bytes]) -> None:
    expected = ref_root_of(items)
    assert tree_of(items).root() == expected
    assert SparseMerkleTree.from_items(items.items()).root() == expected


@given(maps_st, st.randoms(use_true_random=False))
def test_root_independent_of_insertion_order(items: dict[bytes, bytes], rnd: random.Random) -> None:
    pairs = list(items.items())
    rnd.shuffle(pairs)
    shuffled = SparseMerkleTree()
    for k, v in pairs:
        shuffled.set(k, v)
    assert shuffled.root() == tree_of(items).root()
    # Rehashing partway through must not change the outcome either.
    interleaved = SparseMerkleTree()
    for k, v in reversed(pairs):
        interleaved.set(k, v)
        if rnd.random() < 0.3:
            interleaved.root()
    assert interleaved.root() == shuffled.root()


@given(
    st.lists(
        st.tuples(st.sampled_from([b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h"]), values_st)
        | st.tuples(keys_st, st.none() | values_st),
        max_size=60,
    ),
    st.randoms(use_true_random=False),
)
def test_random_operations_against_a_model(
    ops: list[tuple[bytes, bytes | None]], rnd: random.Random
) -> None:
    tree = SparseMerkleTree()
    model: dict[bytes, bytes] = {}
    for key, value in ops:
        if value is None:
            tree.delete(key)
            model.pop(key, None)
        else:
            tree.set(key, value)
            model[key] = value
        if rnd.random() < 0.25:
            assert tree.root() == ref_root_of(model)
    assert tree.root() == ref_root_of(model)
    assert len(tree) == len(model)
    for key, _ in ops:
        assert tree.get(key) == model.get(key)
        assert (key in tree) == (key in model)


@given(maps_st, keys_st, values_st)
def test_delete_restores_previous_root(items: dict[bytes, bytes], key: bytes, value: bytes) -> None:
    tree = tree_of(items)
    before = tree.root()
    old = tree.get(key)
    tree.set(key, value + b"!")
    assert tree.root() != before
    if old is None:
        tree.delete(key)
    else:
        tree.set(key, old)
    assert tree.root() == before
    assert len(tree) == len(items)


def test_delete_everything_gives_the_empty_root() -> None:
    items = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(50)}
    tree = tree_of(items)
    for key in sorted(items, reverse=True):
        tree.delete(key)
    assert tree.root() == EMPTY_HASH
    assert len(tree) == 0


def test_delete_absent_is_a_no_op() -> None:
    tree = tree_of({b"a": b"1", b"b": b"2"})
    before = tree.root()
    tree.delete(b"zzz")
    tree.delete(b"zzz")
    assert tree.root() == before
    assert len(tree) == 2


def test_empty_value_is_present() -> None:
    tree = SparseMerkleTree()
    tree.set(b"k", b"")
    assert tree.get(b"k") == b""
    assert b"k" in tree
    assert len(tree) == 1
    assert tree.root() == leaf_hash(key_path(b"k"), _sha(b"")) != EMPTY_HASH
    proof = tree.prove(b"k")
    assert proof.value == b""
    verify_proof(tree.root(), proof)


def test_setting_the_same_value_keeps_the_root() -> None:
    tree = tree_of({b"a": b"1", b"b": b"2", b"c": b"3"})
    before = tree.root()
    tree.set(b"b", b"2")
    assert tree.root() == before


def test_update_batch() -> None:
    base = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(30)}
    tree = SparseMerkleTree.from_items(base.items())
    changes: dict[bytes, bytes | None] = {
        b"key-1": None,
        b"key-2": b"new",
        b"key-99": b"added",
        b"absent": None,
    }
    tree.update(changes)
    expected = dict(base)
    del expected[b"key-1"]
    expected[b"key-2"] = b"new"
    expected[b"key-99"] = b"added"
    assert tree.root() == ref_root_of(expected)
    assert len(tree) == len(expected)
    assert tree.get(b"key-1") is None
    assert tree.get(b"key-99") == b"added"


def test_update_checks_types_before_changing_anything() -> None:
    tree = tree_of({b"a": b"1"})
    before = tree.root()
    with pytest.raises(TypeError):
        tree.update({b"b": b"2", b"c": "3"})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        tree.update({b"b": b"2", "c": None})  # type: ignore[dict-item]
    assert tree.root() == before
    assert len(tree) == 1


def test_type_errors() -> None:
    tree = SparseMerkleTree()
    with pytest.raises(TypeError):
        tree.set("k", b"v")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        tree.set(b"k", "v")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        tree.get("k")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        tree.delete(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        SparseMerkleTree.from_items([(b"k", 1)])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        SparseMerkleTree.from_items([("k", b"v")])  # type: ignore[list-item]
    assert "k" not in tree


def test_from_items_last_value_wins_and_matches_sets() -> None:
    pairs = [(b"a", b"1"), (b"b", b"2"), (b"a", b"3")]
    tree = SparseMerkleTree.from_items(pairs)
    assert tree.get(b"a") == b"3"
    assert len(tree) == 2
    assert tree.root() == tree_of({b"a": b"3", b"b": b"2"}).root()


def test_from_items_leaves_the_garbage_collector_as_it_was() -> None:
    assert gc.isenabled()
    SparseMerkleTree.from_items([(b"a", b"1"), (b"b", b"2")])
    assert gc.isenabled()
    with pytest.raises(TypeError):
        SparseMerkleTree.from_items([(b"a", None)])  # type: ignore[list-item]
    assert gc.isenabled()
    gc.disable()
    try:
        SparseMerkleTree.from_items([(b"a", b"1")])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_larger_tree_bulk_sequential_and_batched_agree() -> None:
    rnd = random.Random(5)
    items = {f"acct/{i}".encode(): rnd.randbytes(rnd.randrange(0, 40)) for i in range(1500)}
    bulk = SparseMerkleTree.from_items(items.items())
    assert bulk.root() == tree_of(items).root() == ref_root_of(items)
    changes: dict[bytes, bytes | None] = {}
    for i in rnd.sample(range(2000), 300):
        changes[f"acct/{i}".encode()] = None if i % 3 == 0 else b"changed %d" % i
    bulk.update(changes)
    expected = dict(items)
    for k, v in changes.items():
        if v is None:
            expected.pop(k, None)
        else:
            expected[k] = v
    assert bulk.root() == SparseMerkleTree.from_items(expected.items()).root()
    assert bulk.root() == ref_root_of(expected)
    assert len(bulk) == len(expected)


# --- (b) Crafted paths: deep chains, depth 256 ------------------------------------------
#
# Real paths are SHA-256 outputs, so deep structures cannot be reached through keys; the
# private path-level entry points let us place leaves at chosen paths.


def _flip(path: bytes, bit: int) -> bytes:
    raw = bytearray(path)
    raw[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(raw)


crafted_paths_st = st.lists(
    st.tuples(
        st.sampled_from([bytes(32), b"\xff" * 32, bytes(range(32))]),
        st.lists(st.integers(0, 255), max_size=3),
    ).map(lambda t: _apply_flips(t[0], t[1])),
    min_size=0,
    max_size=12,
)


def _apply_flips(base: bytes, bits: list[int]) -> bytes:
    for b in bits:
        base = _flip(base, b)
    return base


@given(crafted_paths_st, st.randoms(use_true_random=False))
def test_crafted_paths_match_reference(paths: list[bytes], rnd: random.Random) -> None:
    entries = {p: bytes([i]) for i, p in enumerate(paths)}
    expected = ref_root(entries)
    tree = SparseMerkleTree()
    for p, v in entries.items():
        tree._set(p, v)
    assert tree.root() == expected
    assert SparseMerkleTree._from_path_values(dict(entries)).root() == expected
    # Remove a random half, one by one, checking against the reference.
    for p in rnd.sample(sorted(entries), len(entries) // 2):
        del tree._values[p]
        tree._remove(p)
        del entries[p]
        assert tree.root() == ref_root(entries)


def test_leaves_at_depth_256() -> None:
    a = bytes(32)
    b = _flip(a, 255)
    c = _flip(a, 254)
    entries = {a: b"a", b: b"b", c: b"c"}
    tree = SparseMerkleTree._from_path_values(dict(entries))
    assert tree.root() == ref_root(entries)
    sequential = SparseMerkleTree()
    for p, v in entries.items():
        sequential._set(p, v)
    assert sequential.root() == ref_root(entries)
    del sequential._values[b]
    sequential._remove(b)
    assert sequential.root() == ref_root({a: b"a", c: b"c"})


# --- (c) Proofs -------------------------------------------------------------------------


def _check_rejected(root: bytes, proof: StateProof, match: str | None = None) -> None:
    with pytest.raises(InvalidProof, match=match):
        verify_proof(Hash32(root), proof)
    assert not is_valid_proof(Hash32(root), proof)


@given(maps_st, st.lists(keys_st, max_size=5))
def test_proofs_verify_for_present_and_absent_keys(
    items: dict[bytes, bytes], others: list[bytes]
) -> None:
    tree = tree_of(items)
    root = tree.root()
    for key in [*items, *others]:
        proof = tree.prove(key)
        assert proof.key == key
        assert proof.value == items.get(key)
        verify_proof(root, proof)
        assert is_valid_proof(root, proof)
        assert StateProof.from_value(proof.to_value()) == proof
        assert StateProof.from_value(decode(encode(proof.to_value()))) == proof


@given(maps_st.filter(lambda m: len(m) >= 1), st.data())
def test_tampered_proofs_fail(items: dict[bytes, bytes], data: st.DataObject) -> None:
    tree = tree_of(items)
    root = tree.root()
    key = data.draw(st.sampled_from(sorted(items)))
    proof = tree.prove(key)
    replace = dataclasses.replace
    _check_rejected(root, replace(proof, value=proof.value + b"x"))  # type: ignore[operator]
    _check_rejected(root, replace(proof, key=key + b"x"))
    _check_rejected(root, replace(proof, value=None))
    _check_rejected(root, replace(proof, siblings=(*proof.siblings, EMPTY_HASH)))
    _check_rejected(bytes([root[0] ^ 1]) + root[1:], proof)
    if proof.siblings:
        i = data.draw(st.integers(0, len(proof.siblings) - 1))
        j = data.draw(st.integers(0, 31))
        s = proof.siblings[i]
        flipped = Hash32(s[:j] + bytes([s[j] ^ 0x01]) + s[j + 1 :])
        siblings = (*proof.siblings[:i], flipped, *proof.siblings[i + 1 :])
        _check_rejected(root, replace(proof, siblings=siblings))
        _check_rejected(root, replace(proof, siblings=proof.siblings[:-1]))
        _check_rejected(root, replace(proof, siblings=proof.siblings[1:]))


def test_absence_ending_on_an_empty_subtree() -> None:
    # Two keys left of the root (path bit 0 = 0); an absent key to the right.
    a = find_key("00")
    b = find_key("01", avoid={a})
    x = find_key("1", tag="absent")
    tree = tree_of({a: b"1", b: b"2"})
    proof = tree.prove(x)
    assert proof.value is None and proof.other_path is None
    assert len(proof.siblings) == 1
    assert proof.siblings[0] == node_hash(
        leaf_hash(key_path(a), _sha(b"1")), leaf_hash(key_path(b), _sha(b"2"))
    )
    verify_proof(tree.root(), proof)
    # Claiming a value for it fails, as does claiming another leaf there.
    _check_rejected(tree.root(), dataclasses.replace(proof, value=b"1"))
    _check_rejected(
        tree.root(),
        dataclasses.replace(proof, other_path=key_path(a), other_value_hash=Hash32(_sha(b"1"))),
    )


def test_absence_ending_on_another_leaf() -> None:
    a = find_key("00")
    b = find_key("01", avoid={a})
    x = find_key("01", avoid={a, b}, tag="absent")
    tree = tree_of({a: b"1", b: b"2"})
    root = tree.root()
    proof = tree.prove(x)
    assert proof.value is None
    assert proof.other_path == key_path(b)
    assert proof.other_value_hash == _sha(b"2")
    # Siblings: the empty right half at depth 1, then a's leaf at depth 2.
    assert proof.siblings == (EMPTY_HASH, leaf_hash(key_path(a), _sha(b"1")))
    verify_proof(root, proof)
    replace = dataclasses.replace
    _check_rejected(root, replace(proof, other_path=None, other_value_hash=None))
    _check_rejected(root, replace(proof, other_value_hash=Hash32(_sha(b"3"))))
    _check_rejected(root, replace(proof, other_path=key_path(x)), "key's own path")
    _check_rejected(root, replace(proof, other_path=key_path(a)), "leaves the key's path at bit 1")
    _check_rejected(root, replace(proof, other_value_hash=None), "together")
    _check_rejected(root, replace(proof, value=b"2"), "cannot carry another leaf")


def test_absence_in_single_leaf_and_empty_trees() -> None:
    empty = SparseMerkleTree()
    proof = empty.prove(b"x")
    assert proof == StateProof(b"x", None, ())
    verify_proof(EMPTY_HASH, proof)
    one = tree_of({b"k": b"v"})
    proof = one.prove(b"x")
    assert proof.siblings == ()
    assert proof.other_path == key_path(b"k")
    verify_proof(one.root(), proof)
    present = one.prove(b"k")
    assert present == StateProof(b"k", b"v", ())
    verify_proof(one.root(), present)
    _check_rejected(EMPTY_HASH, present)


def test_proof_after_unflushed_updates_uses_fresh_hashes() -> None:
    tree = tree_of({f"k{i}".encode(): b"v" for i in range(20)})
    tree.root()
    tree.set(b"k3", b"changed")
    tree.delete(b"k4")
    proof = tree.prove(b"k3")  # no root() in between
    verify_proof(tree.root(), proof)
    assert proof.value == b"changed"


def test_verify_rejects_malformed_input() -> None:
    tree = tree_of({b"a": b"1", b"b": b"2", b"c": b"3"})
    root = tree.root()
    proof = tree.prove(b"a")
    _check_rejected(root[:31], proof, "32 bytes")
    _check_rejected(root, dataclasses.replace(proof, key="a"), "key must be bytes")  # type: ignore[arg-type]
    _check_rejected(root, dataclasses.replace(proof, siblings=(Hash32(b"x" * 31),)), "sibling 0")
    _check_rejected(root, dataclasses.replace(proof, siblings=(EMPTY_HASH,) * 257), "at most 256")
    absent = dataclasses.replace(proof, value=None, other_path=Hash32(b"\x00" * 31))
    _check_rejected(root, dataclasses.replace(absent, other_value_hash=EMPTY_HASH), "other_path")


def test_error_message_names_both_roots() -> None:
    tree = tree_of({b"a": b"1"})
    proof = tree.prove(b"a")
    with pytest.raises(InvalidProof) as info:
        verify_proof(EMPTY_HASH, proof)
    assert tree.root().hex() in str(info.value)
    assert EMPTY_HASH.hex() in str(info.value)
    assert info.value.code == "invalid_proof"


# --- (d) Proof values -------------------------------------------------------------------


H = b"\x11" * 32


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (b"not a list", "list of 5"),
        ([b"k", None, []], "list of 5"),
        (["k", None, [], None, None], "key must be bytes"),
        ([b"k", 1, [], None, None], "value must be bytes or null"),
        ([b"k", None, b"", None, None], "siblings must be a list"),
        ([b"k", None, [H[:31]], None, None], "sibling 0"),
        ([b"k", None, [H, "x"], None, None], "sibling 1"),
        ([b"k", None, [H] * 257, None, None], "at most 256"),
        ([b"k", None, [], H, None], "go together"),
        ([b"k", None, [], None, H], "go together"),
        ([b"k", b"v", [], H, H], "cannot carry another leaf"),
        ([b"k", None, [], H[:31], H], "other_path"),
        ([b"k", None, [], H, 5], "other_value_hash"),
    ],
)
def test_proof_from_value_rejects(value: Value, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        StateProof.from_value(value)


def test_proof_value_layout() -> None:
    proof = StateProof(b"k", None, (EMPTY_HASH,), Hash32(H), Hash32(H))
    assert proof.to_value() == [b"k", None, [bytes(32)], H, H]
    assert StateProof.from_value([b"k", b"", [], None, None]) == StateProof(b"k", b"", ())


# --- (e) The vectors file ---------------------------------------------------------------


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_state", VECTORS_DIR / "generate_state.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _vectors() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    return loaded


def _hex_or_none(text: str | None) -> bytes | None:
    return None if text is None else bytes.fromhex(text)


def _proof(raw: dict[str, Any]) -> StateProof:
    return StateProof.from_value(
        [
            bytes.fromhex(raw["key"]),
            _hex_or_none(raw["value"]),
            [bytes.fromhex(s) for s in raw["siblings"]],
            _hex_or_none(raw["other_path"]),
            _hex_or_none(raw["other_value_hash"]),
        ]
    )


def test_vectors_file_is_up_to_date() -> None:
    generator = _load_generator()
    assert VECTORS_FILE.read_text(encoding="utf-8") == generator.render(), (
        "tests/vectors/state.json is stale: run tests/vectors/generate_state.py"
    )


def test_vectors_leaves() -> None:
    vectors = _vectors()
    assert vectors["empty_root"] == EMPTY_HASH.hex()
    for raw in vectors["leaves"]:
        key, value = bytes.fromhex(raw["key"]), bytes.fromhex(raw["value"])
        assert key_path(key).hex() == raw["path"]
        assert _sha(value).hex() == raw["value_hash"]
        assert leaf_hash(key_path(key), _sha(value)).hex() == raw["leaf_hash"]
        assert tree_of({key: value}).root().hex() == raw["leaf_hash"]


def test_vectors_sequences() -> None:
    sequences = _vectors()["sequences"]
    kinds: set[str] = set()
    for seq in sequences:
        tree = SparseMerkleTree()
        model: dict[bytes, bytes] = {}
        for step in seq["steps"]:
            key = bytes.fromhex(step["key"])
            if step["op"] == "set":
                value = bytes.fromhex(step["value"])
                tree.set(key, value)
                model[key] = value
            else:
                assert step["op"] == "delete"
                tree.delete(key)
                model.pop(key, None)
            assert tree.root().hex() == step["root"], seq["name"]
        assert len(tree) == seq["size"]
        assert tree.root().hex() == seq["root"]
        assert SparseMerkleTree.from_items(model.items()).root().hex() == seq["root"]
        root = tree.root()
        for raw in seq["proofs"]:
            proof = _proof(raw)
            assert tree.prove(proof.key) == proof, (seq["name"], raw["kind"])
            verify_proof(root, proof)
            assert encode(proof.to_value()).hex() == raw["encoded"]
            assert StateProof.from_value(decode(bytes.fromhex(raw["encoded"]))) == proof
            kinds.add(raw["kind"])
    assert kinds == {"present", "absent, empty subtree", "absent, other leaf"}
    deep = next(s for s in sequences if s["name"] == "long shared prefix")
    assert max(len(p["siblings"]) for p in deep["proofs"]) >= 17


def test_vectors_invalid_proofs() -> None:
    cases = _vectors()["invalid_proofs"]
    assert len(cases) >= 10
    for case in cases:
        proof = _proof(case["proof"])
        root = Hash32(bytes.fromhex(case["root"]))
        assert not is_valid_proof(root, proof), case["reason"]
