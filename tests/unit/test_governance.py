"""Governance on chain: validator-set changes and the node allowlist."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from civicledger.chain.transaction import Transaction
from civicledger.crypto.keys import KeyPair
from civicledger.encoding import encode
from civicledger.node.node import Node
from civicledger.node.verify import verify_chain
from civicledger.state.system import get_allowed_nodes

NEW = KeyPair.from_seed(b"n" * 32)


class Chain:
    """Drives a single-validator node: each call is one transaction in its own block."""

    def __init__(self, node: Node, sign: Callable[..., Transaction], key: KeyPair) -> None:
        self.node, self.sign, self.key = node, sign, key
        self.time = node.head.time_ms

    def call(self, method: str, args: dict, key: KeyPair | None = None) -> dict:
        key = key or self.key
        tx = self.sign(key, self.node.get_nonce(key.address), "governance", method, args)
        self.node.submit(tx.encoded)
        return self.block()[0]

    def block(self) -> list[dict]:
        self.time += 1000
        block = self.node.produce_block(self.time)
        assert block is not None
        return [r.to_json() for r in self.node.get_receipts(block.height)]


def test_a_single_validator_cannot_add_a_second_at_equal_power(node, sign, validator_key):
    chain = Chain(node, sign, validator_key)
    receipt = chain.call(
        "propose", {"action": "add_validator", "public_key": NEW.public_key, "power": 1}
    )
    assert receipt["status"] == "failed"
    assert receipt["error_code"] == "no_quorum"


def test_raise_own_power_then_add_a_validator(node, sign, validator_key, tmp_path):
    chain = Chain(node, sign, validator_key)
    receipt = chain.call(
        "propose", {"action": "set_power", "public_key": validator_key.public_key, "power": 10}
    )
    assert receipt["status"] == "ok", receipt
    assert receipt["result"]["status"] == "applied"
    applied_at = node.head.height
    # Not yet in force for the next block: changes take effect two blocks later.
    assert node.validators.get_power(validator_key.public_key) == 1
    chain.block()
    assert node.head.height == applied_at + 1
    assert node.validators.get_power(validator_key.public_key) == 10
    old_hash = node.head.validator_set_hash

    receipt = chain.call(
        "propose", {"action": "add_validator", "public_key": NEW.public_key, "power": 1}
    )
    assert receipt["result"]["status"] == "applied"
    chain.block()
    assert node.validators.get_power(NEW.public_key) == 1
    chain.block()
    assert node.head.validator_set_hash != old_hash
    assert node.head.validator_set_hash == node.validators.hash

    # The whole history, with its changing validator sets, still verifies.
    report = verify_chain(node.store, node.genesis)
    assert report.ok, report.problem


def test_only_validators_propose_and_a_proposal_is_approved_once(node, sign, validator_key):
    chain = Chain(node, sign, validator_key)
    outsider = KeyPair.from_seed(b"o" * 32)
    receipt = chain.call(
        "propose", {"action": "allow_node", "public_key": NEW.public_key}, key=outsider
    )
    assert receipt["error_code"] == "permission_denied"


def test_allow_and_disallow_a_node(node, sign, validator_key):
    chain = Chain(node, sign, validator_key)
    assert NEW.public_key not in get_allowed_nodes(node.committed)
    receipt = chain.call("propose", {"action": "allow_node", "public_key": NEW.public_key})
    assert receipt["result"] == {"id": 1, "status": "applied"}
    assert NEW.public_key in get_allowed_nodes(node.committed)
    chain.call("propose", {"action": "disallow_node", "public_key": NEW.public_key})
    assert NEW.public_key not in get_allowed_nodes(node.committed)
    # Validators are always allowed.
    assert validator_key.public_key in get_allowed_nodes(node.committed)


def test_removing_the_last_validator_is_refused(node, sign, validator_key):
    chain = Chain(node, sign, validator_key)
    receipt = chain.call(
        "propose", {"action": "remove_validator", "public_key": validator_key.public_key}
    )
    assert receipt["error_code"] == "no_quorum"


def test_bad_proposals_are_refused(node, sign, validator_key):
    chain = Chain(node, sign, validator_key)
    bad = [
        ({"action": "explode", "public_key": NEW.public_key}, "bad_argument"),
        ({"action": "set_power", "public_key": NEW.public_key, "power": 5}, "not_found"),
        ({"action": "add_validator", "public_key": b"short", "power": 1}, "bad_argument"),
        ({"action": "add_validator", "public_key": NEW.public_key, "power": 0}, "bad_argument"),
    ]
    for args, code in bad:
        receipt = chain.call("propose", args)
        assert receipt["error_code"] == code, (args, receipt)
    missing = chain.call("approve", {"id": 99})
    assert missing["error_code"] == "not_found"


def test_a_change_needs_more_than_two_thirds_of_the_power(make_genesis, sign):
    from tests.dict_state import DictState

    from civicledger.contracts.registry import default_registry
    from civicledger.execution.executor import BlockEnv, execute_transactions
    from civicledger.state.system import NEXT_VALIDATORS_KEY

    keys = [KeyPair.from_seed(bytes([0x70 + i]) * 32) for i in range(4)]
    state = DictState(make_genesis(validators=keys).initial_state())
    registry = default_registry()
    target = keys[0].public_key
    statuses = []
    for height, key in enumerate(keys[:3], start=1):
        if height == 1:
            args = {"action": "set_power", "public_key": target, "power": 2}
            tx = sign(key, 0, "governance", "propose", args)
        else:
            tx = sign(key, 0, "governance", "approve", {"id": 1})
        result = execute_transactions(
            registry, state, BlockEnv("test-1", height, 1_000 * height), [tx]
        )
        (receipt,) = result.receipts
        assert receipt.ok, receipt
        statuses.append(receipt.result)
        state.apply(result.changes)
    # 1 of 4, then 2 of 4: still open; 3 of 4 (> 2/3): applied, due two blocks later.
    assert statuses == [{"id": 1, "status": "open"}, "open", "applied"]
    assert NEXT_VALIDATORS_KEY in state.items


def _two_handoffs(node, sign, validator_key) -> Chain:
    """Raise the validator's power to 10, then add NEW with power 1: two handoffs."""
    chain = Chain(node, sign, validator_key)
    chain.call(
        "propose", {"action": "set_power", "public_key": validator_key.public_key, "power": 10}
    )
    chain.block()
    chain.call("propose", {"action": "add_validator", "public_key": NEW.public_key, "power": 1})
    chain.block()
    chain.block()
    return chain


