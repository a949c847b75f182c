"""System contracts and the executor, run on an in-memory state (no node, no storage).

Every call goes through ``execute_transactions`` exactly as a block would run it, so the
receipts (status, error code, fuel, events), the state changes and the nonce bump are
checked together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.dict_state import DictState

from civicledger.chain.genesis import Genesis
from civicledger.chain.receipt import STATUS_FAILED, STATUS_OK, Event, Receipt
from civicledger.chain.transaction import Transaction
from civicledger.contracts.base import (
    FUEL_BASE,
    FUEL_EVENT,
    FUEL_READ,
    FUEL_WRITE,
    Args,
    Context,
    Contract,
    ViewContext,
    call,
    state_key,
    view,
)
from civicledger.contracts.registry import ContractRegistry, default_registry
from civicledger.contracts.system.accounts import MAX_AMOUNT, Accounts
from civicledger.contracts.system.documents import Documents
from civicledger.crypto.keys import KeyPair
from civicledger.encoding import Value, decode, encode
from civicledger.errors import ContractError, InvalidTransaction
from civicledger.execution.executor import (
    BlockEnv,
    ExecutionResult,
    execute_transactions,
    get_nonce,
    nonce_key,
    run_query,
)
from civicledger.types import Hash32

Sign = Callable[..., Transaction]
BLOCK_TIME_MS = 1_750_000_000_000


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class Chain:
    """Blocks of transactions executed on a ``DictState``, tracking each sender's nonce."""

    def __init__(self, state: DictState, chain_id: str, sign: Sign, registry: ContractRegistry):
        self.state = state
        self.chain_id = chain_id
        self.sign = sign
        self.registry = registry
        self.height = 0

    def tx(
        self, key: KeyPair, contract: str, method: str, args: dict[str, Value], **kw: Any
    ) -> Transaction:
        nonce = kw.pop("nonce", None)
        if nonce is None:
            nonce = get_nonce(self.state, key.address)
        return self.sign(key, nonce, contract, method, args, **kw)

    def block(self, txs: list[Transaction]) -> ExecutionResult:
        self.height += 1
        env = BlockEnv(self.chain_id, self.height, BLOCK_TIME_MS + self.height)
        result = execute_transactions(self.registry, self.state, env, txs)
        self.state.apply(result.changes)
        return result

    def call(
        self, key: KeyPair, contract: str, method: str, args: dict[str, Value], **kw: Any
    ) -> tuple[Receipt, dict[bytes, bytes | None]]:
        """Run one transaction in its own block; return its receipt and the changes."""
        result = self.block([self.tx(key, contract, method, args, **kw)])
        assert len(result.receipts) == 1
        return result.receipts[0], result.changes

    def query(self, contract: str, method: str, args: dict[str, Value] | None = None) -> Any:
        return run_query(self.registry, self.state, self.height, contract, method, args or {})

    def balance(self, key: KeyPair) -> Any:
        return self.query("accounts", "balance", {"address": key.address})


@pytest.fixture
def chain(genesis: Genesis, chain_id: str, sign: Sign) -> Chain:
    return Chain(DictState(genesis.initial_state()), chain_id, sign, default_registry())


def assert_ok(receipt: Receipt) -> None:
    assert receipt.status == STATUS_OK, (receipt.error_code, receipt.error_message)
    assert receipt.ok and receipt.error_code == "" and receipt.error_message == ""


def assert_failed(receipt: Receipt, code: str) -> None:
    assert receipt.status == STATUS_FAILED
    assert not receipt.ok
    assert receipt.error_code == code, receipt.error_message
    assert receipt.error_message
    assert receipt.events == ()
    assert receipt.result is None


def only_nonce(changes: dict[bytes, bytes | None], key: KeyPair) -> None:
    """A failed transaction's only effect: its sender's nonce moved on."""
    assert list(changes) == [nonce_key(key.address)]


# --- accounts ---------------------------------------------------------------------------


