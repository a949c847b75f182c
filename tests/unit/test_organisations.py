"""Organisations and roles: registered by validators, roles granted by admins, logged."""

from __future__ import annotations

from civicledger.contracts.system.organisations import REGISTRATION_TTL_BLOCKS
from civicledger.crypto.keys import KeyPair

CAROL = KeyPair.from_seed(b"c" * 32)


class Runner:
    def __init__(self, node, sign):
        self.node, self.sign = node, sign

    def call(self, key, method, args):
        tx = self.sign(
            key, self.node.mempool.get_pending_nonce(key.address), "organisations", method, args
        )
        self.node.submit(tx.encoded)
        block = self.node.produce_block(self.node.head.time_ms + 1_000)
        return self.node.get_receipts(block.height)[-1]


def test_register_grant_check_revoke_with_history(node, sign, validator_key, alice, bob):
    run = Runner(node, sign)
    # Only validators register organisations.
    refused = run.call(
        alice, "register", {"id": "land", "name": "Land Registry", "admins": [alice.address]}
    )
    assert refused.error_code == "permission_denied"
    ok = run.call(
        validator_key,
        "register",
        {"id": "land", "name": "Land Registry", "admins": [alice.address]},
    )
    assert ok.ok, ok
    assert (
        run.call(
            validator_key, "register", {"id": "land", "name": "x", "admins": [alice.address]}
        ).error_code
        == "duplicate"
    )

    # Admins grant; others may not.
    grant = {"org": "land", "role": "registrar", "address": bob.address, "reason": "hired"}
    assert run.call(bob, "grant", grant).error_code == "permission_denied"
    assert run.call(alice, "grant", grant).ok
    assert node.query("organisations", "has_role", {"role": "registrar", "address": bob.address})
    assert not node.query(
        "organisations", "has_role", {"role": "registrar", "address": CAROL.address}
    )
    assert run.call(alice, "grant", grant).error_code == "duplicate"

    # Revoke, then the log shows every change, newest first, with who and why.
    revoke = {"org": "land", "role": "registrar", "address": bob.address, "reason": "left"}
    assert run.call(alice, "revoke", revoke).ok
    assert not node.query(
        "organisations", "has_role", {"role": "registrar", "address": bob.address}
    )
    log = node.query("organisations", "history", {})
    assert [entry["action"] for entry in log] == ["revoke", "grant", "register"]
    assert log[0]["reason"] == "left" and log[0]["by"] == alice.address
    assert log[1]["address"] == bob.address


def test_admins_can_be_replaced_and_bad_arguments_are_refused(node, sign, validator_key, alice):
    run = Runner(node, sign)
    assert run.call(
        validator_key, "register", {"id": "bank", "name": "Bank", "admins": [alice.address]}
    ).ok
    assert run.call(alice, "set_admins", {"id": "bank", "admins": [CAROL.address]}).ok
    org = node.query("organisations", "get", {"id": "bank"})
    assert org["admins"] == [CAROL.address]
    # Alice is no longer an admin.
    grant = {"org": "bank", "role": "teller", "address": alice.address}
    assert run.call(alice, "grant", grant).error_code == "permission_denied"
    bad = [
        ("register", {"id": "has space", "name": "x", "admins": [alice.address]}),
        ("register", {"id": "ok", "name": "x", "admins": []}),
        ("register", {"id": "ok", "name": "x", "admins": [b"short"]}),
        ("grant", {"org": "nope", "role": "r", "address": alice.address}),
    ]
    codes = [run.call(validator_key, method, args).error_code for method, args in bad]
    assert codes == ["bad_argument", "bad_argument", "bad_argument", "not_found"]


# -- several validators: registration and contract approval need > 2/3 of the power -----


class Validators:
    """Blocks of one transaction each on a DictState of a 4-validator genesis."""

    def __init__(self, make_genesis, sign):
        from tests.dict_state import DictState

        from civicledger.contracts.registry import default_registry

        self.keys = [KeyPair.from_seed(bytes([0x50 + i]) * 32) for i in range(4)]
        self.state = DictState(make_genesis(validators=self.keys).initial_state())
        self.registry = default_registry()
        self.sign = sign
        self.height = 0
        self.nonces: dict[bytes, int] = {}

    def call(self, key, contract, method, args):
        from civicledger.execution.executor import BlockEnv, execute_transactions

        nonce = self.nonces.get(key.address, 0)
        self.nonces[key.address] = nonce + 1
        self.height += 1
        tx = self.sign(key, nonce, contract, method, args, fuel_limit=50_000_000)
        env = BlockEnv("test-1", self.height, 1_000 * self.height)
        result = execute_transactions(self.registry, self.state, env, [tx])
        self.state.apply(result.changes)
        return result.receipts[0]


def test_an_organisation_needs_validators_with_two_thirds_of_the_power(make_genesis, sign, alice):
    net = Validators(make_genesis, sign)
    land = {"id": "land", "name": "Land Registry", "admins": [alice.address]}
    v0, v1, v2, _ = net.keys
    assert net.call(v0, "organisations", "register", land).result == "pending"
    # A different registration under the same id is refused while one waits.
    other = {**land, "admins": [CAROL.address]}
    assert net.call(v1, "organisations", "register", other).error_code == "conflict"
    assert net.call(v0, "organisations", "register", land).error_code == "duplicate"
    assert net.call(v1, "organisations", "register", land).result == "pending"
    done = net.call(v2, "organisations", "register", land)
    assert done.ok and done.result == "land", done
    assert net.call(v0, "organisations", "register", land).error_code == "duplicate"


