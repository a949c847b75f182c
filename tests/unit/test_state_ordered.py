"""Ordered state: the key index beside the state tree, scans through write overlays, and
``ctx.items`` for contracts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from civicledger.contracts.registry import ContractRegistry
from civicledger.contracts.sandbox import compile_contract
from civicledger.encoding import decode, encode
from civicledger.execution.executor import BlockEnv, execute_transactions, run_query
from civicledger.state.ordered import StateTree
from civicledger.state.overlay import BlockOverlay, TxOverlay

key_st = st.lists(st.sampled_from(b"abc"), min_size=1, max_size=3).map(bytes)
value_st = st.binary(max_size=2)


def model_scan(items: dict[bytes, bytes], prefix: bytes, after: bytes, limit: int):
    keys = sorted(k for k in items if k.startswith(prefix) and k > after)
    return [(k, items[k]) for k in keys[:limit]]


@given(
    base=st.dictionaries(key_st, value_st),
    block_writes=st.dictionaries(key_st, st.none() | value_st),
    tx_writes=st.dictionaries(key_st, st.none() | value_st),
    prefix=st.lists(st.sampled_from(b"abc"), max_size=2).map(bytes),
    after=st.lists(st.sampled_from(b"abc"), max_size=3).map(bytes),
    limit=st.integers(1, 6),
)
def test_scans_through_overlays_match_a_sorted_model(
    base, block_writes, tx_writes, prefix, after, limit
) -> None:
    tree = StateTree.from_items(base.items())
    block = BlockOverlay(tree)
    block.writes.update(block_writes)
    tx = TxOverlay(block)
    tx.writes.update(tx_writes)
    expected = dict(base)
    for writes in (block_writes, tx_writes):
        for k, v in writes.items():
            if v is None:
                expected.pop(k, None)
            else:
                expected[k] = v
    assert tree.scan(prefix, after, limit) == model_scan(base, prefix, after, limit)
    metered: list[int] = []
    rows = tx.scan(prefix, after, limit, metered.append)
    assert rows == model_scan(expected, prefix, after, limit)
    # The scan is charged for every entry it went past: those of each layer up to the last
    # key returned (to the end when fewer than `limit` are), less the ones returned.
    end = rows[-1][0] if len(rows) == limit else None
    gone_through = sum(
        1
        for layer in (base, block_writes, tx_writes)
        for k in layer
        if k.startswith(prefix) and k > after and (end is None or k <= end)
    )
    assert sum(metered) == gone_through - len(rows)
    assert len(metered) <= 1


@given(
    start=st.dictionaries(key_st, value_st),
    changes=st.lists(st.dictionaries(key_st, st.none() | value_st), max_size=4),
)
def test_the_key_index_follows_every_update(start, changes) -> None:
    tree = StateTree.from_items(start.items())
    model = dict(start)
    for batch in changes:
        tree.update(batch)
        for k, v in batch.items():
            if v is None:
                model.pop(k, None)
            else:
                model[k] = v
    assert tree.scan(b"", b"", 1_000) == model_scan(model, b"", b"", 1_000)
    assert tree.root() == StateTree.from_items(model.items()).root()


REGISTER = """
class Register:
    @call
    def put(self, ctx, args):
        ctx.set("entry/" + args.text("name"), args.integer("n"))
        return None

    @call
    def drop(self, ctx, args):
        ctx.delete("entry/" + args.text("name"))
        return None

    @view
    def page(self, ctx, args):
        rows = ctx.items("entry/", after=args.text("after", required=False), limit=2)
        return [[key, value] for key, value in rows]
