"""Tests of headers, validator sets, commits, blocks, genesis and receipt proofs.

The vectors (``tests/vectors/blocks.json``) were produced without ``civicledger`` (an
independent encoder, recursive Merkle and state trees, PyNaCl directly); here
``civicledger`` must reproduce every encoding and hash, accept every valid commit and
proof, and refuse every invalid one.
"""

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

from civicledger.chain.block import (
    MAX_BLOCK_SIZE,
    ZERO_HASH,
    Block,
    Commit,
    CommitSignature,
    Header,
    Validator,
    ValidatorSet,
    compute_receipts_root,
    compute_tx_root,
    decode_block,
    decode_commit,
    decode_header,
    vote_signing_bytes,
)
from civicledger.chain.genesis import Genesis
from civicledger.chain.merkle import EMPTY_ROOT
from civicledger.chain.proof import ReceiptProof, verify_receipt_proof
from civicledger.chain.receipt import decode_receipt
from civicledger.chain.transaction import Transaction, decode_transaction, make_transaction
from civicledger.crypto.hashing import DOMAIN_BLOCK, DOMAIN_VOTE_SIGN
from civicledger.crypto.keys import KeyPair
from civicledger.encoding import Value, decode, encode
from civicledger.errors import DecodeError, InvalidBlock, InvalidProof, InvalidTransaction
from civicledger.state.smt import SparseMerkleTree
from civicledger.types import Address, Hash32, PublicKey, Signature

VECTORS_DIR = Path(__file__).resolve().parents[1] / "vectors"
VECTORS_FILE = VECTORS_DIR / "blocks.json"
CHAIN = "civic-test"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_blocks", VECTORS_DIR / "generate_blocks.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _vectors() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    return loaded


def _validators_from_hex(text: str) -> ValidatorSet:
    return ValidatorSet.from_value(decode(bytes.fromhex(text)))


def key(n: int) -> KeyPair:
    return KeyPair.from_seed(hashlib.sha256(f"block test key {n}".encode()).digest())


def h32(label: str) -> Hash32:
    return Hash32(hashlib.sha256(label.encode()).digest())


def make_header(validators: ValidatorSet, **changes: Any) -> Header:
    fields: dict[str, Any] = {
        "chain_id": CHAIN,
        "height": 5,
        "prev_hash": h32("prev"),
        "time_ms": 1_767_225_600_000,
        "proposer": Address(bytes(range(20))),
        "tx_root": EMPTY_ROOT,
        "state_root": h32("state"),
        "receipts_root": EMPTY_ROOT,
        "validator_set_hash": validators.hash,
    }
    fields.update(changes)
    return Header(**fields)


def vset(*powers: int) -> tuple[ValidatorSet, list[KeyPair]]:
    keys = [key(i) for i in range(len(powers))]
    validators = ValidatorSet.of(
        [Validator(k.public_key, p) for k, p in zip(keys, powers, strict=True)]
    )
    return validators, keys


# --- (a) The vectors ----------------------------------------------------------------------


def test_vectors_file_is_up_to_date() -> None:
    assert VECTORS_FILE.read_text(encoding="utf-8") == _load_generator().render(), (
        "tests/vectors/blocks.json is stale: run tests/vectors/generate_blocks.py"
    )


def test_vectors_domains() -> None:
    domains = _vectors()["domains"]
    assert bytes.fromhex(domains["block"]) == DOMAIN_BLOCK
    assert bytes.fromhex(domains["vote_sign"]) == DOMAIN_VOTE_SIGN


def test_vectors_validator_sets() -> None:
    for case in _vectors()["validator_sets"]:
        validators = ValidatorSet.of(
            [
                Validator(PublicKey(bytes.fromhex(v["public_key"])), v["power"])
                for v in case["validators"]
            ]
        )
        assert encode(validators.to_value()).hex() == case["encoded"], case["name"]
        assert validators.hash.hex() == case["hash"], case["name"]
        assert _validators_from_hex(case["encoded"]) == validators