def test_mint_by_issuer(chain: Chain, alice: KeyPair, bob: KeyPair) -> None:
    receipt, _ = chain.call(alice, "accounts", "mint", {"to": bob.address, "amount": 100})
    assert_ok(receipt)
    assert receipt.result == 100
    assert receipt.events == (
        Event("accounts", "Minted", {"to": bob.address, "amount": 100, "by": alice.address}),
    )
    assert FUEL_BASE < receipt.fuel_used < 1_000_000
    assert chain.balance(bob) == 100
    assert chain.query("accounts", "supply") == 100
    assert get_nonce(chain.state, alice.address) == 1


def test_mint_by_non_issuer_is_refused_and_changes_only_the_nonce(
    chain: Chain, bob: KeyPair
) -> None:
    receipt, changes = chain.call(bob, "accounts", "mint", {"to": bob.address, "amount": 5})
    assert_failed(receipt, "permission_denied")
    assert receipt.fuel_used >= FUEL_BASE
    only_nonce(changes, bob)
    assert chain.balance(bob) == 0
    assert get_nonce(chain.state, bob.address) == 1


def test_transfer(chain: Chain, alice: KeyPair, bob: KeyPair) -> None:
    chain.call(alice, "accounts", "mint", {"to": alice.address, "amount": 50})
    receipt, _ = chain.call(alice, "accounts", "transfer", {"to": bob.address, "amount": 20})
    assert_ok(receipt)
    assert receipt.result == 30
    assert receipt.events == (
        Event(
            "accounts", "Transferred", {"sender": alice.address, "to": bob.address, "amount": 20}
        ),
    )
    assert (chain.balance(alice), chain.balance(bob)) == (30, 20)
    assert chain.query("accounts", "supply") == 50


def test_transfer_with_insufficient_funds_fails_cleanly(
    chain: Chain, alice: KeyPair, bob: KeyPair
) -> None:
    chain.call(alice, "accounts", "mint", {"to": bob.address, "amount": 10})
    before = dict(chain.state.items)
    receipt, changes = chain.call(bob, "accounts", "transfer", {"to": alice.address, "amount": 11})
    assert_failed(receipt, "insufficient_funds")
    assert "balance 10" in receipt.error_message
    only_nonce(changes, bob)
    after = dict(chain.state.items)
    del after[nonce_key(bob.address)]
    assert after == before
    assert (chain.balance(alice), chain.balance(bob)) == (0, 10)


def test_transfer_to_self_keeps_the_balance(chain: Chain, alice: KeyPair) -> None:
    chain.call(alice, "accounts", "mint", {"to": alice.address, "amount": 10})
    receipt, _ = chain.call(alice, "accounts", "transfer", {"to": alice.address, "amount": 4})
    assert_ok(receipt)
    assert chain.balance(alice) == 10


def test_transfer_to_self_returns_the_real_new_balance(chain: Chain, alice: KeyPair) -> None:
    chain.call(alice, "accounts", "mint", {"to": alice.address, "amount": 10})
    receipt, _ = chain.call(alice, "accounts", "transfer", {"to": alice.address, "amount": 4})
    assert receipt.result == chain.balance(alice)


def test_burn(chain: Chain, alice: KeyPair, bob: KeyPair) -> None:
    chain.call(alice, "accounts", "mint", {"to": bob.address, "amount": 10})
    receipt, _ = chain.call(bob, "accounts", "burn", {"amount": 4})
    assert_ok(receipt)
    assert receipt.result == 6
    assert receipt.events == (Event("accounts", "Burned", {"sender": bob.address, "amount": 4}),)
    assert chain.balance(bob) == 6
    assert chain.query("accounts", "supply") == 6
    receipt, changes = chain.call(bob, "accounts", "burn", {"amount": 7})
    assert_failed(receipt, "insufficient_funds")
    only_nonce(changes, bob)
    assert chain.query("accounts", "supply") == 6


