"""Scheduled calls: a contract asks the chain to call it later; the chain runs the call in
the block where it falls due, metered, with a receipt; it can be cancelled. Also read-only
calls into other contracts."""

from __future__ import annotations

import pytest

from civicledger.chain.proof import verify_receipt_proof
from civicledger.contracts.schedule import MAX_SCHEDULED_PER_BLOCK
from civicledger.errors import ContractError, NotFound
from civicledger.node.node import Node
from civicledger.node.verify import verify_chain
from civicledger.testing import LocalChain

BENEFITS = """
def next_payment(ctx, who, every):
    sid = ctx.schedule(
        "pay", {"who": who, "every": every}, at_height=ctx.height + every, fuel=200_000
    )
    ctx.set("next/" + who.hex(), sid)
    return sid


class Benefits:
    @call
    def enrol(self, ctx, args):
        who = args.address("who")
        every = args.integer("every", minimum=1, maximum=1000)
        ctx.set("amount/" + who.hex(), args.integer("amount", minimum=1, maximum=10**9))
        return next_payment(ctx, who, every)

    @call
    def pay(self, ctx, args):
        ctx.require(ctx.scheduled, "payments are made by the chain", "not_scheduled")
        who = args.address("who")
        every = args.integer("every", minimum=1, maximum=1000)
        paid = ctx.get_int("paid/" + who.hex()) + ctx.get_int("amount/" + who.hex())
        ctx.set("paid/" + who.hex(), paid)
        ctx.emit("Paid", who=who, total=paid)
        next_payment(ctx, who, every)
        return paid

    @call
    def stop(self, ctx, args):
        return ctx.cancel_schedule(ctx.get("next/" + args.address("who").hex()))

    @call
    def later(self, ctx, args):
        return ctx.schedule(
            args.text("method"),
            {},
            at_height=args.integer("at_height", maximum=2**70),
            fuel=args.integer("fuel", minimum=1, maximum=10**8),
        )

    @call
    def at_time(self, ctx, args):
        return ctx.schedule("tick", {}, at_time_ms=ctx.time_ms + args.integer("ms"))

    @call
    def many(self, ctx, args):
        for _ in range(args.integer("n", maximum=16)):
            ctx.schedule("tick", {}, at_height=ctx.height + 1, fuel=10_000)
        return None

    @call
    def tick(self, ctx, args):
        ctx.set("ticks", ctx.get_int("ticks") + 1)
        return ctx.time_ms

    @call
    def spin(self, ctx, args):
        ctx.set("spun", 1)
        while True:
            pass

    @view
    def paid(self, ctx, args):
        return ctx.get_int("paid/" + args.address("who").hex())

    @view
    def ticks(self, ctx, args):
        return ctx.get_int("ticks")
"""

AUDIT = """
class Audit:
    @view
    def paid_twice(self, ctx, args):
        return 2 * ctx.call_view("benefits", "paid", {"who": args.address("who")})

    @view
    def deep(self, ctx, args):
        return ctx.call_view("audit", "deep", {})

    @call
    def cancel_theirs(self, ctx, args):
        return ctx.cancel_schedule(args.blob("id", size=32))
"""


@pytest.fixture
def chain() -> LocalChain:
    chain = LocalChain()
    assert chain.deploy("benefits", BENEFITS).ok
    return chain


def test_a_recurring_payment_runs_every_two_blocks_until_stopped(chain: LocalChain) -> None:
    who = chain.key(7).address
    enrolled = chain.call("benefits", "enrol", {"who": who, "amount": 50, "every": 2})
    assert enrolled.ok, enrolled
    first_id = enrolled.result
    start = chain.height
    assert chain.node.get_scheduled(first_id)["status"] == "waiting"

    assert chain.advance() == []  # due two blocks after enrolment
    (paid,) = chain.advance()
    assert paid.ok and paid.result == 50 and paid.tx_id == first_id
    assert [e.name for e in paid.events] == ["Paid"]
    assert chain.height == start + 2
    ran = chain.node.get_scheduled(first_id)
    assert ran["status"] == "ran" and ran["height"] == start + 2
    assert ran["receipt"]["result"] == 50

    receipts = chain.advance(4)
    assert [r.result for r in receipts] == [100, 150]
    assert chain.query("benefits", "paid", {"who": who}) == 150

    stop = chain.call("benefits", "stop", {"who": who})
    assert stop.ok and stop.result is True
    assert chain.advance(4) == []
    assert chain.query("benefits", "paid", {"who": who}) == 150
    # Nothing is left waiting; cancelling again finds nothing.
    assert chain.call("benefits", "stop", {"who": who}).result is False