def test_vectors_genesis() -> None:
    case = _vectors()["genesis"]
    genesis = Genesis.from_json(case["file"])
    state = genesis.initial_state()
    assert sorted((k.hex(), v.hex()) for k, v in state.items()) == [
        (e["key"], e["value"]) for e in case["state"]
    ]
    assert [k.decode() for k in sorted(state)] == [e["key_text"] for e in case["state"]]
    root = SparseMerkleTree.from_items(state.items()).root()
    assert root.hex() == case["state_root"]
    assert EMPTY_ROOT.hex() == case["empty_root"]
    block = genesis.block(root)
    assert block.header.encoded.hex() == case["header_encoded"]
    assert block.hash.hex() == case["hash"]
    assert block.transactions == ()
    assert {k: v for k, v in block.header.to_json().items() if k != "hash"} == case["header"]
    assert decode_header(bytes.fromhex(case["header_encoded"])) == block.header


def test_vectors_block1() -> None:
    case = _vectors()["block1"]
    block = decode_block(bytes.fromhex(case["block_encoded"]))
    header = block.header
    assert header.encoded.hex() == case["header_encoded"]
    assert header.hash.hex() == case["hash"]
    assert {k: v for k, v in header.to_json().items() if k != "hash"} == case["header"]
    assert header.prev_hash.hex() == _vectors()["genesis"]["hash"]
    assert [tx.encoded.hex() for tx in block.transactions] == case["transactions"]
    assert [tx.tx_id.hex() for tx in block.transactions] == case["tx_ids"]
    assert all(tx.is_signature_valid() for tx in block.transactions)
    assert compute_tx_root(block.transactions) == header.tx_root
    receipts = [decode_receipt(bytes.fromhex(r)) for r in case["receipts"]]
    assert [r.tx_id for r in receipts] == [tx.tx_id for tx in block.transactions]
    assert compute_receipts_root(receipts) == header.receipts_root
    rebuilt = Block(
        header, tuple(decode_transaction(bytes.fromhex(t)) for t in case["transactions"])
    )
    assert rebuilt.encoded.hex() == case["block_encoded"]
    vote = case["vote"]
    assert (
        vote_signing_bytes(CHAIN, vote["height"], vote["round"], header.hash).hex()
        == vote["signing_bytes"]
    )


def test_vectors_commits() -> None:
    vectors = _vectors()
    header = decode_header(bytes.fromhex(vectors["block1"]["header_encoded"]))
    three = _validators_from_hex(vectors["validator_sets"][1]["encoded"])
    for case in vectors["block1"]["commits"]:
        raw = bytes.fromhex(case["hex"])
        commit = decode_commit(raw)
        assert commit.encoded == raw, case["name"]
        commit.validate(CHAIN, header, three)


def test_vectors_commit_signed_by_fixed_keys_is_reproduced() -> None:
    vectors = _vectors()
    header = decode_header(bytes.fromhex(vectors["block1"]["header_encoded"]))
    keys = [
        KeyPair.from_seed(hashlib.sha256(f"civic-ledger test key {n}".encode()).digest())
        for n in (1, 2, 3)
    ]
    commit = Commit.sign(CHAIN, 1, 0, header.hash, keys)
    assert commit.encoded.hex() == vectors["block1"]["commits"][0]["hex"]


def test_vectors_invalid_commits() -> None:
    vectors = _vectors()
    header = decode_header(bytes.fromhex(vectors["block1"]["header_encoded"]))
    three = _validators_from_hex(vectors["validator_sets"][1]["encoded"])
    cases = vectors["block1"]["invalid_commits"]
    assert len(cases) >= 10
    for case in cases:
        validators = _validators_from_hex(case["validators"]) if "validators" in case else three
        commit = decode_commit(bytes.fromhex(case["hex"]))
        with pytest.raises(InvalidBlock):
            commit.validate(CHAIN, header, validators)