def test_mint_overflow(chain: Chain, alice: KeyPair, bob: KeyPair) -> None:
    receipt, _ = chain.call(alice, "accounts", "mint", {"to": bob.address, "amount": MAX_AMOUNT})
    assert_ok(receipt)
    receipt, changes = chain.call(alice, "accounts", "mint", {"to": alice.address, "amount": 1})
    assert_failed(receipt, "overflow")
    only_nonce(changes, alice)
    assert chain.query("accounts", "supply") == MAX_AMOUNT
    assert chain.balance(alice) == 0


def test_balance_overflow_from_genesis_balances(
    make_genesis: Callable[..., Genesis], chain_id: str, sign: Sign, alice: KeyPair, bob: KeyPair
) -> None:
    # Supply stays under the bound but bob's credited balance would pass it.
    genesis = make_genesis(balances=((bob.address, MAX_AMOUNT - 1),))
    chain = Chain(DictState(genesis.initial_state()), chain_id, sign, default_registry())
    receipt, changes = chain.call(alice, "accounts", "mint", {"to": bob.address, "amount": 2})
    assert_failed(receipt, "overflow")
    only_nonce(changes, alice)


def test_grant_and_revoke_issuer(chain: Chain, alice: KeyPair, bob: KeyPair) -> None:
    assert chain.query("accounts", "is_issuer", {"address": bob.address}) is False
    receipt, _ = chain.call(alice, "accounts", "grant_issuer", {"address": bob.address})
    assert_ok(receipt)
    assert receipt.events == (
        Event("accounts", "IssuerGranted", {"address": bob.address, "by": alice.address}),
    )
    assert chain.query("accounts", "is_issuer", {"address": bob.address}) is True
    receipt, _ = chain.call(bob, "accounts", "mint", {"to": bob.address, "amount": 3})
    assert_ok(receipt)
    receipt, _ = chain.call(alice, "accounts", "revoke_issuer", {"address": bob.address})
    assert_ok(receipt)
    assert receipt.events[0].name == "IssuerRevoked"
    assert chain.query("accounts", "is_issuer", {"address": bob.address}) is False
    receipt, _ = chain.call(bob, "accounts", "mint", {"to": bob.address, "amount": 3})
    assert_failed(receipt, "permission_denied")
    assert chain.balance(bob) == 3


def test_grant_and_revoke_need_the_issuer_role(chain: Chain, alice: KeyPair, bob: KeyPair) -> None:
    receipt, changes = chain.call(bob, "accounts", "grant_issuer", {"address": bob.address})
    assert_failed(receipt, "permission_denied")
    only_nonce(changes, bob)
    receipt, changes = chain.call(bob, "accounts", "revoke_issuer", {"address": alice.address})
    assert_failed(receipt, "permission_denied")
    only_nonce(changes, bob)
    assert chain.query("accounts", "is_issuer", {"address": alice.address}) is True
    receipt, _ = chain.call(alice, "accounts", "revoke_issuer", {"address": bob.address})
    assert_failed(receipt, "requirement_failed")


ADDRESS = b"\x11" * 20


