"""State proof bundles: a key's value or absence at a certified block, checked offline."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from civicledger.chain.block import Validator, ValidatorSet
from civicledger.cli.main import cli
from civicledger.crypto.keys import KeyPair
from civicledger.encoding import decode
from civicledger.errors import DecodeError, InvalidProof
from civicledger.state.bundle import StateProofBundle, verify_state_bundle


@pytest.fixture
def funded(node, sign, alice):
    node.submit(sign(alice, 0, "accounts", "mint", {"to": alice.address, "amount": 42}).encoded)
    assert node.produce_block(node.head.time_ms + 1_000) is not None
    return node


def test_a_present_key_is_proven_with_its_value(funded, alice, genesis):
    bundle = funded.get_state_proof("accounts", f"balance/{alice.address.hex()}")
    verify_state_bundle(bundle, trusted_validators=genesis.validators)
    assert bundle.proof.value is not None and decode(bundle.proof.value) == 42
    again = StateProofBundle.from_json(json.loads(json.dumps(bundle.to_json())))
    verify_state_bundle(again)


def test_an_absent_key_is_proven_absent(funded, bob):
    bundle = funded.get_state_proof("accounts", f"balance/{bob.address.hex()}")
    assert bundle.proof.value is None
    verify_state_bundle(bundle)


def test_every_altered_field_fails(funded, alice):
    saved = funded.get_state_proof("accounts", f"balance/{alice.address.hex()}").to_json()
    for name in ("proof", "header", "commit", "validators", "value"):
        for position in (0, len(saved[name]) // 2, len(saved[name]) - 2):
            altered = dict(saved)
            text = altered[name]
            flipped = "1" if text[position] == "0" else "0"
            altered[name] = text[:position] + flipped + text[position + 1 :]
            with pytest.raises((DecodeError, InvalidProof)):
                verify_state_bundle(StateProofBundle.from_json(altered))
    # Claiming the proof is about another key fails too.
    other = dict(saved, key="balance/" + "00" * 20)
    with pytest.raises(InvalidProof):
        verify_state_bundle(StateProofBundle.from_json(other))


def test_an_untrusted_validator_set_is_refused(funded, alice):
    bundle = funded.get_state_proof("accounts", f"balance/{alice.address.hex()}")
    stranger = ValidatorSet.of([Validator(KeyPair.from_seed(b"x" * 32).public_key, 1)])
    with pytest.raises(InvalidProof, match="do not trust"):
        verify_state_bundle(bundle, trusted_validators=stranger)


def test_civic_state_verify_works_offline(funded, alice, tmp_path):
    saved = tmp_path / "proof.json"
    bundle = funded.get_state_proof("accounts", f"balance/{alice.address.hex()}")
    saved.write_text(json.dumps(bundle.to_json()))
    result = CliRunner().invoke(cli, ["state", "verify", str(saved)])
    assert result.exit_code == 0, result.output
    assert "VALID" in result.output and "= 42" in result.output
    obj = json.loads(saved.read_text())
    obj["value"] = "0b"
    saved.write_text(json.dumps(obj))
    result = CliRunner().invoke(cli, ["state", "verify", str(saved)])
    assert result.exit_code == 1
    assert "INVALID" in result.output


# -- proofs at past heights ----------------------------------------------------------------


def _mint(node, sign, issuer, nonce, to, amount):
    node.submit(sign(issuer, nonce, "accounts", "mint", {"to": to, "amount": amount}).encoded)
    block = node.produce_block(node.head.time_ms + 1_000)
    assert block is not None
    return block.height


def test_a_key_is_proven_at_every_retained_height(node, sign, alice, bob):
    key = f"balance/{bob.address.hex()}"
    assert node.produce_block(node.head.time_ms + 1_000) is not None
    heights = [_mint(node, sign, alice, n, bob.address, 10) for n in range(5)]
    # An empty block changes nothing; the key keeps its value there too.
    assert node.produce_block(node.head.time_ms + 1_000) is not None
    for expected, height in enumerate(heights, start=1):
        bundle = node.get_state_proof("accounts", key, height)
        verify_state_bundle(bundle)
        assert bundle.header.height == height
        assert bundle.proof.value is not None and decode(bundle.proof.value) == 10 * expected
    # Before the first mint, bob had nothing: proven absent.
    assert node.get_state_proof("accounts", key, heights[0] - 1).proof.value is None
    # Proving the past leaves the live state as it was.
    head = node.get_state_proof("accounts", key)
    assert head.header.state_root == node.state.root() and decode(head.proof.value) == 50


def test_a_historical_proof_fails_against_another_height(node, sign, alice, bob):
    _mint(node, sign, alice, 0, bob.address, 10)
    _mint(node, sign, alice, 1, bob.address, 10)
    old = node.get_state_proof("accounts", f"balance/{bob.address.hex()}", 1).to_json()
    new = node.get_state_proof("accounts", f"balance/{bob.address.hex()}", 2).to_json()
    mixed = dict(old, header=new["header"], commit=new["commit"], height=new["height"])
    with pytest.raises(InvalidProof):
        verify_state_bundle(StateProofBundle.from_json(mixed))


def test_heights_beyond_the_retained_history_are_refused(
    tmp_path, genesis, validator_key, sign, alice, bob
):
    from civicledger.errors import NotFound
    from civicledger.node.node import Node

    node = Node(tmp_path / "short", genesis, validator_key, state_history=3)
    try:
        for n in range(6):
            _mint(node, sign, alice, n, bob.address, 1)
        key = f"balance/{bob.address.hex()}"
        # Undo records of the last three blocks are kept: heights 3..6 can be proven.
        assert decode(node.get_state_proof("accounts", key, 3).proof.value) == 3
        with pytest.raises(NotFound, match="no longer kept"):
            node.get_state_proof("accounts", key, 2)
        with pytest.raises(NotFound, match="no block at height 7"):
            node.get_state_proof("accounts", key, 7)
        # What is kept survives a restart.
        node.close()
        node = Node(tmp_path / "short", genesis, validator_key, state_history=3)
        assert decode(node.get_state_proof("accounts", key, 4).proof.value) == 4
    finally:
        node.close()


def test_civic_state_get_at_a_height(node, sign, alice, bob):
    from fastapi.testclient import TestClient

    from civicledger.api.app import create_app

    _mint(node, sign, alice, 0, bob.address, 7)
    _mint(node, sign, alice, 1, bob.address, 7)
    with TestClient(create_app(node)) as client:
        key = f"balance/{bob.address.hex()}"
        ok = client.get("/v1/state-proof", params={"contract": "accounts", "key": key, "height": 1})
        assert ok.status_code == 200 and ok.json()["height"] == 1
        assert decode(bytes.fromhex(ok.json()["value"])) == 7
        bad = client.get(
            "/v1/state-proof", params={"contract": "accounts", "key": key, "height": 0}
        )
        assert bad.status_code == 400
        far = client.get(
            "/v1/state-proof", params={"contract": "accounts", "key": key, "height": 9}
        )
        assert far.status_code == 404 and "no block at height 9" in far.json()["error"]["message"]


def test_proofs_at_past_heights_are_rate_limited(node, sign, alice, bob, monkeypatch):
    import civicledger.node.node as node_module
    from civicledger.errors import LedgerError

    for n in range(4):
        _mint(node, sign, alice, n, bob.address, 1)
    key = f"balance/{bob.address.hex()}"
    # A proof at height 1 undoes 3 keys (the nonce, the balance, the supply); allow 4.
    monkeypatch.setattr(node_module, "UNDO_BUDGET_PER_S", 0.001)
    node._undo_budget = 4.0
    assert decode(node.get_state_proof("accounts", key, 1).proof.value) == 1
    with pytest.raises(LedgerError, match="rate-limited") as busy:
        node.get_state_proof("accounts", key, 1)
    assert busy.value.code == "busy"
    # Proofs at the head cost nothing from the budget.
    assert decode(node.get_state_proof("accounts", key).proof.value) == 4