def test_vectors_receipt_proofs() -> None:
    vectors = _vectors()
    trusted = _validators_from_hex(vectors["validator_sets"][1]["encoded"])
    proofs = vectors["receipt_proofs"]
    assert len(proofs) == 3
    for obj in proofs:
        proof = ReceiptProof.from_json(obj)
        assert proof.to_json() == obj
        verify_receipt_proof(proof)
        verify_receipt_proof(proof, trusted_validators=trusted)


def test_vectors_invalid_receipt_proofs() -> None:
    cases = _vectors()["invalid_receipt_proofs"]
    assert len(cases) >= 8
    for case in cases:
        proof = ReceiptProof.from_json(case["proof"])
        trusted = (
            _validators_from_hex(case["trusted_validators"])
            if "trusted_validators" in case
            else None
        )
        with pytest.raises(InvalidProof):
            verify_receipt_proof(proof, trusted_validators=trusted)


def test_vectors_malformed_receipt_proofs() -> None:
    cases = _vectors()["malformed_receipt_proofs"]
    assert len(cases) >= 5
    for case in cases:
        with pytest.raises(DecodeError):
            ReceiptProof.from_json(case["proof"])


def test_vectors_tree_size_is_not_pinned_by_the_header() -> None:
    # Documented limitation (docs/spec/receipts.md): leaf 0 of the 3-leaf tree also
    # verifies as leaf 0 of 4; verify_receipt_proof accepts the proof's tree_size as given.
    proof = ReceiptProof.from_json(_vectors()["tree_size_not_pinned"])
    assert proof.tx_proof.tree_size == 4
    verify_receipt_proof(proof)


# --- (b) Headers ------------------------------------------------------------------------

hashes = st.binary(min_size=32, max_size=32).map(Hash32)
headers = st.builds(
    Header,
    chain_id=st.text(max_size=70),
    height=st.integers(min_value=0, max_value=2**64),
    prev_hash=hashes,
    time_ms=st.integers(min_value=0, max_value=2**64),
    proposer=st.binary(min_size=20, max_size=20).map(Address),
    tx_root=hashes,
    state_root=hashes,
    receipts_root=hashes,
    validator_set_hash=hashes,
)


@settings(max_examples=200, deadline=None)
@given(headers)
def test_header_round_trip(header: Header) -> None:
    raw = header.encoded
    assert decode_header(raw) == header
    assert Header.from_value(header.to_value()) == header
    assert header.hash == hashlib.sha256(DOMAIN_BLOCK + raw).digest()


def test_header_is_nine_items_in_order() -> None:
    validators, _ = vset(1)
    header = make_header(validators)
    assert header.to_value() == [
        header.chain_id,
        header.height,
        header.prev_hash,
        header.time_ms,
        header.proposer,
        header.tx_root,
        header.state_root,
        header.receipts_root,
        header.validator_set_hash,
    ]


def _assert_changed_header_is_refused_or_rehashed(original: Header, data: bytes) -> None:
    try:
        header = decode_header(data)
    except DecodeError:
        return
    assert header.hash != original.hash
    assert header.encoded == data


def test_every_single_byte_change_of_a_header_is_refused_or_changes_the_hash() -> None:
    validators, _ = vset(1, 2)
    for header in (make_header(validators), make_header(validators, height=0, chain_id="é")):
        raw = header.encoded
        for pos in range(len(raw)):
            replacements = {raw[pos] ^ (1 << bit) for bit in range(8)} | {0x00, 0x7F, 0x80, 0xFF}
            replacements.discard(raw[pos])
            for byte in replacements:
                data = bytearray(raw)
                data[pos] = byte
                _assert_changed_header_is_refused_or_rehashed(header, bytes(data))


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (0, b"civic-test"),
        (1, -1),
        (1, True),
        (2, bytes(31)),
        (3, "now"),
        (3, -5),
        (4, bytes(32)),
        (5, None),
        (6, bytes(33)),
        (7, "root"),
        (8, bytes(20)),
    ],
)
def test_header_field_types_are_checked(index: int, value: Value) -> None:
    validators, _ = vset(1)
    items = make_header(validators).to_value()
    items[index] = value
    with pytest.raises(DecodeError):
        decode_header(encode(items))