@pytest.mark.parametrize(
    ("method", "args", "fragment"),
    [
        ("mint", {"amount": 5}, "missing argument 'to'"),
        ("mint", {"to": ADDRESS}, "missing argument 'amount'"),
        ("mint", {"to": ADDRESS, "amount": 5, "memo": "hi"}, "unexpected argument 'memo'"),
        ("mint", {"to": ADDRESS.hex(), "amount": 5}, "'to' must be 20 bytes"),
        ("mint", {"to": ADDRESS[:19], "amount": 5}, "'to' must be 20 bytes"),
        ("mint", {"to": ADDRESS + b"\x00", "amount": 5}, "'to' must be 20 bytes"),
        ("mint", {"to": ADDRESS, "amount": 0}, "'amount' must be between"),
        ("mint", {"to": ADDRESS, "amount": -1}, "'amount' must be between"),
        ("mint", {"to": ADDRESS, "amount": MAX_AMOUNT + 1}, "'amount' must be between"),
        ("mint", {"to": ADDRESS, "amount": True}, "'amount' must be an integer"),
        ("mint", {"to": ADDRESS, "amount": "5"}, "'amount' must be an integer"),
        ("mint", {"to": ADDRESS, "amount": None}, "'amount' must be an integer"),
        ("transfer", {"to": ADDRESS}, "missing argument 'amount'"),
        ("transfer", {"to": ADDRESS, "amount": 1, "extra": None}, "unexpected argument"),
        ("burn", {}, "missing argument 'amount'"),
        ("burn", {"amount": 1, "to": ADDRESS}, "unexpected argument 'to'"),
        ("grant_issuer", {}, "missing argument 'address'"),
        ("grant_issuer", {"address": [ADDRESS]}, "'address' must be 20 bytes"),
        ("revoke_issuer", {"address": ADDRESS, "x": 1}, "unexpected argument 'x'"),
    ],
)
def test_bad_arguments(
    chain: Chain, alice: KeyPair, method: str, args: dict[str, Value], fragment: str
) -> None:
    receipt, changes = chain.call(alice, "accounts", method, args)
    assert_failed(receipt, "bad_argument")
    assert fragment in receipt.error_message
    only_nonce(changes, alice)


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("balance", {}),
        ("balance", {"address": ADDRESS, "extra": 1}),
        ("balance", {"address": b"short"}),
        ("supply", {"x": 1}),
        ("is_issuer", {"address": 5}),
    ],
)
def test_bad_query_arguments(chain: Chain, method: str, args: dict[str, Value]) -> None:
    with pytest.raises(ContractError) as info:
        chain.query("accounts", method, args)
    assert info.value.code == "bad_argument"


def test_queries_of_unknown_contracts_and_methods(chain: Chain) -> None:
    with pytest.raises(ContractError) as info:
        chain.query("nosuch", "balance")
    assert info.value.code == "unknown_contract"
    for method in ("mint", "nosuch", "_credit", "get_method"):
        with pytest.raises(ContractError) as info:
            chain.query("accounts", method)
        assert info.value.code == "unknown_method"


# --- documents --------------------------------------------------------------------------

V1, V2, V3 = sha(b"version 1"), sha(b"version 2"), sha(b"version 3")


def register(
    chain: Chain, key: KeyPair, doc_id: str = "decree-1", digest: bytes = V1, **extra: Value
) -> tuple[Receipt, dict[bytes, bytes | None]]:
    args: dict[str, Value] = {"id": doc_id, "sha256": digest, "title": "Decree 1", **extra}
    return chain.call(key, "documents", "register", args)


def test_register(chain: Chain, alice: KeyPair) -> None:
    receipt, _ = register(chain, alice, note="first")
    assert_ok(receipt)
    assert receipt.result == 1
    assert receipt.events == (
        Event(
            "documents",
            "DocumentRegistered",
            {"id": "decree-1", "sha256": V1, "version": 1, "issuer": alice.address},
        ),
    )
    doc = chain.query("documents", "get", {"id": "decree-1"})
    assert isinstance(doc, dict)
    assert doc["issuer"] == alice.address
    assert doc["title"] == "Decree 1"
    assert doc["versions"] == 1 and doc["status"] == "active"
    current = doc["current"]
    assert isinstance(current, dict)
    assert current["sha256"] == V1 and current["note"] == "first"
    assert current["height"] == chain.height
    assert current["time_ms"] == BLOCK_TIME_MS + chain.height
    assert current["by"] == alice.address


def test_anyone_may_register_a_document(chain: Chain, bob: KeyPair) -> None:
    receipt, _ = register(chain, bob)
    assert_ok(receipt)


def test_register_duplicate_id(chain: Chain, alice: KeyPair, bob: KeyPair) -> None:
    register(chain, alice)
    receipt, changes = register(chain, bob, digest=V2)
    assert_failed(receipt, "duplicate")
    assert "already exists" in receipt.error_message
    only_nonce(changes, bob)


