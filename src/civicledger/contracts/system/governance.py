"""Network governance decided on chain: the validator set and the node allowlist.

A validator proposes a change (add a validator, remove one, change its power; allow or
disallow a node key); validators vote; once validators holding more than two thirds of
the current voting power approve, the change is applied:

* a validator-set change takes effect at ``height + 2`` (the block after next), so every
  node knows the signers of a block before it is proposed; the executor promotes it
  (``$sys/validators/next``);
* a node allowlist change takes effect at once (``$sys/nodes``).

A change is refused if it would leave the network unable to reach quorum: no validator
left, or the validators that approved it (the ones known to be live) holding no more
than two thirds of the new set's power. So a one-validator network first raises its own
power, then adds a second validator. Only one validator-set change may be pending at a
time. Proposals expire after
``PROPOSAL_TTL_BLOCKS`` blocks. Everything is kept: proposals, votes and outcome.

State (under ``governance/``): ``next_id`` → int; ``proposal/<id>`` → the proposal record.
"""

from __future__ import annotations

from civicledger.chain.block import Validator, ValidatorSet
from civicledger.contracts.base import Args, Context, Contract, ViewContext, call, view
from civicledger.encoding import Value
from civicledger.errors import ContractError, InvalidBlock
from civicledger.state.system import NEXT_VALIDATORS_KEY, NODES_KEY
from civicledger.types import PublicKey, parse_public_key

__all__ = ["PROPOSAL_TTL_BLOCKS", "Governance"]

PROPOSAL_TTL_BLOCKS = 10_000
ACTIONS = ("add_validator", "remove_validator", "set_power", "allow_node", "disallow_node")
MAX_POWER = 2**32
ACTIVATION_DELAY = 2


def _proposal_key(proposal_id: int) -> str:
    return f"proposal/{proposal_id}"


def _require_validator(ctx: ViewContext, validators: ValidatorSet, sender_key: bytes) -> int:
    power = validators.get_power(sender_key)
    ctx.require(power > 0, "only validators may propose or vote", code="permission_denied")
    return power


def compute_new_set(
    validators: ValidatorSet,
    action: str,
    key: PublicKey,
    power: int,
    approvers: list[bytes] | None = None,
) -> ValidatorSet:
    """The validator set after ``action``; raise ``ContractError`` if it is not allowed."""
    current = {v.public_key: v.power for v in validators.validators}
    if action == "add_validator":
        if key in current:
            raise ContractError("that key is already a validator", code="duplicate")
        current[key] = power
    elif action == "remove_validator":
        if key not in current:
            raise ContractError("that key is not a validator", code="not_found")
        del current[key]
    elif action == "set_power":
        if key not in current:
            raise ContractError("that key is not a validator", code="not_found")
        current[key] = power
    if not current:
        raise ContractError("the change would leave no validator", code="no_quorum")
    if approvers is not None:
        new_total = sum(current.values())
        live = sum(current.get(PublicKey(k), 0) for k in approvers)
        # The validators known to be live (they approved) must reach the new quorum alone.
        if 3 * live <= 2 * new_total:
            raise ContractError(
                f"after the change the approving validators would hold {live} of "
                f"{new_total} voting power, not more than two thirds: the network could "
                "not reach quorum",
                code="no_quorum",
            )
    try:
        return ValidatorSet.of([Validator(k, p) for k, p in current.items()])
    except InvalidBlock as exc:
        raise ContractError(exc.message) from None