def test_only_the_chain_runs_a_scheduled_method_as_scheduled(chain: LocalChain) -> None:
    who = chain.key(7).address
    direct = chain.call("benefits", "pay", {"who": who, "every": 1})
    assert not direct.ok and direct.error_code == "not_scheduled"


def test_a_call_due_by_time_runs_in_the_first_block_at_or_after_it(chain: LocalChain) -> None:
    scheduled = chain.call("benefits", "at_time", {"ms": 2_500})
    assert scheduled.ok, scheduled
    due = chain.node.get_scheduled(scheduled.result)["call"]["due"]["time"]
    assert chain.advance(2) == []  # +1 s, +2 s
    (ran,) = chain.advance()  # +3 s
    assert ran.ok and ran.result >= due and chain.query("benefits", "ticks") == 1


def test_a_failing_scheduled_call_is_rolled_back_and_runs_once(chain: LocalChain) -> None:
    scheduled = chain.call(
        "benefits", "later", {"method": "spin", "at_height": chain.height + 2, "fuel": 50_000}
    )
    assert scheduled.ok, scheduled
    (failed,) = chain.advance(2)
    assert not failed.ok and failed.error_code == "out_of_fuel"
    assert failed.fuel_used == 50_000
    assert chain.node.get_state_value("benefits", "spun") is None
    assert chain.advance(3) == []
    assert chain.node.get_scheduled(scheduled.result)["status"] == "ran"


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        ({"method": "tick", "at_height": 0, "fuel": 1}, "bad_argument", "after the current"),
        ({"method": "tick", "at_height": 2**64, "fuel": 1}, "bad_argument", "after the current"),
        ({"method": "tick", "at_height": 99, "fuel": 10**8}, "bad_argument", "fuel must be"),
        ({"method": "nothing", "at_height": 99, "fuel": 1}, "unknown_method", "nothing"),
    ],
)
def test_bad_schedules_are_refused_and_nothing_is_written(
    chain: LocalChain, args, code, fragment
) -> None:
    receipt = chain.call("benefits", "later", args)
    assert not receipt.ok and receipt.error_code == code and fragment in receipt.error_message
    assert chain.node.state.scan(b"$sys/schedule/", b"", 10) == []


def test_a_block_runs_a_bounded_number_of_due_calls_the_rest_next(chain: LocalChain) -> None:
    # Five transactions in one block schedule 16 calls each, all due at the next height.
    nonce = chain.node.mempool.get_pending_nonce(chain.user.address)
    from civicledger.chain.transaction import make_transaction

    for i in range(5):
        tx = make_transaction(
            chain.user,
            chain_id="civic-test",
            nonce=nonce + i,
            contract="benefits",
            method="many",
            args={"n": 16},
            fuel_limit=10_000_000,
        )
        chain.node.submit(tx.encoded)
    assert [r.ok for r in chain.advance()] == []  # the block with the five transactions
    assert len(chain.advance()) == MAX_SCHEDULED_PER_BLOCK
    assert len(chain.advance()) == 80 - MAX_SCHEDULED_PER_BLOCK
    assert chain.query("benefits", "ticks") == 80


FLOOD = """
class Flood:
    @call
    def start(self, ctx, args):
        for _ in range(16):
            ctx.schedule("again", {}, at_height=ctx.height + 1, fuel=10_000)
        return None

    @call
    def again(self, ctx, args):
        ctx.schedule("again", {}, at_height=ctx.height + 1, fuel=10_000)
        return None
"""