def test_register_duplicate_hash(chain: Chain, alice: KeyPair) -> None:
    register(chain, alice)
    receipt, changes = register(chain, alice, doc_id="decree-2")
    assert_failed(receipt, "duplicate")
    assert V1.hex() in receipt.error_message
    only_nonce(changes, alice)
    with pytest.raises(ContractError) as info:
        chain.query("documents", "get", {"id": "decree-2"})
    assert info.value.code == "not_found"


def test_versions_supersede_and_lookup_says_which_copy_is_current(
    chain: Chain, alice: KeyPair
) -> None:
    register(chain, alice)
    receipt, _ = chain.call(
        alice, "documents", "update", {"id": "decree-1", "sha256": V2, "note": "typo"}
    )
    assert_ok(receipt)
    assert receipt.result == 2
    assert receipt.events == (
        Event(
            "documents",
            "DocumentUpdated",
            {"id": "decree-1", "sha256": V2, "version": 2, "supersedes": 1},
        ),
    )
    old = chain.query("documents", "lookup", {"sha256": V1})
    new = chain.query("documents", "lookup", {"sha256": V2})
    assert isinstance(old, dict) and isinstance(new, dict)
    assert old["registered"] is True and new["registered"] is True
    assert (old["version"], old["current"], old["latest_version"]) == (1, False, 2)
    assert old["latest_sha256"] == V2
    assert (new["version"], new["current"], new["status"]) == (2, True, "active")
    assert new["id"] == "decree-1" and new["issuer"] == alice.address
    assert chain.query("documents", "lookup", {"sha256": V3}) == {"registered": False}
    history = chain.query("documents", "history", {"id": "decree-1"})
    assert isinstance(history, dict)
    versions = history["history"]
    assert isinstance(versions, list)
    assert [(v["version"], v["sha256"], v["note"]) for v in versions] == [
        (1, V1, ""),
        (2, V2, "typo"),
    ]
    assert [v["height"] for v in versions] == [1, 2]


def test_update_by_someone_else_is_refused(chain: Chain, alice: KeyPair, bob: KeyPair) -> None:
    register(chain, alice)
    receipt, changes = chain.call(bob, "documents", "update", {"id": "decree-1", "sha256": V2})
    assert_failed(receipt, "permission_denied")
    only_nonce(changes, bob)
    receipt, _ = chain.call(bob, "documents", "revoke", {"id": "decree-1", "reason": "mine"})
    assert_failed(receipt, "permission_denied")
    assert chain.query("documents", "lookup", {"sha256": V2}) == {"registered": False}


def test_update_with_a_registered_hash_is_refused(chain: Chain, alice: KeyPair) -> None:
    register(chain, alice)
    receipt, changes = chain.call(alice, "documents", "update", {"id": "decree-1", "sha256": V1})
    assert_failed(receipt, "duplicate")
    only_nonce(changes, alice)


def test_update_of_unknown_document(chain: Chain, alice: KeyPair) -> None:
    receipt, changes = chain.call(alice, "documents", "update", {"id": "nope", "sha256": V1})
    assert_failed(receipt, "not_found")
    only_nonce(changes, alice)


def test_revoke_then_update_is_refused(chain: Chain, alice: KeyPair) -> None:
    register(chain, alice)
    receipt, _ = chain.call(alice, "documents", "revoke", {"id": "decree-1", "reason": "void"})
    assert_ok(receipt)
    assert receipt.events == (
        Event("documents", "DocumentRevoked", {"id": "decree-1", "reason": "void"}),
    )
    found = chain.query("documents", "lookup", {"sha256": V1})
    assert isinstance(found, dict)
    assert (found["registered"], found["current"], found["status"]) == (True, False, "revoked")
    doc = chain.query("documents", "get", {"id": "decree-1"})
    assert isinstance(doc, dict) and doc["revoked_reason"] == "void"
    receipt, changes = chain.call(alice, "documents", "update", {"id": "decree-1", "sha256": V2})
    assert_failed(receipt, "revoked")
    only_nonce(changes, alice)
    receipt, _ = chain.call(alice, "documents", "revoke", {"id": "decree-1", "reason": "again"})
    assert_failed(receipt, "revoked")


