"""User contracts deployed on chain: pending until approved, upgraded with state kept."""

from __future__ import annotations

import pytest

from civicledger.contracts.sandbox.examples import COUNTER as COUNTER_V1
from civicledger.crypto.keys import KeyPair
from civicledger.errors import InvalidTransaction

COUNTER_V2 = COUNTER_V1.replace(
    'total = ctx.get_int("total") + n', 'total = ctx.get_int("total") + 2 * n'
)

CAROL = KeyPair.from_seed(b"c" * 32)


class Chain:
    def __init__(self, node, sign):
        self.node, self.sign = node, sign

    def send(self, key, contract, method, args):
        nonce = self.node.mempool.get_pending_nonce(key.address)
        self.node.submit(
            self.sign(key, nonce, contract, method, args, fuel_limit=10_000_000).encoded
        )
        block = self.node.produce_block(self.node.head.time_ms + 1_000)
        return self.node.get_receipts(block.height)[-1]


def test_deploy_approve_call_and_upgrade_keeping_state(node, sign, alice, validator_key):
    chain = Chain(node, sign)
    # Two organisations: approval needs both (more than half).
    for org, admin in (("land", alice), ("bank", CAROL)):
        receipt = chain.send(
            validator_key,
            "organisations",
            "register",
            {"id": org, "name": org, "admins": [admin.address]},
        )
        assert receipt.ok, receipt

    deployed = chain.send(alice, "contracts", "deploy", {"name": "counter", "source": COUNTER_V1})
    assert deployed.ok, deployed
    assert deployed.result["version"] == 1
    # Not callable before approval: refused at the door.
    tx = sign(alice, node.get_nonce(alice.address), "counter", "add", {"n": 1})
    with pytest.raises(InvalidTransaction) as refused_call:
        node.submit(tx.encoded)
    assert refused_call.value.code == "unknown_contract"

    assert (
        chain.send(
            alice, "contracts", "approve", {"name": "counter", "version": 1, "org": "land"}
        ).result
        == "pending"
    )
    # Carol is not an admin of land.
    refused = chain.send(
        CAROL, "contracts", "approve", {"name": "counter", "version": 1, "org": "land"}
    )
    assert refused.error_code == "permission_denied"
    assert (
        chain.send(
            CAROL, "contracts", "approve", {"name": "counter", "version": 1, "org": "bank"}
        ).result
        == "active"
    )

    assert chain.send(alice, "counter", "add", {"n": 5}).result == 5
    assert chain.send(alice, "counter", "add", {"n": 2}).result == 7
    assert node.query("counter", "total", {}) == 7

    # Upgrade: version 2 waits; version 1 keeps running until it is approved.
    assert chain.send(alice, "contracts", "deploy", {"name": "counter", "source": COUNTER_V2}).ok
    assert chain.send(alice, "counter", "add", {"n": 1}).result == 8
    chain.send(alice, "contracts", "approve", {"name": "counter", "version": 2, "org": "land"})
    chain.send(CAROL, "contracts", "approve", {"name": "counter", "version": 2, "org": "bank"})
    # The new code runs on the old state.
    assert chain.send(alice, "counter", "add", {"n": 1}).result == 10
    history = node.query("contracts", "get", {"name": "counter"})
    assert [v["status"] for v in history["versions"]] == ["superseded", "active"]
    assert history["versions"][0]["approvals"] == ["land", "bank"]
    assert node.query("contracts", "source", {"name": "counter", "version": 2}) == COUNTER_V2


def test_without_organisations_a_validator_approves(node, sign, alice, validator_key):
    chain = Chain(node, sign)
    assert chain.send(alice, "contracts", "deploy", {"name": "counter", "source": COUNTER_V1}).ok
    assert (
        chain.send(alice, "contracts", "approve", {"name": "counter", "version": 1}).error_code
        == "permission_denied"
    )
    assert (
        chain.send(validator_key, "contracts", "approve", {"name": "counter", "version": 1}).result
        == "active"
    )
    assert chain.send(alice, "counter", "add", {"n": 3}).result == 3


def test_bad_deployments_are_refused(node, sign, alice):
    chain = Chain(node, sign)
    cases = [
        ({"name": "accounts", "source": COUNTER_V1}, "bad_argument"),
        ({"name": "Bad-Name", "source": COUNTER_V1}, "bad_argument"),
        ({"name": "evil", "source": "import os\n"}, "rejected"),
        ({"name": "evil", "source": "class A:\n    x = ().__class__\n"}, "rejected"),
    ]
    for args, code in cases:
        receipt = chain.send(alice, "contracts", "deploy", args)
        assert receipt.error_code == code, (args, receipt)