def test_header_shape_is_checked() -> None:
    validators, _ = vset(1)
    items = make_header(validators).to_value()
    for value in (items[:8], [*items, None], {"chain_id": CHAIN}, None):
        with pytest.raises(DecodeError):
            decode_header(encode(value))


# --- (c) Validator sets -----------------------------------------------------------------


def test_validator_set_is_sorted_by_public_key() -> None:
    keys = [key(i) for i in range(5)]
    validators = ValidatorSet.of([Validator(k.public_key, i + 1) for i, k in enumerate(keys)])
    pks = [v.public_key for v in validators.validators]
    assert pks == sorted(pks)
    assert validators.to_value() == [[v.public_key, v.power] for v in validators.validators]
    assert validators.hash == hashlib.sha256(encode(validators.to_value())).digest()
    assert validators.total_power == 15
    assert validators.get_power(keys[2].public_key) == 3
    assert validators.get_power(key(99).public_key) == 0


def test_validator_set_rules() -> None:
    a, b = sorted([key(1).public_key, key(2).public_key])
    with pytest.raises(InvalidBlock):
        ValidatorSet((Validator(b, 1), Validator(a, 1)))  # unsorted
    with pytest.raises(InvalidBlock):
        ValidatorSet((Validator(a, 1), Validator(a, 2)))  # repeated
    with pytest.raises(InvalidBlock):
        ValidatorSet(())  # empty
    with pytest.raises(InvalidBlock):
        ValidatorSet((Validator(a, 0),))  # no power
    with pytest.raises(InvalidBlock):
        ValidatorSet((Validator(a, -1),))
    ValidatorSet((Validator(a, 1), Validator(b, 1)))


def test_validator_set_hash_depends_on_keys_and_powers() -> None:
    one, _ = vset(1, 2)
    two, _ = vset(1, 3)
    three, _ = vset(1, 2, 1)
    assert len({one.hash, two.hash, three.hash}) == 3


@pytest.mark.parametrize(
    "value",
    [
        None,
        {"validators": []},
        [[bytes(32)]],
        [[bytes(32), 1, 2]],
        [[bytes(31), 1]],
        [["key", 1]],
        [[bytes(32), -1]],
        [[bytes(32), True]],
        [[bytes(32), "1"]],
    ],
)
def test_validator_set_decoding_refuses_bad_shapes(value: Value) -> None:
    with pytest.raises(DecodeError):
        ValidatorSet.from_value(value)


def test_validator_set_decoding_applies_the_ordering_rules() -> None:
    a, b = sorted([key(1).public_key, key(2).public_key])
    for value in ([[b, 1], [a, 1]], [[a, 1], [a, 1]], [], [[a, 0]]):
        with pytest.raises(DecodeError):
            ValidatorSet.from_value(value)


# --- (d) Commits ------------------------------------------------------------------------


def _signed(
    validators: ValidatorSet, header: Header, keys: list[KeyPair], round_: int = 0
) -> Commit:
    return Commit.sign(CHAIN, header.height, round_, header.hash, keys)


def test_commit_valid() -> None:
    validators, keys = vset(10, 20, 30)
    header = make_header(validators)
    commit = _signed(validators, header, keys)
    commit.validate(CHAIN, header, validators)
    assert [s.public_key for s in commit.signatures] == sorted(k.public_key for k in keys)
    assert decode_commit(commit.encoded) == commit
    # Consensus rounds other than 0 are fine if signed for that round.
    _signed(validators, header, keys, round_=4).validate(CHAIN, header, validators)


def test_commit_power_threshold_is_strictly_more_than_two_thirds() -> None:
    validators, keys = vset(1, 1, 1)
    header = make_header(validators)
    with pytest.raises(InvalidBlock, match="not more than 2/3"):
        _signed(validators, header, keys[:2]).validate(CHAIN, header, validators)
    _signed(validators, header, keys).validate(CHAIN, header, validators)
    validators4, keys4 = vset(1, 1, 1, 1)
    header4 = make_header(validators4)
    _signed(validators4, header4, keys4[:3]).validate(CHAIN, header4, validators4)
    with pytest.raises(InvalidBlock):
        _signed(validators4, header4, keys4[:2]).validate(CHAIN, header4, validators4)


