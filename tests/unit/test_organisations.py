"""Organisations and roles: registered by validators, roles granted by admins, logged."""

from __future__ import annotations

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