def test_a_registration_the_others_do_not_approve_lapses(make_genesis, sign, alice):
    net = Validators(make_genesis, sign)
    v0, v1, v2, _ = net.keys
    squat = {"id": "land", "name": "Land Registry", "admins": [CAROL.address]}
    right = {"id": "land", "name": "Land Registry", "admins": [alice.address]}
    assert net.call(v0, "organisations", "register", squat).result == "pending"
    net.height += REGISTRATION_TTL_BLOCKS - 1
    assert net.call(v1, "organisations", "register", right).error_code == "conflict"
    net.height += 1  # the waiting registration has lapsed
    lapsed = net.call(v1, "organisations", "register", right)
    assert lapsed.result == "pending"
    assert [e.name for e in lapsed.events] == [
        "OrganisationRegistrationLapsed",
        "OrganisationProposed",
    ]
    assert net.call(v2, "organisations", "register", right).result == "pending"
    # v0's approval of the lapsed registration does not count for this one.
    done = net.call(v0, "organisations", "register", right)
    assert done.ok and done.result == "land", done


def test_with_no_organisation_validators_with_two_thirds_approve_contracts(
    make_genesis, sign, alice
):
    from civicledger.contracts.sandbox.examples import COUNTER

    net = Validators(make_genesis, sign)
    deployed = net.call(alice, "contracts", "deploy", {"name": "counter", "source": COUNTER})
    assert deployed.ok, deployed
    v0, v1, v2, _ = net.keys
    approve = {"name": "counter", "version": 1}
    assert net.call(alice, "contracts", "approve", approve).error_code == "permission_denied"
    assert net.call(v0, "contracts", "approve", approve).result == "pending"
    assert net.call(v0, "contracts", "approve", approve).error_code == "duplicate"
    assert net.call(v1, "contracts", "approve", approve).result == "pending"
    assert net.call(alice, "counter", "add", {"n": 1}).error_code == "unknown_contract"
    assert net.call(v2, "contracts", "approve", approve).result == "active"
    assert net.call(alice, "counter", "add", {"n": 1}).result == 1


def test_a_contract_can_ask_which_organisation_granted_a_role(
    node, sign, validator_key, alice, bob
):
    run = Runner(node, sign)
    for org, admin in (("land", alice), ("bank", CAROL)):
        args = {"id": org, "name": org, "admins": [admin.address]}
        assert run.call(validator_key, "register", args).ok
    grant = {"org": "bank", "role": "registrar", "address": bob.address}
    assert run.call(CAROL, "grant", grant).ok
    ask = {"role": "registrar", "address": bob.address}
    assert node.query("organisations", "has_role", ask) is True
    assert node.query("organisations", "has_role", {**ask, "org": "bank"}) is True
    # The land registry did not make bob a registrar: a contract that asks says so.
    assert node.query("organisations", "has_role", {**ask, "org": "land"}) is False


def test_validator_approvals_do_not_count_as_organisations_once_one_is_registered(
    make_genesis, sign, alice
):
    from civicledger.contracts.sandbox.examples import COUNTER

    net = Validators(make_genesis, sign)
    assert net.call(alice, "contracts", "deploy", {"name": "counter", "source": COUNTER}).ok
    v0, v1, v2, _ = net.keys
    approve = {"name": "counter", "version": 1}
    assert net.call(v0, "contracts", "approve", approve).result == "pending"
    assert net.call(v1, "contracts", "approve", approve).result == "pending"
    # Three organisations are registered; alice administers the first.
    for org in ("land", "tax", "health"):
        record = {"id": org, "name": org.title(), "admins": [alice.address]}
        assert all(net.call(v, "organisations", "register", record).ok for v in (v0, v1, v2))
    # One organisation of three is no majority, whatever validators approved before.
    first = net.call(alice, "contracts", "approve", {**approve, "org": "land"})
    assert first.ok and first.result == "pending", first
    assert net.call(alice, "counter", "add", {"n": 1}).error_code == "unknown_contract"
    assert net.call(alice, "contracts", "approve", {**approve, "org": "tax"}).result == "active"


def test_each_organisation_grants_and_revokes_its_own(node, sign, validator_key, alice, bob):
    run = Runner(node, sign)
    for org, admin in (("land", alice), ("city", CAROL)):
        assert run.call(
            validator_key, "register", {"id": org, "name": org, "admins": [admin.address]}
        ).ok
    ask = {"role": "registrar", "address": bob.address}
    # City grants first; land can still grant its own.
    assert run.call(CAROL, "grant", {"org": "city", **ask}).ok
    assert run.call(alice, "grant", {"org": "land", **ask}).ok
    assert run.call(alice, "grant", {"org": "land", **ask}).error_code == "duplicate"
    # Land cannot revoke what city granted; revoking its own leaves city's.
    assert run.call(alice, "revoke", {"org": "city", **ask}).error_code == "permission_denied"
    assert run.call(alice, "revoke", {"org": "land", **ask}).ok
    assert run.call(alice, "revoke", {"org": "land", **ask}).error_code == "not_found"
    assert node.query("organisations", "has_role", ask) is True
    assert node.query("organisations", "has_role", {**ask, "org": "land"}) is False
    assert node.query("organisations", "has_role", {**ask, "org": "city"}) is True
    assert run.call(CAROL, "revoke", {"org": "city", **ask}).ok
    assert node.query("organisations", "has_role", ask) is False