def test_commit_single_validator() -> None:
    validators, keys = vset(1)
    header = make_header(validators)
    _signed(validators, header, keys).validate(CHAIN, header, validators)
    with pytest.raises(InvalidBlock):
        Commit(header.height, 0, header.hash, ()).validate(CHAIN, header, validators)


def test_commit_missing_power() -> None:
    validators, keys = vset(10, 20, 30)
    header = make_header(validators)
    by_power = {v.public_key: v.power for v in validators.validators}
    weakest = sorted(keys, key=lambda k: by_power[k.public_key])[:2]  # 30 of 60
    with pytest.raises(InvalidBlock, match="not more than 2/3"):
        _signed(validators, header, weakest).validate(CHAIN, header, validators)


def test_commit_non_validator_signer() -> None:
    validators, keys = vset(1, 1, 1)
    header = make_header(validators)
    commit = _signed(validators, header, [*keys, key(77)])
    with pytest.raises(InvalidBlock, match="not a validator"):
        commit.validate(CHAIN, header, validators)


def test_commit_duplicate_or_unsorted_signers() -> None:
    validators, keys = vset(1, 1, 1)
    header = make_header(validators)
    commit = _signed(validators, header, keys)
    sigs = commit.signatures
    for bad in (
        (sigs[0], sigs[0], sigs[1], sigs[2]),
        (sigs[1], sigs[0], sigs[2]),
        (sigs[2], sigs[1], sigs[0]),
    ):
        with pytest.raises(InvalidBlock, match="unsorted or repeated"):
            Commit(commit.height, commit.round, commit.block_hash, bad).validate(
                CHAIN, header, validators
            )


def test_commit_bad_signature() -> None:
    validators, keys = vset(1, 1, 1)
    header = make_header(validators)
    commit = _signed(validators, header, keys)
    sigs = list(commit.signatures)
    broken = bytearray(sigs[1].signature)
    broken[10] ^= 0x40
    sigs[1] = CommitSignature(sigs[1].public_key, Signature(bytes(broken)))
    # Even though the other two would be enough power, every signature must be valid.
    bad = Commit(commit.height, commit.round, commit.block_hash, tuple(sigs))
    with pytest.raises(InvalidBlock, match="bad signature"):
        bad.validate(CHAIN, header, validators)


def test_commit_signed_for_other_round_or_chain() -> None:
    validators, keys = vset(1, 1, 1)
    header = make_header(validators)
    commit = _signed(validators, header, keys, round_=1)
    relabelled = Commit(commit.height, 0, commit.block_hash, commit.signatures)
    with pytest.raises(InvalidBlock, match="bad signature"):
        relabelled.validate(CHAIN, header, validators)
    other_chain = Commit.sign("civic-main", header.height, 0, header.hash, keys)
    with pytest.raises(InvalidBlock, match="bad signature"):
        other_chain.validate(CHAIN, header, validators)


def test_commit_wrong_block_hash() -> None:
    validators, keys = vset(1, 1, 1)
    header = make_header(validators)
    other = make_header(validators, time_ms=header.time_ms + 1)
    commit = _signed(validators, other, keys)
    with pytest.raises(InvalidBlock, match="different block"):
        commit.validate(CHAIN, header, validators)


def test_commit_wrong_height() -> None:
    validators, keys = vset(1, 1, 1)
    header = make_header(validators)
    commit = Commit.sign(CHAIN, header.height + 1, 0, header.hash, keys)
    with pytest.raises(InvalidBlock, match="different block"):
        commit.validate(CHAIN, header, validators)