def test_proofs_after_validator_set_changes_verify_from_the_genesis_validators(
    node, sign, validator_key, alice, tmp_path
):
    from civicledger.chain.proof import ReceiptProof, verify_receipt_proof
    from civicledger.errors import InvalidProof
    from civicledger.state.bundle import StateProofBundle, verify_state_bundle

    genesis_set = node.genesis.validators
    chain = _two_handoffs(node, sign, validator_key)
    assert node.validators.get_power(NEW.public_key) == 1
    # Two handoffs: to the set with power 10, then to the set with NEW.
    handoffs = node.get_handoffs(below=node.head.height + 1)
    assert [h.next_validators().hash for h in handoffs][-1] == node.validators.hash
    assert len(handoffs) == 2

    mint = sign(alice, 0, "accounts", "mint", {"to": alice.address, "amount": 7})
    node.submit(mint.encoded)
    chain.block()
    saved = node.get_receipt_proof(mint.tx_id).to_json()
    proof = ReceiptProof.from_json(saved)
    assert len(proof.handoffs) == 2
    verify_receipt_proof(proof, trusted_validators=genesis_set)
    state = StateProofBundle.from_json(
        node.get_state_proof("accounts", f"balance/{alice.address.hex()}").to_json()
    )
    verify_state_bundle(state, trusted_validators=genesis_set)

    # Without the handoffs, or with one left out, the genesis set does not lead there.
    for kept in ([], saved["handoffs"][1:], saved["handoffs"][:1]):
        cut = ReceiptProof.from_json({**saved, "handoffs": kept})
        with pytest.raises(InvalidProof, match="validator set"):
            verify_receipt_proof(cut, trusted_validators=genesis_set)
    # A handoff whose state proof names another set fails its state proof.
    forged = handoffs[1]
    other = dataclasses.replace(
        forged,
        proof=dataclasses.replace(forged.proof, value=handoffs[0].proof.value),
    )
    bad = ReceiptProof.from_json(
        {**saved, "handoffs": [saved["handoffs"][0], other.encoded().hex()]}
    )
    with pytest.raises(InvalidProof):
        verify_receipt_proof(bad, trusted_validators=genesis_set)
    # Out of order.
    swapped = ReceiptProof.from_json({**saved, "handoffs": saved["handoffs"][::-1]})
    with pytest.raises(InvalidProof):
        verify_receipt_proof(swapped, trusted_validators=genesis_set)
    # civic verify checks the recorded handoffs against re-execution.
    assert verify_chain(node.store, node.genesis).ok
    first_height = handoffs[0].height
    node.store._db.execute(
        "UPDATE handoffs SET proof = ? WHERE height = ?",
        (encode(handoffs[1].proof.to_value()), first_height),
    )
    report = verify_chain(node.store, node.genesis)
    assert not report.ok and report.failed_height == first_height
    assert "handoff" in report.problem
    node.store._db.execute(
        "UPDATE handoffs SET proof = ? WHERE height = ?",
        (encode(handoffs[0].proof.to_value()), first_height),
    )
    assert verify_chain(node.store, node.genesis).ok
    # Proofs of blocks before the first handoff need none.
    early = node.get_state_proof("accounts", f"balance/{alice.address.hex()}", height=1)
    assert early.handoffs == ()
    verify_state_bundle(early, trusted_validators=genesis_set)

    # The command line follows them too, offline.
    import json

    from click.testing import CliRunner

    from civicledger.cli.main import cli

    genesis_file = tmp_path / "genesis.json"
    genesis_file.write_text(json.dumps(node.genesis.to_json()))
    receipt_file = tmp_path / "receipt.json"
    receipt_file.write_text(json.dumps(saved))
    result = CliRunner().invoke(
        cli, ["receipt", "verify", str(receipt_file), "--genesis", str(genesis_file)]
    )
    assert result.exit_code == 0, result.output
    assert "followed 2 validator-set handoff(s) from genesis" in result.output
    receipt_file.write_text(json.dumps({**saved, "handoffs": saved["handoffs"][:1]}))
    result = CliRunner().invoke(
        cli, ["receipt", "verify", str(receipt_file), "--genesis", str(genesis_file)]
    )
    assert result.exit_code == 1 and "INVALID" in result.output
    # A genesis file of another chain with the same validators does not vouch for it.
    other = json.loads(genesis_file.read_text())
    other["chain_id"] = "another-network"
    genesis_file.write_text(json.dumps(other))
    receipt_file.write_text(json.dumps(saved))
    result = CliRunner().invoke(
        cli, ["receipt", "verify", str(receipt_file), "--genesis", str(genesis_file)]
    )
    assert result.exit_code == 1 and "genesis file is of 'another-network'" in result.output
    # "handoffs": null reads as none.
    assert ReceiptProof.from_json({**saved, "handoffs": None}).handoffs == ()


def test_a_proof_that_would_need_too_many_handoffs_is_refused(
    node, sign, validator_key, alice, monkeypatch
):
    import civicledger.node.node as node_module
    from civicledger.errors import NotFound

    _two_handoffs(node, sign, validator_key)
    monkeypatch.setattr(node_module, "MAX_HANDOFFS", 1)
    with pytest.raises(NotFound, match="more than 1 validator-set handoffs"):
        node.get_state_proof("accounts", f"balance/{alice.address.hex()}")