"""


def test_a_sandboxed_contract_lists_its_keys_in_order_page_by_page(sign, alice) -> None:
    contract = compile_contract(REGISTER, name="register").instantiate()
    registry = ContractRegistry([contract])
    tree = StateTree()
    calls = [("put", "delta", 4), ("put", "alpha", 1), ("put", "charlie", 3), ("put", "bravo", 2)]
    calls += [("drop", "charlie", 0)]
    txs = []
    for nonce, (method, name, n) in enumerate(calls):
        args = {"name": name, "n": n} if method == "put" else {"name": name}
        txs.append(sign(alice, nonce, "register", method, args))
    env = BlockEnv("test-1", 1, 1_750_000_000_000)
    result = execute_transactions(registry, tree, env, txs)
    assert all(r.ok for r in result.receipts), result.receipts
    tree.update(result.changes)
    # A key written by another contract with a similar name is never listed.
    tree.set(b"registers/entry/zulu", encode(9))

    def page(after: str):
        return run_query(registry, tree, 1, "register", "page", {"after": after})

    assert page("") == [["entry/alpha", 1], ["entry/bravo", 2]]
    assert page("entry/bravo") == [["entry/delta", 4]]
    assert page("entry/delta") == []


def test_items_sees_the_writes_of_its_own_block(sign, alice) -> None:
    source = REGISTER.replace("    @view\n    def page", "    @call\n    def page")
    contract = compile_contract(source, name="register").instantiate()
    registry = ContractRegistry([contract])
    txs = [
        sign(alice, 0, "register", "put", {"name": "b", "n": 2}),
        sign(alice, 1, "register", "put", {"name": "a", "n": 1}),
        sign(alice, 2, "register", "page", {"after": ""}),
    ]
    result = execute_transactions(registry, StateTree(), BlockEnv("test-1", 1, 1), txs)
    assert result.receipts[2].ok, result.receipts[2]
    assert result.receipts[2].result == [["entry/a", 1], ["entry/b", 2]]
    assert decode(encode(result.receipts[2].result)) == result.receipts[2].result


WIPE = """
class Wipe:
    @call
    def wipe_and_list(self, ctx, args):
        for i in range(args.integer("n", maximum=1000)):
            ctx.set("entry/" + str(i), i)
            ctx.delete("entry/" + str(i))
        for _ in range(10):
            ctx.items("entry/", limit=1)
        return None
"""


def test_listing_past_many_pending_deletions_costs_fuel_for_each(sign, alice) -> None:
    from civicledger.contracts.base import FUEL_SCAN_SKIP

    contract = compile_contract(WIPE, name="wipe").instantiate()
    registry = ContractRegistry([contract])
    env = BlockEnv("test-1", 1, 1)
    used = []
    for n in (500, 1000):
        tx = sign(alice, 0, "wipe", "wipe_and_list", {"n": n}, fuel_limit=50_000_000)
        (receipt,) = execute_transactions(registry, StateTree(), env, [tx]).receipts
        assert receipt.ok, receipt
        used.append(receipt.fuel_used)
    # Each of the ten listings went past 500 more deleted keys in the second call; the rest
    # of the extra fuel is the extra writes and loop steps.
    assert used[1] - used[0] >= 10 * 500 * FUEL_SCAN_SKIP


@given(
    base=st.dictionaries(key_st, value_st),
    steps=st.lists(
        st.tuples(st.sampled_from(["write", "scan", "commit"]), key_st, st.none() | value_st),
        max_size=30,
    ),
)
def test_scans_between_writes_see_every_write_so_far(base, steps) -> None:
    # The sorted key index of each overlay is brought up to date between scans.
    tree = StateTree.from_items(base.items())
    block = BlockOverlay(tree)
    tx = TxOverlay(block)
    in_block, in_tx = dict(base), dict(base)
    for action, key, value in steps:
        if action == "write" and value is None:
            tx.delete(key)
            in_tx.pop(key, None)
        elif action == "write":
            tx.set(key, value)
            in_tx[key] = value
        elif action == "commit":
            tx.commit()
            in_block = dict(in_tx)
        assert tx.scan(b"", b"", 100) == model_scan(in_tx, b"", b"", 100)
        assert block.scan(key[:1], b"", 3) == model_scan(in_block, key[:1], b"", 3)