def test_commit_wrong_validator_set() -> None:
    validators, keys = vset(1, 1, 1)
    header = make_header(validators)
    commit = _signed(validators, header, keys)
    others, _ = vset(1, 1, 2)
    with pytest.raises(InvalidBlock, match="different validator set"):
        commit.validate(CHAIN, header, others)
    # Same keys with other powers is another set too.
    with pytest.raises(InvalidBlock, match="different validator set"):
        commit.validate(CHAIN, header, vset(2, 2, 2)[0])


@pytest.mark.parametrize(
    "value",
    [
        None,
        [1, 0, bytes(32)],
        [1, 0, bytes(32), None],
        [1, 0, bytes(31), []],
        [-1, 0, bytes(32), []],
        [1, -1, bytes(32), []],
        [True, 0, bytes(32), []],
        [1, 0, bytes(32), [[bytes(32)]]],
        [1, 0, bytes(32), [[bytes(32), bytes(63)]]],
        [1, 0, bytes(32), [[bytes(33), bytes(64)]]],
    ],
)
def test_commit_decoding_refuses_bad_shapes(value: Value) -> None:
    with pytest.raises(DecodeError):
        decode_commit(encode(value))


def test_vote_signing_bytes() -> None:
    block_hash = h32("block")
    assert vote_signing_bytes(CHAIN, 7, 2, block_hash) == DOMAIN_VOTE_SIGN + encode(
        [CHAIN, "precommit", 7, 2, block_hash]
    )


# --- (e) Blocks -------------------------------------------------------------------------


def _transactions(n: int) -> list[Transaction]:
    return [
        make_transaction(
            key(i % 3),
            chain_id=CHAIN,
            nonce=i,
            contract="documents",
            method="register",
            args={"id": f"doc-{i}", "sha256": h32(f"doc-{i}"), "title": "t"},
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("count", [0, 1, 2, 5])
def test_decode_block_round_trip(count: int) -> None:
    validators, _ = vset(1)
    txs = _transactions(count)
    header = make_header(validators, tx_root=compute_tx_root(txs))
    block = Block(header, tuple(txs))
    assert block.to_value() == [header.to_value(), [tx.encoded for tx in txs]]
    decoded = decode_block(block.encoded)
    assert decoded == block
    assert decoded.hash == header.hash
    assert decoded.height == header.height
    assert decoded.encoded == block.encoded
    assert [tx.tx_id for tx in decoded.transactions] == [tx.tx_id for tx in txs]
    assert compute_tx_root(decoded.transactions) == header.tx_root


def test_decode_block_refuses_bad_shapes() -> None:
    validators, _ = vset(1)
    header = make_header(validators)
    tx = _transactions(1)[0]
    for value in (
        None,
        [header.to_value()],
        [header.to_value(), [], []],
        [header.to_value(), None],
        [header.to_value()[:8], []],
        [header.to_value(), [encode(tx.to_value()[:8])]],
        # Transactions as values rather than their encodings are refused.
        [header.to_value(), [tx.to_value()]],
    ):
        with pytest.raises(DecodeError):
            decode_block(encode(value))
    bad_tx = tx.to_value()
    bad_tx[6] = 0  # fuel limit out of range
    with pytest.raises(InvalidTransaction):
        decode_block(encode([header.to_value(), [encode(bad_tx)]]))


def test_decode_block_refuses_oversized_input() -> None:
    with pytest.raises(DecodeError):
        decode_block(b"\x00" * (MAX_BLOCK_SIZE + 1))


def test_genesis_header_fields() -> None:
    validators, _ = vset(1, 2)
    genesis = Genesis(CHAIN, 1_000, validators)
    # The validator set lives in the state, so governance can change it.
    assert genesis.initial_state() == {b"$sys/validators": encode(validators.to_value())}
    block = genesis.block(bytes(32))
    header = block.header
    assert header.height == 0
    assert header.prev_hash == ZERO_HASH
    assert header.proposer == bytes(20)
    assert header.tx_root == EMPTY_ROOT
    assert header.receipts_root == EMPTY_ROOT
    assert header.validator_set_hash == validators.hash
    assert header.time_ms == 1_000
