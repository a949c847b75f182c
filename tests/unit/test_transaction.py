"""Tests of keys, addresses and signed transactions (``civicledger.chain.transaction``).

The vectors (``tests/vectors/transactions.json``) were produced without ``civicledger``
(an independent encoder, ``hashlib`` and PyNaCl directly); here ``civicledger`` must
reproduce every key, address, signing string, signature, encoding and id, and refuse
every invalid transaction with the listed error code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from civicledger.chain.transaction import (
    MAX_ARGS_SIZE,
    MAX_FUEL_LIMIT,
    MAX_NAME_LENGTH,
    MAX_TX_SIZE,
    Transaction,
    compute_signing_bytes,
    decode_transaction,
    make_transaction,
    transaction_from_value,
)
from civicledger.crypto.hashing import DOMAIN_ADDRESS, DOMAIN_TX_SIGN
from civicledger.crypto.keys import KeyPair, compute_address, is_valid_signature
from civicledger.encoding import Value, decode, encode
from civicledger.errors import DecodeError, InvalidTransaction, LedgerError
from civicledger.jsonvalue import json_to_value
from civicledger.types import PublicKey

VECTORS_DIR = Path(__file__).resolve().parents[1] / "vectors"
VECTORS_FILE = VECTORS_DIR / "transactions.json"

#: The order of the Ed25519 group, L = 2^252 + 27742317777372353535851937790883648493.
ED25519_L = 2**252 + 27742317777372353535851937790883648493


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_transactions", VECTORS_DIR / "generate_transactions.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _vectors() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    return loaded


def key(n: int) -> KeyPair:
    return KeyPair.from_seed(hashlib.sha256(f"civic-ledger test key {n}".encode()).digest())


def sample_tx(**changes: Any) -> Transaction:
    fields: dict[str, Any] = {
        "chain_id": "civic-test",
        "nonce": 3,
        "contract": "documents",
        "method": "register",
        "args": {"id": "decree-1", "sha256": bytes(32), "title": "Décret"},
        "fuel_limit": 50_000,
        "expiry": 10,
    }
    fields.update(changes)
    return make_transaction(key(1), **fields)


def items_of(tx: Transaction) -> list[Value]:
    return tx.to_value()


def with_item(tx: Transaction, index: int, value: Value) -> bytes:
    items = items_of(tx)
    items[index] = value
    return encode(items)


def resign(k: KeyPair, items: list[Value]) -> bytes:
    """Encode ``items[:8]`` with a valid signature by ``k`` (range checks are not applied)."""
    body = items[:8]
    return encode([*body, k.sign(DOMAIN_TX_SIGN + encode(body))])


# --- (a) The vectors ----------------------------------------------------------------------


def test_vectors_file_is_up_to_date() -> None:
    assert VECTORS_FILE.read_text(encoding="utf-8") == _load_generator().render(), (
        "tests/vectors/transactions.json is stale: run tests/vectors/generate_transactions.py"
    )


def test_vectors_domains() -> None:
    domains = _vectors()["domains"]
    assert bytes.fromhex(domains["tx_sign"]) == DOMAIN_TX_SIGN
    assert bytes.fromhex(domains["address"]) == DOMAIN_ADDRESS


def test_vectors_rfc8032() -> None:
    case = _vectors()["rfc8032_test1"]
    kp = KeyPair.from_seed(bytes.fromhex(case["seed"]))
    assert kp.public_key.hex() == case["public_key"]
    assert kp.sign(b"").hex() == case["signature"]
    assert is_valid_signature(kp.public_key, b"", bytes.fromhex(case["signature"]))


def test_vectors_keys_and_addresses() -> None:
    keys = _vectors()["keys"]
    assert len(keys) >= 4
    for case in keys:
        kp = KeyPair.from_seed(bytes.fromhex(case["seed"]))
        assert kp.public_key.hex() == case["public_key"], case["name"]
        assert kp.address.hex() == case["address"], case["name"]
        pk = PublicKey(bytes.fromhex(case["public_key"]))
        assert compute_address(pk).hex() == case["address"]


def test_vectors_transactions_are_reproduced() -> None:
    cases = _vectors()["transactions"]
    assert len(cases) >= 4
    for case in cases:
        fields = case["fields"]
        args = json_to_value(fields["args"])
        assert isinstance(args, dict)
        tx = make_transaction(
            KeyPair.from_seed(bytes.fromhex(case["seed"])),
            chain_id=fields["chain_id"],
            nonce=fields["nonce"],
            contract=fields["contract"],
            method=fields["method"],
            args=args,
            fuel_limit=fields["fuel_limit"],
            expiry=fields["expiry"],
        )
        assert tx.sender.hex() == case["sender"], case["name"]
        assert tx.sender_address.hex() == case["sender_address"], case["name"]
        assert encode(tx.body_value()).hex() == case["body_hex"], case["name"]
        assert tx.signing_bytes.hex() == case["signing_bytes"], case["name"]
        assert tx.signature.hex() == case["signature"], case["name"]
        assert tx.encoded.hex() == case["encoded"], case["name"]
        assert tx.tx_id.hex() == case["tx_id"], case["name"]
        assert tx.is_signature_valid()


def test_vectors_transactions_decode() -> None:
    for case in _vectors()["transactions"]:
        raw = bytes.fromhex(case["encoded"])
        tx = decode_transaction(raw)
        fields = case["fields"]
        assert tx.chain_id == fields["chain_id"]
        assert tx.nonce == fields["nonce"]
        assert tx.contract == fields["contract"]
        assert tx.method == fields["method"]
        assert tx.args == json_to_value(fields["args"])
        assert tx.fuel_limit == fields["fuel_limit"]
        assert tx.expiry == fields["expiry"]
        assert tx.encoded == raw
        assert tx.tx_id == hashlib.sha256(raw).digest()
        assert tx.is_signature_valid()
        assert tx.to_json()["tx_id"] == case["tx_id"]


def test_vectors_chain_id_changes_the_signature() -> None:
    cases = _vectors()["transactions"]
    test, main = cases[0], cases[1]
    assert test["fields"]["chain_id"] != main["fields"]["chain_id"]
    assert test["signature"] != main["signature"]
    assert test["tx_id"] != main["tx_id"]


def test_vectors_invalid_transactions_are_refused() -> None:
    cases = _vectors()["invalid"]
    assert len(cases) >= 20
    for case in cases:
        raw = bytes.fromhex(case["hex"])
        if case["error"] == "invalid_signature":
            tx = decode_transaction(raw)
            assert not tx.is_signature_valid(), case["reason"]
            continue
        with pytest.raises(LedgerError) as info:
            decode_transaction(raw)
        assert info.value.code == case["error"], case["reason"]
        expected_class = DecodeError if case["error"] == "malformed" else InvalidTransaction
        assert isinstance(info.value, expected_class), case["reason"]


# --- (b) Signing and verification ----------------------------------------------------------


def test_signing_bytes_are_the_domain_tag_and_the_first_eight_items() -> None:
    tx = sample_tx()
    assert tx.signing_bytes == DOMAIN_TX_SIGN + encode(tx.to_value()[:8])
    assert tx.encoded == encode(tx.to_value())
    assert len(tx.to_value()) == 9
    assert tx.tx_id == hashlib.sha256(tx.encoded).digest()
    assert tx.is_signature_valid()


def test_signature_fails_when_any_field_changes() -> None:
    tx = sample_tx()
    for changes in (
        {"chain_id": "civic-main"},
        {"nonce": 4},
        {"contract": "accounts"},
        {"method": "update"},
        {"args": {**tx.args, "title": "Decret"}},
        {"fuel_limit": 50_001},
        {"expiry": 11},
        {"sender": key(2).public_key},
    ):
        # The cached encoding, id and address belong to the old fields.
        changed = dataclasses.replace(tx, **changes, _encoded=b"", _tx_id=b"", _sender_address=b"")
        assert not changed.is_signature_valid(), changes


def test_signing_bytes_cut_from_the_encoding_are_the_signed_body() -> None:
    for tx in (sample_tx(), decode_transaction(sample_tx().encoded)):
        assert tx.signing_bytes == compute_signing_bytes(tx.body_value())


def test_a_signature_for_another_chain_id_does_not_verify() -> None:
    test = sample_tx(chain_id="civic-test")
    main = sample_tx(chain_id="civic-main")
    assert test.signature != main.signature
    # Main's signature on test's body: refused, so a transaction cannot be replayed.
    assert not dataclasses.replace(test, signature=main.signature).is_signature_valid()
    assert not dataclasses.replace(main, signature=test.signature).is_signature_valid()
    moved = decode_transaction(with_item(test, 0, "civic-main"))
    assert not moved.is_signature_valid()


def test_a_signature_without_the_domain_tag_does_not_verify() -> None:
    tx = sample_tx()
    untagged = key(1).sign(encode(tx.body_value()))
    assert not dataclasses.replace(tx, signature=untagged).is_signature_valid()


def test_a_signature_by_another_key_does_not_verify() -> None:
    tx = sample_tx()
    other = key(2).sign(tx.signing_bytes)
    assert not dataclasses.replace(tx, signature=other).is_signature_valid()


def test_verification_is_strict() -> None:
    tx = sample_tx()
    # A non-canonical S (S + L) is the same point equation but must be refused.
    r, s = tx.signature[:32], int.from_bytes(tx.signature[32:], "little")
    malleated = r + (s + ED25519_L).to_bytes(32, "little")
    assert not is_valid_signature(tx.sender, tx.signing_bytes, malleated)
    # A small-order public key (the identity point) with an all-zero signature.
    identity = bytes([1]) + bytes(31)
    assert not is_valid_signature(identity, b"message", bytes(64))
    # Wrong lengths are refused, not raised.
    assert not is_valid_signature(tx.sender[:31], tx.signing_bytes, tx.signature)
    assert not is_valid_signature(tx.sender, tx.signing_bytes, tx.signature[:63])


def test_signatures_are_deterministic() -> None:
    assert sample_tx().signature == sample_tx().signature
    assert sample_tx().tx_id == sample_tx().tx_id


# --- (c) Any single-byte change ------------------------------------------------------------


def _assert_changed_tx_is_refused(original: Transaction, data: bytes) -> None:
    """Undecodable, or decodable with an invalid signature (and then another id)."""
    try:
        tx = decode_transaction(data)
    except (DecodeError, InvalidTransaction):
        return
    assert tx.tx_id != original.tx_id
    assert not tx.is_signature_valid(), f"changed transaction still verifies: {data.hex()}"


def _few_transactions() -> list[Transaction]:
    return [
        sample_tx(),
        make_transaction(
            key(2),
            chain_id="c",
            nonce=2**64 - 1,
            contract="accounts",
            method="transfer",
            args={"to": bytes(20), "amount": 2**128 - 1},
            fuel_limit=MAX_FUEL_LIMIT,
            expiry=0,
        ),
        make_transaction(
            key(3), chain_id="gemeinde-zürich", nonce=0, contract="a", method="b", args={}
        ),
    ]


def test_every_single_byte_change_is_refused() -> None:
    for original in _few_transactions():
        raw = original.encoded
        for pos in range(len(raw)):
            replacements = {raw[pos] ^ (1 << bit) for bit in range(8)} | {0x00, 0xFF}
            replacements.discard(raw[pos])
            for byte in replacements:
                data = bytearray(raw)
                data[pos] = byte
                _assert_changed_tx_is_refused(original, bytes(data))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_single_byte_change_is_refused(data: st.DataObject) -> None:
    original = data.draw(st.sampled_from(_few_transactions()))
    raw = original.encoded
    pos = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    byte = data.draw(st.integers(min_value=0, max_value=255).filter(lambda b: b != raw[pos]))
    changed = bytearray(raw)
    changed[pos] = byte
    _assert_changed_tx_is_refused(original, bytes(changed))


# --- (d) decode_transaction refuses what is not a transaction -------------------------------


def test_decode_refuses_wrong_shapes() -> None:
    tx = sample_tx()
    items = items_of(tx)
    for raw in (
        encode(None),
        encode(items[:8]),
        encode([*items, None]),
        encode({"a": 1}),
        with_item(tx, 0, b"civic-test"),
        with_item(tx, 1, "key"),
        with_item(tx, 1, bytes(33)),
        with_item(tx, 2, True),
        with_item(tx, 2, None),
        with_item(tx, 3, b"documents"),
        with_item(tx, 4, 5),
        with_item(tx, 5, [["id", "x"]]),
        with_item(tx, 6, "50000"),
        with_item(tx, 7, False),
        with_item(tx, 8, bytes(65)),
        with_item(tx, 8, "sig"),
        tx.encoded + b"\x00",
        tx.encoded[:-1],
        b"",
    ):
        with pytest.raises(DecodeError):
            decode_transaction(raw)


@pytest.mark.parametrize(
    ("index", "value", "code"),
    [
        (2, -1, "bad_nonce"),
        (2, 2**64, "bad_nonce"),
        (6, 0, "bad_fuel_limit"),
        (6, -5, "bad_fuel_limit"),
        (6, MAX_FUEL_LIMIT + 1, "bad_fuel_limit"),
        (7, -1, "bad_expiry"),
        (7, 2**63, "bad_expiry"),
        (0, "", "bad_chain_id"),
        (0, "x" * (MAX_NAME_LENGTH + 1), "bad_chain_id"),
        (3, "", "bad_contract"),
        (3, "9lives", "bad_contract"),
        (3, "docs-v2", "bad_contract"),
        (3, "docs/v2", "bad_contract"),
        (3, "dökuments", "bad_contract"),
        (3, "d" * (MAX_NAME_LENGTH + 1), "bad_contract"),
        (4, "", "bad_method"),
        (4, "_credit", "bad_method"),
        (4, "get value", "bad_method"),
        (4, "m" * (MAX_NAME_LENGTH + 1), "bad_method"),
        (5, {"blob": bytes(MAX_ARGS_SIZE)}, "too_large"),
    ],
)
def test_decode_refuses_out_of_range_fields(index: int, value: Value, code: str) -> None:
    items = items_of(sample_tx())
    items[index] = value
    raw = resign(key(1), items)
    with pytest.raises(InvalidTransaction) as info:
        decode_transaction(raw)
    assert info.value.code == code


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (2, 0),
        (2, 2**64 - 1),
        (6, 1),
        (6, MAX_FUEL_LIMIT),
        (7, 0),
        (7, 2**63 - 1),
        (0, "x"),
        (0, "é" * MAX_NAME_LENGTH),
        (3, "a.b_c9"),
        (3, "C" * MAX_NAME_LENGTH),
        (4, "x_"),
        (4, "Z"),
    ],
)
def test_decode_accepts_boundary_values(index: int, value: Value) -> None:
    items = items_of(sample_tx())
    items[index] = value
    raw = resign(key(1), items)
    tx = decode_transaction(raw)
    assert tx.to_value()[index] == value
    assert tx.is_signature_valid()


def test_decode_refuses_oversized_input_before_decoding() -> None:
    raw = sample_tx().encoded
    with pytest.raises(InvalidTransaction) as info:
        decode_transaction(raw + bytes(MAX_TX_SIZE))
    assert info.value.code == "too_large"
    # Not even decodable, yet refused for its size first.
    with pytest.raises(InvalidTransaction):
        decode_transaction(b"\xff" * (MAX_TX_SIZE + 1))


def test_arguments_size_limit() -> None:
    # {"blob": <n bytes>} encodes to 12 + n bytes for n in 2^14 .. 2^21 - 1.
    items = items_of(sample_tx())
    items[5] = {"blob": bytes(MAX_ARGS_SIZE - 12)}
    assert len(encode(items[5])) == MAX_ARGS_SIZE
    tx = decode_transaction(resign(key(1), items))
    assert len(tx.encoded) <= MAX_TX_SIZE
    items[5] = {"blob": bytes(MAX_ARGS_SIZE - 11)}
    with pytest.raises(InvalidTransaction) as info:
        decode_transaction(resign(key(1), items))
    assert info.value.code == "too_large"


def test_make_transaction_checks_fields() -> None:
    with pytest.raises(InvalidTransaction) as info:
        sample_tx(nonce=-1)
    assert info.value.code == "bad_nonce"
    with pytest.raises(InvalidTransaction) as info:
        sample_tx(method="_private")
    assert info.value.code == "bad_method"
    with pytest.raises(InvalidTransaction) as info:
        sample_tx(chain_id="")
    assert info.value.code == "bad_chain_id"


def test_to_json() -> None:
    tx = sample_tx()
    obj = tx.to_json()
    assert obj["tx_id"] == tx.tx_id.hex()
    assert obj["sender"] == tx.sender.hex()
    assert obj["sender_address"] == compute_address(tx.sender).hex()
    assert obj["args"]["sha256"] == {"$bytes": "00" * 32}
    assert obj["signature"] == tx.signature.hex()


def _general(data: bytes) -> Transaction | type[LedgerError]:
    """What the general decoder makes of ``data``: the transaction or the error type."""
    try:
        value = decode(data)
        return transaction_from_value(value, encoded=data)
    except LedgerError as exc:
        return type(exc)


def _short(data: bytes) -> Transaction | type[LedgerError]:
    try:
        return decode_transaction(data)
    except LedgerError as exc:
        return type(exc)


_names = st.text(min_size=0, max_size=70) | st.sampled_from(["accounts", "transfer", "c1"])
_numbers = st.integers(0, 2**70) | st.integers(0, 300)


@settings(max_examples=400, deadline=None)
@given(
    chain_id=_names,
    nonce=_numbers,
    contract=_names,
    method=_names,
    args=st.dictionaries(st.text(max_size=6), st.integers(0, 2**64) | st.binary(max_size=40)),
    fuel=_numbers,
    expiry=_numbers,
    sender_size=st.sampled_from([32, 31, 33]),
    signature_size=st.sampled_from([64, 63, 65]),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=2),
    cut=st.integers(0, 3),
)
def test_the_short_form_reader_agrees_with_the_general_decoder(
    chain_id: str,
    nonce: int,
    contract: str,
    method: str,
    args: dict[str, Value],
    fuel: int,
    expiry: int,
    sender_size: int,
    signature_size: int,
    flips: list[tuple[int, int]],
    cut: int,
) -> None:
    # Transactions of every shape, well formed or not, damaged or cut short: the short
    # form reader gives the general decoder's transaction, or an error of the same kind.
    value: list[Value] = [
        chain_id,
        b"\x01" * sender_size,
        nonce,
        contract,
        method,
        args,
        fuel,
        expiry,
        b"\x02" * signature_size,
    ]
    data = bytearray(encode(value))
    for position, mask in flips:
        data[position % len(data)] ^= mask
    raw = bytes(data[: len(data) - cut])
    assert _short(raw) == _general(raw)