@pytest.mark.parametrize("doc_id", ["", "a/b", "x" * 129, "tab\there", "new\nline", 5, None])
def test_bad_document_ids(chain: Chain, alice: KeyPair, doc_id: Any) -> None:
    receipt, changes = chain.call(
        alice, "documents", "register", {"id": doc_id, "sha256": V1, "title": "T"}
    )
    assert_failed(receipt, "bad_argument")
    only_nonce(changes, alice)
    for method in ("get", "history"):
        with pytest.raises(ContractError) as info:
            chain.query("documents", method, {"id": doc_id})
        assert info.value.code == "bad_argument"


def test_longest_document_id_is_accepted(chain: Chain, alice: KeyPair) -> None:
    receipt, _ = register(chain, alice, doc_id="é" * 128)
    assert_ok(receipt)


@pytest.mark.parametrize(
    "args",
    [
        {"id": "d", "sha256": V1[:31], "title": "T"},
        {"id": "d", "sha256": V1.hex(), "title": "T"},
        {"id": "d", "sha256": V1},
        {"id": "d", "sha256": V1, "title": "T" * 201},
        {"id": "d", "sha256": V1, "title": "T", "note": "n" * 501},
        {"id": "d", "sha256": V1, "title": "T", "note": 3},
        {"id": "d", "sha256": V1, "title": "T", "version": 1},
    ],
)
def test_bad_register_arguments(chain: Chain, alice: KeyPair, args: dict[str, Value]) -> None:
    receipt, changes = chain.call(alice, "documents", "register", args)
    assert_failed(receipt, "bad_argument")
    only_nonce(changes, alice)


def test_document_queries_of_unknown_things(chain: Chain) -> None:
    for method in ("get", "history"):
        with pytest.raises(ContractError) as info:
            chain.query("documents", method, {"id": "nope"})
        assert info.value.code == "not_found"
    with pytest.raises(ContractError) as info:
        chain.query("documents", "lookup", {"sha256": b"x"})
    assert info.value.code == "bad_argument"


# --- the executor: nonces, fuel, crashes -----------------------------------------------


def test_failed_transactions_still_bump_the_nonce_within_a_block(
    chain: Chain, alice: KeyPair, bob: KeyPair
) -> None:
    txs = [
        chain.tx(alice, "accounts", "transfer", {"to": bob.address, "amount": 1}, nonce=0),
        chain.tx(alice, "accounts", "mint", {"to": bob.address, "amount": 2}, nonce=1),
        chain.tx(alice, "accounts", "nosuch", {}, nonce=2),
    ]
    result = chain.block(txs)
    assert result.transactions == tuple(txs)
    assert [r.tx_id for r in result.receipts] == [tx.tx_id for tx in txs]
    assert [r.error_code for r in result.receipts] == ["insufficient_funds", "", "unknown_method"]
    assert result.skipped == ()
    assert get_nonce(chain.state, alice.address) == 3
    assert chain.balance(bob) == 2


def test_block_with_an_invalid_transaction_is_refused_unless_skipping(
    chain: Chain, alice: KeyPair, bob: KeyPair, sign: Sign
) -> None:
    good = chain.tx(alice, "accounts", "mint", {"to": bob.address, "amount": 1}, nonce=0)
    cases = {
        "nonce_gap": chain.tx(alice, "accounts", "burn", {"amount": 1}, nonce=5),
        "nonce_too_low": chain.tx(alice, "accounts", "burn", {"amount": 2}, nonce=0),
        "wrong_chain_id": sign(bob, 0, "accounts", "burn", {"amount": 1}, chain_id="other"),
        "expired": sign(bob, 0, "accounts", "burn", {"amount": 1}, expiry=1),
    }
    env = BlockEnv(chain.chain_id, 2, BLOCK_TIME_MS)
    for code, bad in cases.items():
        with pytest.raises(InvalidTransaction) as info:
            execute_transactions(chain.registry, chain.state, env, [good, bad])
        assert info.value.code == code
    result = execute_transactions(
        chain.registry, chain.state, env, [good, *cases.values()], skip_invalid=True
    )
    assert result.transactions == (good,)
    assert [(tx, exc.code) for tx, exc in result.skipped] == [
        (tx, code) for code, tx in cases.items()
    ]