def test_calls_due_by_height_every_block_do_not_starve_those_due_by_time(
    chain: LocalChain,
) -> None:
    # 64 calls that reschedule themselves at the next height fill every block's room.
    assert chain.deploy("flood", FLOOD).ok
    for _ in range(MAX_SCHEDULED_PER_BLOCK // 16):
        assert chain.call("flood", "start", {}).ok
    scheduled = chain.call("benefits", "at_time", {"ms": 500})
    assert scheduled.ok, scheduled
    ran = [rc for rc in chain.advance(3) if rc.tx_id == scheduled.result]
    assert len(ran) == 1 and ran[0].ok, ran
    assert chain.query("benefits", "ticks") == 1


SPREAD = """
class Spread:
    @call
    def start(self, ctx, args):
        return ctx.schedule("fan_out", {}, at_height=ctx.height + 1, fuel=100_000)

    @call
    def fan_out(self, ctx, args):
        for _ in range(2):
            ctx.schedule("fan_out", {}, at_height=ctx.height + 1, fuel=100_000)
        return None
"""


def test_a_scheduled_call_schedules_at_most_one_call(chain: LocalChain) -> None:
    # Otherwise calls that schedule two more each would multiply without any transaction.
    assert chain.deploy("spread", SPREAD).ok
    assert chain.call("spread", "start", {}).ok
    (fanned,) = chain.advance()
    assert not fanned.ok and fanned.error_code == "limit_exceeded", fanned
    assert "scheduled call may schedule at most 1" in fanned.error_message
    assert chain.advance(2) == []


def test_scheduled_calls_verify_prove_and_survive_a_restart(chain: LocalChain) -> None:
    who = chain.key(7).address
    assert chain.call("benefits", "enrol", {"who": who, "amount": 5, "every": 1}).ok
    # A transaction in a block that also runs a scheduled call: its receipt proof holds.
    tick = chain.call(
        "benefits", "later", {"method": "tick", "at_height": chain.height + 5, "fuel": 10_000}
    )
    node = chain.node
    height = node.get_tx_status(tick.tx_id).height
    assert node.get_scheduled_receipts(height), "a payment ran in the same block"
    verify_receipt_proof(node.get_receipt_proof(tick.tx_id))
    chain.advance(6)
    report = verify_chain(node.store, node.genesis, registry=node.registry)
    assert report.ok, report.problem
    # Altering a stored receipt of a scheduled call is caught.
    raw = node.store.get_scheduled_receipts(height)[0]
    altered = raw[:-1] + bytes([raw[-1] ^ 1])
    node.store._db.execute(
        "UPDATE scheduled SET receipt = ? WHERE height = ? AND idx = 0", (altered, height)
    )
    report = verify_chain(node.store, node.genesis, registry=node.registry)
    assert not report.ok and report.failed_height == height
    data_dir, genesis, key = node.data_dir, node.genesis, chain.validator
    node.close()
    from civicledger.errors import CorruptionError

    with pytest.raises(CorruptionError, match=f"block {height}"):
        Node(data_dir, genesis, key)


def test_read_only_calls_into_other_contracts(chain: LocalChain) -> None:
    assert chain.deploy("audit", AUDIT).ok
    who = chain.key(7).address
    assert chain.call("benefits", "enrol", {"who": who, "amount": 21, "every": 1}).ok
    chain.advance()
    assert chain.query("audit", "paid_twice", {"who": who}) == 2 * chain.query(
        "benefits", "paid", {"who": who}
    )
    from civicledger.errors import ContractError

    with pytest.raises(ContractError, match="nest at most"):
        chain.query("audit", "deep")


DEEP = """
def down(ctx, n, level):
    if n > 0:
        return down(ctx, n - 1, level)
    if level < 4:
        return ctx.call_view("deep", "go", {"level": level + 1, "n": 60})
    return level


class Deep:
    @view
    def go(self, ctx, args):
        return down(ctx, args.integer("n"), args.integer("level"))
"""


def test_call_depth_counts_across_read_only_calls_whatever_the_callers_stack(
    chain: LocalChain,
) -> None:
    # Five contract frames of 60 nested calls each: as deep as Python allows, so the outcome
    # would depend on how deep in the node's own stack the executor runs. The depth bound
    # holds across the calls into other contracts instead, the same everywhere.
    assert chain.deploy("deep", DEEP).ok

    def from_depth(frames: int) -> tuple[str, str]:
        if frames:
            return from_depth(frames - 1)
        try:
            return "ok", repr(chain.query("deep", "go", {"n": 60, "level": 0}))
        except ContractError as exc:
            return exc.code, exc.message.rsplit(": ", 1)[-1]

    shallow, deep = from_depth(0), from_depth(400)
    assert shallow == deep == ("limit_exceeded", "calls may nest at most 64 deep"), (shallow, deep)


def test_only_the_scheduling_contract_may_cancel(chain: LocalChain) -> None:
    assert chain.deploy("audit", AUDIT).ok
    scheduled = chain.call(
        "benefits", "later", {"method": "tick", "at_height": chain.height + 9, "fuel": 10_000}
    )
    refused = chain.call("audit", "cancel_theirs", {"id": scheduled.result})
    assert not refused.ok and refused.error_code == "forbidden"
    assert chain.node.get_scheduled(scheduled.result)["status"] == "waiting"
    with pytest.raises(NotFound):
        chain.node.get_scheduled(b"\x00" * 32)


RACE = """
class Race:
    @call
    def setup(self, ctx, args):
        ids = [ctx.schedule("go", {}, at_height=ctx.height + 2) for _ in range(2)]
        ctx.set("ids", ids)
        return ids

    @call
    def go(self, ctx, args):
        ctx.set("runs", ctx.get_int("runs") + 1)
        cancelled = False
        for sid in ctx.get("ids"):
            if sid != ctx.tx_id:
                cancelled = ctx.cancel_schedule(sid)
        return cancelled

    @view
    def runs(self, ctx, args):
        return ctx.get_int("runs")
"""


def test_a_call_cancelled_by_an_earlier_call_of_the_same_block_does_not_run(
    chain: LocalChain,
) -> None:
    # Both calls fall due in one block; whichever runs first cancels the other.
    assert chain.deploy("race", RACE).ok
    ids = chain.call("race", "setup", {}).result
    assert chain.advance() == []
    (ran,) = chain.advance()
    assert ran.ok and ran.result is True
    assert chain.query("race", "runs", {}) == 1
    (cancelled,) = [sid for sid in ids if sid != ran.tx_id]
    with pytest.raises(NotFound):
        chain.node.get_scheduled(cancelled)
    node = chain.node
    assert verify_chain(node.store, node.genesis, registry=node.registry).ok


PERMITS = """
DAY_MS = 86_400_000  # module constants are literals


class Permits:
    @call
    def apply(self, ctx, args):
        permit_id = args.text("id", max_length=64)
        ctx.set("permit/" + permit_id, {"status": "requested"})
        return permit_id

    @call
    def approve(self, ctx, args):
        permit_id = args.text("id", max_length=64)
        key = "permit/" + permit_id
        permit = ctx.get(key)
        permit["status"] = "approved"
        ctx.set(key, permit)
        ctx.schedule("lapse", {"id": permit_id}, at_time_ms=ctx.time_ms + 30 * DAY_MS)
        return "approved"

    @call
    def lapse(self, ctx, args):
        require(ctx.scheduled, "permits lapse on their own", code="permission_denied")
        key = "permit/" + args.text("id", max_length=64)
        permit = ctx.get(key)
        permit["status"] = "lapsed"
        ctx.set(key, permit)
        ctx.emit("PermitLapsed", permit=args.text("id", max_length=64))
        return "lapsed"

    @view
    def get(self, ctx, args):
        return ctx.get("permit/" + args.text("id", max_length=64))

    @view
    def requested(self, ctx, args):
        after = args.text("after", max_length=80, required=False)
        rows = ctx.items("permit/", after=after, limit=50)
        return [key for key, permit in rows if permit["status"] == "requested"]
"""


def test_the_guides_lapsing_permit_and_listing(chain: LocalChain) -> None:
    assert chain.deploy("permits", PERMITS).ok
    for permit in ("P-3", "P-1", "P-2"):
        assert chain.call("permits", "apply", {"id": permit}).ok
    assert chain.call("permits", "approve", {"id": "P-2"}).ok
    assert chain.query("permits", "requested", {}) == ["permit/P-1", "permit/P-3"]
    direct = chain.call("permits", "lapse", {"id": "P-2"})
    assert not direct.ok and direct.error_code == "permission_denied"
    day = 24 * 60 * 60 * 1000
    assert chain.advance(29, ms=day) == []
    (lapsed,) = chain.advance(2, ms=day)
    assert lapsed.ok and lapsed.result == "lapsed"
    assert chain.query("permits", "get", {"id": "P-2"}) == {"status": "lapsed"}


def test_a_block_spends_a_bounded_amount_of_fuel_on_scheduled_calls(chain: LocalChain) -> None:
    from civicledger.contracts.schedule import MAX_SCHEDULED_FUEL, MAX_SCHEDULED_FUEL_PER_BLOCK

    per_block = MAX_SCHEDULED_FUEL_PER_BLOCK // MAX_SCHEDULED_FUEL
    total = per_block + 3
    nonce = chain.node.mempool.get_pending_nonce(chain.user.address)
    from civicledger.chain.transaction import make_transaction

    for i in range(total):
        tx = make_transaction(
            chain.user,
            chain_id="civic-test",
            nonce=nonce + i,
            contract="benefits",
            method="later",
            args={"method": "tick", "at_height": chain.height + 2, "fuel": MAX_SCHEDULED_FUEL},
            fuel_limit=10_000_000,
        )
        chain.node.submit(tx.encoded)
    assert chain.advance() == []
    assert len(chain.advance()) == per_block
    assert len(chain.advance()) == 3