class Governance(Contract):
    name = "governance"

    @call
    def propose(self, ctx: Context, args: Args) -> Value:
        """Propose a change; the proposer's approval is counted at once. Returns the
        proposal's ``id`` and ``status`` (``open``, or ``applied`` if that was enough)."""
        action = args.text("action", max_length=32)
        ctx.require(
            action in ACTIONS, f"action must be one of {', '.join(ACTIONS)}", code="bad_argument"
        )
        key = parse_public_key(args.blob("public_key", size=32))
        power = 0
        if action in ("add_validator", "set_power"):
            power = args.integer("power", minimum=1, maximum=MAX_POWER)
        reason = args.text("reason", max_length=500, required=False)
        args.check_no_extra()
        validators = ctx.get_validators()
        _require_validator(ctx, validators, ctx.sender_key)
        if action not in ("allow_node", "disallow_node"):
            compute_new_set(validators, action, key, power)  # refuse early if not allowed
        proposal_id = ctx.get_int("next_id") + 1
        ctx.set("next_id", proposal_id)
        ctx.set(
            _proposal_key(proposal_id),
            {
                "id": proposal_id,
                "action": action,
                "public_key": key,
                "power": power,
                "reason": reason,
                "proposer": ctx.sender,
                "created_at": ctx.height,
                "expires_at": ctx.height + PROPOSAL_TTL_BLOCKS,
                "approvals": [],
                "status": "open",
                "effective_at": None,
            },
        )
        ctx.emit("ProposalCreated", id=proposal_id, action=action, public_key=key, power=power)
        status = self._vote(ctx, proposal_id, validators)
        return {"id": proposal_id, "status": status}

    @call
    def approve(self, ctx: Context, args: Args) -> Value:
        """Approve an open proposal (validators only)."""
        proposal_id = args.integer("id", minimum=1, maximum=2**63 - 1)
        args.check_no_extra()
        validators = ctx.get_validators()
        _require_validator(ctx, validators, ctx.sender_key)
        return self._vote(ctx, proposal_id, validators)

    def _vote(self, ctx: Context, proposal_id: int, validators: ValidatorSet) -> Value:
        record = ctx.get(_proposal_key(proposal_id))
        if not isinstance(record, dict):
            raise ContractError(f"no proposal {proposal_id}", code="not_found")
        ctx.require(record["status"] == "open", f"proposal {proposal_id} is {record['status']!s}")
        expires_at = record["expires_at"]
        assert isinstance(expires_at, int)
        if ctx.height > expires_at:
            raise ContractError(f"proposal {proposal_id} expired at {expires_at}", code="expired")
        approvals = record["approvals"]
        assert isinstance(approvals, list)
        ctx.require(ctx.sender_key not in approvals, "you already approved it", code="duplicate")
        approvals = sorted([*approvals, bytes(ctx.sender_key)])  # type: ignore[type-var]
        record = {**record, "approvals": approvals}
        ctx.emit("ProposalApproved", id=proposal_id, by=ctx.sender)
        if validators.has_supermajority(approvals):
            record = self._apply(ctx, record, validators)
        ctx.set(_proposal_key(proposal_id), record)
        return record["status"]

    def _apply(
        self, ctx: Context, record: dict[str, Value], validators: ValidatorSet
    ) -> dict[str, Value]:
        action = record["action"]
        key = record["public_key"]
        power = record["power"]
        assert isinstance(action, str) and isinstance(key, bytes) and isinstance(power, int)
        if action in ("allow_node", "disallow_node"):
            nodes = ctx.get_system(NODES_KEY) or []
            assert isinstance(nodes, list)
            allowed = {k for k in nodes if isinstance(k, bytes)}
            if action == "allow_node":
                allowed.add(key)
            else:
                allowed.discard(key)
            ctx.set_system(NODES_KEY, sorted(allowed))  # type: ignore[arg-type]
            effective = ctx.height + 1
        else:
            ctx.require(
                ctx.get_system(NEXT_VALIDATORS_KEY) is None,
                "another validator-set change is still pending",
                code="pending_change",
            )
            approvers = [k for k in record["approvals"] if isinstance(k, bytes)]  # type: ignore[union-attr]
            new_set = compute_new_set(validators, action, PublicKey(key), power, approvers)
            effective = ctx.height + ACTIVATION_DELAY
            ctx.set_system(NEXT_VALIDATORS_KEY, [effective, new_set.to_value()])
        ctx.emit("ProposalApplied", id=record["id"], effective_at=effective)
        return {**record, "status": "applied", "effective_at": effective}

    @view
    def get(self, ctx: ViewContext, args: Args) -> Value:
        """A proposal with its approvals and outcome."""
        proposal_id = args.integer("id", minimum=1, maximum=2**63 - 1)
        args.check_no_extra()
        record = ctx.get(_proposal_key(proposal_id))
        if record is None:
            raise ContractError(f"no proposal {proposal_id}", code="not_found")
        return record

    @view
    def list(self, ctx: ViewContext, args: Args) -> Value:
        """The most recent proposals, newest first (at most 100)."""
        args.check_no_extra()
        last = ctx.get_int("next_id")
        return [ctx.get(_proposal_key(i)) for i in range(last, max(0, last - 100), -1)]