def test_out_of_fuel_before_the_call(chain: Chain, alice: KeyPair, bob: KeyPair) -> None:
    receipt, changes = chain.call(
        alice, "accounts", "mint", {"to": bob.address, "amount": 1}, fuel_limit=1
    )
    assert_failed(receipt, "out_of_fuel")
    assert receipt.fuel_used == 1
    only_nonce(changes, alice)


def test_out_of_fuel_midway_rolls_back_deterministically(
    genesis: Genesis, chain_id: str, sign: Sign, alice: KeyPair, bob: KeyPair
) -> None:
    # Enough fuel to read the role and write the supply, not to finish the mint.
    limit = FUEL_BASE + 3 * FUEL_READ + FUEL_WRITE + 200
    tx = sign(alice, 0, "accounts", "mint", {"to": bob.address, "amount": 1}, fuel_limit=limit)
    env = BlockEnv(chain_id, 1, BLOCK_TIME_MS)
    results = [
        execute_transactions(default_registry(), DictState(genesis.initial_state()), env, [tx])
        for _ in range(2)
    ]
    assert results[0] == results[1]
    receipt = results[0].receipts[0]
    assert_failed(receipt, "out_of_fuel")
    assert receipt.fuel_used == limit
    only_nonce(results[0].changes, alice)
    # The same call with the default fuel limit succeeds: the limit was the only problem.
    ok = execute_transactions(
        default_registry(),
        DictState(genesis.initial_state()),
        env,
        [sign(alice, 0, "accounts", "mint", {"to": bob.address, "amount": 1})],
    )
    assert ok.receipts[0].ok
    assert ok.receipts[0].fuel_used > limit


# --- a contract written for these tests -----------------------------------------------


class Probe(Contract):
    """A test contract: exact fuel accounting, and the ways a call can go wrong."""

    name = "probe"

    @call
    def store(self, ctx: Context, args: Args) -> Value:
        n = args.integer("n")
        args.check_no_extra()
        total = ctx.get_int("total") + n
        ctx.set("total", total)
        ctx.emit("Stored", total=total)
        return total

    @call
    def write_then_raise(self, ctx: Context, args: Args) -> Value:
        ctx.set("scribble", 1)
        ctx.emit("Scribbled")
        raise ValueError("boom")

    @call
    def write_then_require(self, ctx: Context, args: Args) -> Value:
        ctx.set("scribble", 1)
        ctx.require(False, "nope", code="custom_code")
        return None

    @call
    def recurse(self, ctx: Context, args: Args) -> Value:
        ctx.set("scribble", 1)
        return self.recurse(ctx, args)

    @call
    def unencodable_result(self, ctx: Context, args: Args) -> Value:
        ctx.set("scribble", 1)
        return 1.5  # type: ignore[return-value]

    @call
    def delete_total(self, ctx: Context, args: Args) -> Value:
        ctx.delete("total")
        return None

    @view
    def total(self, ctx: ViewContext, args: Args) -> Value:
        return ctx.get_int("total")


@pytest.fixture
def probe_chain(genesis: Genesis, chain_id: str, sign: Sign) -> Chain:
    registry = ContractRegistry([Accounts(), Documents(), Probe()])
    return Chain(DictState(genesis.initial_state()), chain_id, sign, registry)