def test_one_source_under_two_names_reports_each_name(node, sign, alice, validator_key):
    chain = Chain(node, sign)
    for name in ("first", "second"):
        deployed = chain.send(alice, "contracts", "deploy", {"name": name, "source": COUNTER_V1})
        version = deployed.result["version"]
        assert (
            chain.send(
                validator_key, "contracts", "approve", {"name": name, "version": version}
            ).result
            == "active"
        )
    for name in ("first", "second"):  # "first" is compiled (and cached) first
        nonce = node.mempool.get_pending_nonce(alice.address)
        with pytest.raises(InvalidTransaction, match=f"'{name}' has no method"):
            node.submit(sign(alice, nonce, name, "nope", {}).encoded)


def test_approving_an_older_version_never_rolls_back(node, sign, alice, validator_key):
    chain = Chain(node, sign)
    chain.send(alice, "contracts", "deploy", {"name": "counter", "source": COUNTER_V1})
    chain.send(alice, "contracts", "deploy", {"name": "counter", "source": COUNTER_V2})
    assert (
        chain.send(validator_key, "contracts", "approve", {"name": "counter", "version": 2}).result
        == "active"
    )
    old = chain.send(validator_key, "contracts", "approve", {"name": "counter", "version": 1})
    assert old.error_code == "superseded"
    assert chain.send(alice, "counter", "add", {"n": 1}).result == 2  # v2 doubles


# -- public networks: open deployment with a fee --------------------------------------------


@pytest.fixture
def public_node(tmp_path, make_genesis, validator_key, alice, bob):
    from dataclasses import replace

    from civicledger.chain.genesis import ContractPolicy
    from civicledger.node.node import Node

    genesis = replace(
        make_genesis(balances=((alice.address, 1_000_000), (bob.address, 10))),
        contracts=ContractPolicy("open", fee_per_byte=3),
    )
    node = Node(tmp_path / "public", genesis, validator_key)
    try:
        yield node
    finally:
        node.close()


def test_open_deployment_is_active_at_once_and_burns_the_fee(public_node, sign, alice):
    chain = Chain(public_node, sign)
    fee = 3 * len(COUNTER_V1.encode())
    deployed = chain.send(alice, "contracts", "deploy", {"name": "counter", "source": COUNTER_V1})
    assert deployed.ok, deployed
    assert [e.name for e in deployed.events] == ["ContractDeployed", "ContractActivated"]
    assert deployed.events[0].data["fee"] == fee
    assert public_node.query("accounts", "balance", {"address": alice.address}) == 1_000_000 - fee
    assert public_node.query("accounts", "supply", {}) == 1_000_010 - fee
    assert chain.send(alice, "counter", "add", {"n": 4}).result == 4
    record = public_node.query("contracts", "get", {"name": "counter"})["versions"][0]
    assert record["status"] == "active" and record["approvals"] == ["open"]
    # The owner upgrades; the state is kept.
    assert chain.send(alice, "contracts", "deploy", {"name": "counter", "source": COUNTER_V2}).ok
    assert chain.send(alice, "counter", "add", {"n": 1}).result == 6


def test_open_deployment_refuses_the_poor_and_name_squatters(public_node, sign, alice, bob):
    chain = Chain(public_node, sign)
    poor = chain.send(bob, "contracts", "deploy", {"name": "mine", "source": COUNTER_V1})
    assert not poor.ok and poor.error_code == "insufficient_funds"
    assert public_node.query("accounts", "balance", {"address": bob.address}) == 10
    with pytest.raises(Exception, match="no contract"):
        public_node.query("contracts", "get", {"name": "mine"})
    assert chain.send(alice, "contracts", "deploy", {"name": "counter", "source": COUNTER_V1}).ok
    # Another account may not replace alice's contract with its own version.
    public_node.submit(
        sign(
            alice,
            public_node.mempool.get_pending_nonce(alice.address),
            "accounts",
            "transfer",
            {"to": bob.address, "amount": 900_000},
        ).encoded
    )
    public_node.produce_block(public_node.head.time_ms + 1_000)
    squat = chain.send(bob, "contracts", "deploy", {"name": "counter", "source": COUNTER_V2})
    assert not squat.ok and squat.error_code == "permission_denied"
    assert chain.send(alice, "counter", "add", {"n": 2}).result == 2


def test_the_policy_is_in_the_genesis_file_and_state(make_genesis):
    from dataclasses import replace

    from civicledger.chain.genesis import ContractPolicy, Genesis
    from civicledger.errors import DecodeError
    from civicledger.state.system import CONTRACT_POLICY_KEY

    default = make_genesis()
    assert "contracts" not in default.to_json()
    assert CONTRACT_POLICY_KEY not in default.initial_state()
    public = replace(default, contracts=ContractPolicy("open", 7))
    assert Genesis.from_json(public.to_json()) == public
    assert CONTRACT_POLICY_KEY in public.initial_state()
    for bad in ({"deployment": "anyone"}, {"fee_per_byte": -1}, {"owner": "x"}):
        with pytest.raises(DecodeError, match="contracts"):
            Genesis.from_json({**default.to_json(), "contracts": bad})
