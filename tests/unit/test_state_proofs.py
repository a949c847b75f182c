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