def test_fuel_is_charged_exactly(probe_chain: Chain, bob: KeyPair) -> None:
    receipt, changes = probe_chain.call(bob, "probe", "store", {"n": 7})
    assert_ok(receipt)
    stored = encode(7)
    event_size = len(encode({"total": 7}))
    expected = FUEL_BASE + FUEL_READ + FUEL_WRITE + 10 * len(stored) + FUEL_EVENT + event_size
    assert receipt.fuel_used == expected
    assert changes[state_key("probe", "total")] == stored
    # The second call reads an existing value: one more unit of fuel per byte read.
    receipt, _ = probe_chain.call(bob, "probe", "store", {"n": 1})
    assert receipt.fuel_used == expected + len(stored) + 10 * (len(encode(8)) - len(stored))
    assert probe_chain.query("probe", "total") == 8


def test_exactly_enough_fuel_succeeds_one_less_fails(
    probe_chain: Chain, bob: KeyPair, alice: KeyPair
) -> None:
    receipt, _ = probe_chain.call(bob, "probe", "store", {"n": 7})
    needed = receipt.fuel_used
    probe_chain.state.apply({state_key("probe", "total"): None})
    receipt, _ = probe_chain.call(alice, "probe", "store", {"n": 7}, fuel_limit=needed)
    assert_ok(receipt)
    probe_chain.state.apply({state_key("probe", "total"): None})
    receipt, changes = probe_chain.call(alice, "probe", "store", {"n": 7}, fuel_limit=needed - 1)
    assert_failed(receipt, "out_of_fuel")
    assert receipt.fuel_used == needed - 1
    only_nonce(changes, alice)


@pytest.mark.parametrize(
    ("method", "code", "fragment"),
    [
        ("write_then_raise", "contract_crashed", "ValueError: boom"),
        ("write_then_require", "custom_code", "nope"),
        ("recurse", "contract_crashed", "RecursionError"),
        ("unencodable_result", "contract_unencodable", "float"),
    ],
)
def test_a_failing_contract_gets_a_failed_receipt_and_no_writes(
    probe_chain: Chain, bob: KeyPair, alice: KeyPair, method: str, code: str, fragment: str
) -> None:
    bad = probe_chain.tx(bob, "probe", method, {}, nonce=0)
    after = probe_chain.tx(alice, "probe", "store", {"n": 1}, nonce=0)
    result = probe_chain.block([bad, after])
    failed, fine = result.receipts
    assert_failed(failed, code)
    assert fragment in failed.error_message
    assert failed.fuel_used > FUEL_BASE  # the write before the failure was charged
    assert state_key("probe", "scribble") not in result.changes
    # The failure did not stop the block.
    assert_ok(fine)
    assert set(result.changes) == {
        nonce_key(bob.address),
        nonce_key(alice.address),
        state_key("probe", "total"),
    }


def test_a_write_restoring_the_committed_value_is_not_a_change(
    probe_chain: Chain, bob: KeyPair
) -> None:
    result = probe_chain.block(
        [
            probe_chain.tx(bob, "probe", "delete_total", {}, nonce=0),
        ]
    )
    assert result.receipts[0].ok
    only_nonce(result.changes, bob)


def test_nonce_is_stored_canonically(chain: Chain, alice: KeyPair) -> None:
    chain.call(alice, "accounts", "burn", {"amount": 1})
    assert decode(chain.state.items[nonce_key(alice.address)]) == 1


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(0, 2**64)
    | st.binary(max_size=40)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.text(max_size=10), st.dictionaries(st.text(max_size=8), _values, max_size=4)),
        max_size=3,
    ),
    many=st.booleans(),
    result=_values,
    measured=st.booleans(),
)
def test_a_receipt_encodes_from_its_events_as_the_general_encoder_does(
    events: list[tuple[str, dict[str, Value]]], many: bool, result: Value, measured: bool
) -> None:
    # Receipt.encoded joins the events' own encodings (their data measured at emit);
    # the bytes are encode(to_value()), including a list of 128 events or more.
    made = tuple(
        Event("c", name, data, encode(data) if measured else b"") for name, data in events
    ) * (130 if many and events else 1)
    receipt = Receipt(Hash32(b"\x07" * 32), STATUS_OK, "", "", 12_345, made, result)
    assert receipt.encoded == encode(receipt.to_value())
