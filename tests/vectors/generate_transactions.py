"""Generate ``tests/vectors/transactions.json``: keys, addresses and signed transactions.

Run from the repository root: ``.venv/bin/python tests/vectors/generate_transactions.py``.

Nothing here comes from ``civicledger``: values are encoded by the small independent
encoder of ``generate_encoding.py``, hashed with ``hashlib`` and signed with PyNaCl
(libsodium) directly, following ``docs/spec/transactions.md``. Ed25519 signatures are
deterministic (RFC 8032), so the output is too; ``tests/unit/test_transaction.py`` checks
that the committed file equals what this script produces and that ``civicledger``
reproduces every value. The format is described in ``tests/vectors/README.md``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import nacl.signing

OUTPUT = Path(__file__).with_name("transactions.json")

DOMAIN_TX_SIGN = b"civic-ledger/tx/v1\x00"
DOMAIN_ADDRESS = b"civic-ledger/address/v1\x00"


def _load_sibling(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_enc = _load_sibling("generate_encoding")
cle_encode = _enc.cle_encode
to_json = _enc.to_json

#: RFC 8032 section 7.1, TEST 1: the secret key (seed), its public key, and the signature
#: of the empty message. The script refuses to run if libsodium disagrees.
RFC8032_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
RFC8032_PUBLIC_KEY = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC8032_SIGNATURE = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def seed_of(n: int) -> bytes:
    """The seed of test key ``n``: ``SHA-256("civic-ledger test key <n>")``."""
    return hashlib.sha256(f"civic-ledger test key {n}".encode()).digest()


def public_key(seed: bytes) -> bytes:
    return bytes(nacl.signing.SigningKey(seed).verify_key)


def sign(seed: bytes, message: bytes) -> bytes:
    return bytes(nacl.signing.SigningKey(seed).sign(message).signature)


def address(pk: bytes) -> bytes:
    return hashlib.sha256(DOMAIN_ADDRESS + pk).digest()[:20]


def body_items(seed: bytes, fields: dict[str, Any]) -> list[Any]:
    """The first 8 items of a transaction, in order."""
    return [
        fields["chain_id"],
        public_key(seed),
        fields["nonce"],
        fields["contract"],
        fields["method"],
        fields["args"],
        fields["fuel_limit"],
        fields["expiry"],
    ]


def signed_transaction(seed: bytes, fields: dict[str, Any]) -> dict[str, Any]:
    """Everything a second implementation must reproduce for one transaction."""
    body = body_items(seed, fields)
    signing_bytes = DOMAIN_TX_SIGN + cle_encode(body)
    signature = sign(seed, signing_bytes)
    encoded = cle_encode([*body, signature])
    pk = public_key(seed)
    return {
        "seed": seed.hex(),
        "fields": {**fields, "args": to_json(fields["args"])},
        "sender": pk.hex(),
        "sender_address": address(pk).hex(),
        "body_hex": cle_encode(body).hex(),
        "signing_bytes": signing_bytes.hex(),
        "signature": signature.hex(),
        "encoded": encoded.hex(),
        "tx_id": hashlib.sha256(encoded).hexdigest(),
    }


def _transactions() -> list[tuple[str, bytes, dict[str, Any]]]:
    key2_address = address(public_key(seed_of(2)))
    return [
        (
            "accounts.transfer, first transaction of key 1",
            seed_of(1),
            {
                "chain_id": "civic-test",
                "nonce": 0,
                "contract": "accounts",
                "method": "transfer",
                "args": {"to": key2_address, "amount": 250},
                "fuel_limit": 1_000_000,
                "expiry": 0,
            },
        ),
        (
            "the same transfer for another chain: other signing bytes, other signature",
            seed_of(1),
            {
                "chain_id": "civic-main",
                "nonce": 0,
                "contract": "accounts",
                "method": "transfer",
                "args": {"to": key2_address, "amount": 250},
                "fuel_limit": 1_000_000,
                "expiry": 0,
            },
        ),
        (
            "documents.register with an expiry and non-ASCII text",
            seed_of(2),
            {
                "chain_id": "civic-test",
                "nonce": 1,
                "contract": "documents",
                "method": "register",
                "args": {
                    "id": "decree-2026-17",
                    "sha256": hashlib.sha256(b"Decree 2026-17: opening hours").digest(),
                    "title": "Décret n° 17 — horaires",
                },
                "fuel_limit": 200_000,
                "expiry": 120,
            },
        ),
        (
            "no arguments, largest nonce, fuel and expiry",
            seed_of(3),
            {
                "chain_id": "gemeinde-zürich",
                "nonce": 2**64 - 1,
                "contract": "accounts",
                "method": "burn",
                "args": {},
                "fuel_limit": 100_000_000,
                "expiry": 2**63 - 1,
            },
        ),
        (
            "RFC 8032 test key, smallest fuel limit",
            bytes.fromhex(RFC8032_SEED),
            {
                "chain_id": "c",
                "nonce": 7,
                "contract": "a.b_c",
                "method": "m",
                "args": {"list": [1, -1, None, True], "map": {"k": "v"}},
                "fuel_limit": 1,
                "expiry": 1,
            },
        ),
    ]


def _invalid(first: dict[str, Any]) -> list[dict[str, Any]]:
    """Transactions a node must refuse, each with the error code it refuses them with."""
    seed = seed_of(1)
    base_fields = {k: v for k, v in first["fields"].items() if k != "args"}
    base_fields["args"] = {"to": address(public_key(seed_of(2))), "amount": 250}

    def resigned(**changes: Any) -> bytes:
        """A correctly signed transaction with some fields changed."""
        fields = {**base_fields, **changes}
        body = body_items(seed, fields)
        return cle_encode([*body, sign(seed, DOMAIN_TX_SIGN + cle_encode(body))])

    good = bytes.fromhex(first["encoded"])
    items = [
        base_fields["chain_id"],
        public_key(seed),
        base_fields["nonce"],
        base_fields["contract"],
        base_fields["method"],
        base_fields["args"],
        base_fields["fuel_limit"],
        base_fields["expiry"],
        bytes.fromhex(first["signature"]),
    ]

    def with_item(index: int, value: Any) -> bytes:
        return cle_encode([*items[:index], value, *items[index + 1 :]])

    flipped_sig = bytearray(good)
    flipped_sig[-1] ^= 0x01
    cases: list[tuple[str, str, bytes]] = [
        ("signature: last byte flipped", "invalid_signature", bytes(flipped_sig)),
        (
            "signature: amount changed after signing",
            "invalid_signature",
            with_item(5, {"to": base_fields["args"]["to"], "amount": 251}),
        ),
        (
            "signature: chain id changed after signing",
            "invalid_signature",
            with_item(0, "civic-main"),
        ),
        (
            "signature: signed by another key",
            "invalid_signature",
            with_item(8, sign(seed_of(2), DOMAIN_TX_SIGN + cle_encode(items[:8]))),
        ),
        (
            "signature: signed without the domain tag",
            "invalid_signature",
            with_item(8, sign(seed, cle_encode(items[:8]))),
        ),
        ("shape: 8 items", "malformed", cle_encode(items[:8])),
        ("shape: 10 items", "malformed", cle_encode([*items, None])),
        ("shape: a map, not a list", "malformed", cle_encode({"chain_id": "civic-test"})),
        ("shape: nonce is a boolean", "malformed", with_item(2, False)),
        ("shape: nonce is a string", "malformed", with_item(2, "0")),
        ("shape: sender of 31 bytes", "malformed", with_item(1, public_key(seed)[:31])),
        ("shape: signature of 63 bytes", "malformed", with_item(8, items[8][:63])),
        ("shape: args is a list", "malformed", with_item(5, [])),
        ("shape: chain id is bytes", "malformed", with_item(0, b"civic-test")),
        ("shape: trailing byte", "malformed", good + b"\x00"),
        ("range: negative nonce", "bad_nonce", resigned(nonce=-1)),
        ("range: nonce 2^64", "bad_nonce", resigned(nonce=2**64)),
        ("range: fuel limit 0", "bad_fuel_limit", resigned(fuel_limit=0)),
        ("range: fuel limit 100000001", "bad_fuel_limit", resigned(fuel_limit=100_000_001)),
        ("range: negative expiry", "bad_expiry", resigned(expiry=-1)),
        ("range: expiry 2^63", "bad_expiry", resigned(expiry=2**63)),
        ("range: empty chain id", "bad_chain_id", resigned(chain_id="")),
        ("range: chain id of 65 characters", "bad_chain_id", resigned(chain_id="c" * 65)),
        ("name: empty contract", "bad_contract", resigned(contract="")),
        ("name: contract starts with a digit", "bad_contract", resigned(contract="1accounts")),
        ("name: contract with a hyphen", "bad_contract", resigned(contract="my-accounts")),
        ("name: contract with a slash", "bad_contract", resigned(contract="accounts/x")),
        ("name: non-ASCII contract", "bad_contract", resigned(contract="cöntract")),
        ("name: contract of 65 characters", "bad_contract", resigned(contract="a" * 65)),
        ("name: method starts with _", "bad_method", resigned(method="_credit")),
        ("name: method with a space", "bad_method", resigned(method="trans fer")),
        ("size: arguments over 49152 bytes", "too_large", resigned(args={"pad": bytes(49_200)})),
        ("size: transaction over 65536 bytes", "too_large", good + bytes(65_536)),
    ]
    return [{"reason": reason, "error": code, "hex": raw.hex()} for reason, code, raw in cases]


def build() -> dict[str, Any]:
    rfc_seed = bytes.fromhex(RFC8032_SEED)
    if public_key(rfc_seed).hex() != RFC8032_PUBLIC_KEY:
        raise SystemExit("libsodium disagrees with RFC 8032 TEST 1 (public key)")
    if sign(rfc_seed, b"").hex() != RFC8032_SIGNATURE:
        raise SystemExit("libsodium disagrees with RFC 8032 TEST 1 (signature)")
    keys = []
    for name, seed in [
        ("RFC 8032 TEST 1", rfc_seed),
        ("test key 1", seed_of(1)),
        ("test key 2", seed_of(2)),
        ("test key 3", seed_of(3)),
        ("seed 00 01 .. 1f", bytes(range(32))),
    ]:
        pk = public_key(seed)
        keys.append(
            {"name": name, "seed": seed.hex(), "public_key": pk.hex(), "address": address(pk).hex()}
        )
    transactions = [
        {"name": name, **signed_transaction(seed, fields)} for name, seed, fields in _transactions()
    ]
    return {
        "description": (
            "Keys, addresses and signed transactions, docs/spec/transactions.md. Generated by "
            "tests/vectors/generate_transactions.py; do not edit by hand."
        ),
        "domains": {
            "tx_sign": DOMAIN_TX_SIGN.hex(),
            "address": DOMAIN_ADDRESS.hex(),
        },
        "rfc8032_test1": {
            "seed": RFC8032_SEED,
            "public_key": RFC8032_PUBLIC_KEY,
            "message": "",
            "signature": RFC8032_SIGNATURE,
        },
        "keys": keys,
        "transactions": transactions,
        "invalid": _invalid(transactions[0]),
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    OUTPUT.write_text(render(), encoding="utf-8")


if __name__ == "__main__":
    main()
