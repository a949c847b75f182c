"""Black-box invariant checks run after a chaos scenario.

The runner gathers what each node stored (block hashes, state roots, commit signers,
transaction ids, the result of ``civic verify``, balances, recorded evidence) and what the
clients saw (transactions acknowledged as committed, heights over time) into
``Observations``. Each checker is a pure function of them returning pass, fail (with the
first violation found) or not applicable; the unit tests feed them hand-made failing
inputs, so every checker is shown to fail.

*Honest* nodes are those the scenario does not make byzantine and that are running at the
end; a node killed for good is faulty (it counts towards ``f``) and is not checked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "CHECKS",
    "BlockRecord",
    "CheckResult",
    "LivenessRecord",
    "NodeRecord",
    "Observations",
    "check_agreement",
    "check_durability",
    "check_evidence",
    "check_liveness",
    "check_no_equivocation",
    "check_state",
    "check_validity",
    "run_checks",
]

#: Liveness bounds once the network is healed (issue 5): progress, then catch-up.
PROGRESS_BOUND_S = 30.0
CATCH_UP_BOUND_S = 60.0


@dataclass(frozen=True, slots=True)
class BlockRecord:
    height: int
    hash: bytes
    state_root: bytes
    #: Round of the commit certificate and the validator keys that signed it.
    commit_round: int = 0
    signers: tuple[bytes, ...] = ()
    tx_ids: tuple[bytes, ...] = ()


@dataclass(slots=True)
class NodeRecord:
    index: int
    honest: bool
    blocks: list[BlockRecord] = field(default_factory=list)
    #: ``civic verify`` on the node's database: ``None`` if intact, else the first problem.
    verify_problem: str | None = None
    #: Sum of the workload accounts' balances at the node's head (``None``: not read).
    supply: int | None = None
    #: Validator keys named by evidence records in the node's state.
    evidence_against: tuple[bytes, ...] = ()

    @property
    def height(self) -> int:
        return self.blocks[-1].height if self.blocks else -1


@dataclass(frozen=True, slots=True)
class LivenessRecord:
    #: Seconds after healing until the first new block (``None``: none came in time).
    progress_s: float | None
    #: Seconds after healing until every honest node reached the leader (``None``: never).
    catch_up_s: float | None
    #: Why liveness cannot be judged (e.g. more than f faulty), or ``""``.
    not_applicable: str = ""


@dataclass(slots=True)
class Observations:
    nodes: list[NodeRecord]
    #: Transaction id -> height at which a node reported it committed to a client.
    acknowledged: dict[bytes, int] = field(default_factory=dict)
    #: Total balance of the workload accounts at genesis (``None``: no bank workload).
    expected_supply: int | None = None
    liveness: LivenessRecord = field(default_factory=lambda: LivenessRecord(0.0, 0.0))
    #: Validator keys run by byzantine nodes in a mode that signs conflicting votes or
    #: proposals.
    double_signers: tuple[bytes, ...] = ()
    #: Validator keys run only by honest processes.
    honest_keys: tuple[bytes, ...] = ()

    @property
    def honest(self) -> list[NodeRecord]:
        return [n for n in self.nodes if n.honest]


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    #: ``True`` pass, ``False`` fail, ``None`` not applicable to this scenario.
    passed: bool | None
    reason: str

    @property
    def label(self) -> str:
        return {True: "pass", False: "FAIL", None: "n/a"}[self.passed]


def _short(value: bytes) -> str:
    return value.hex()[:12]


def check_agreement(obs: Observations) -> CheckResult:
    """The same block hash at every height on every honest node."""
    seen: dict[int, tuple[bytes, int]] = {}
    for node in obs.honest:
        for block in node.blocks:
            first = seen.setdefault(block.height, (block.hash, node.index))
            if first[0] != block.hash:
                return CheckResult(
                    "agreement",
                    False,
                    f"fork at height {block.height}: node{first[1]} has {_short(first[0])}, "
                    f"node{node.index} has {_short(block.hash)}",
                )
    top = max(seen, default=-1)
    return CheckResult("agreement", True, f"{len(obs.honest)} nodes agree on heights 0..{top}")


def check_validity(obs: Observations) -> CheckResult:
    """Every honest node's chain verifies: links, certificates, re-execution (``civic verify``)."""
    for node in obs.honest:
        if node.verify_problem is not None:
            return CheckResult("validity", False, f"node{node.index}: {node.verify_problem}")
    return CheckResult("validity", True, f"civic verify passes on {len(obs.honest)} nodes")


def check_durability(obs: Observations) -> CheckResult:
    """Every transaction acknowledged as committed is on every honest node, exactly once."""
    if not obs.acknowledged:
        return CheckResult("durability", None, "no transaction was acknowledged")
    for node in obs.honest:
        counts = Counter(tx for block in node.blocks for tx in block.tx_ids)
        duplicated = [tx for tx, n in counts.items() if n > 1]
        if duplicated:
            return CheckResult(
                "durability",
                False,
                f"node{node.index} holds transaction {_short(duplicated[0])} "
                f"{counts[duplicated[0]]} times",
            )
        missing = [tx for tx in obs.acknowledged if counts[tx] == 0]
        if missing:
            return CheckResult(
                "durability",
                False,
                f"node{node.index} lacks {len(missing)} acknowledged transactions "
                f"(e.g. {_short(missing[0])}, acknowledged at height "
                f"{obs.acknowledged[missing[0]]}; node head {node.height})",
            )
    return CheckResult(
        "durability",
        True,
        f"{len(obs.acknowledged)} acknowledged transactions on {len(obs.honest)} nodes, once each",
    )


def check_state(obs: Observations) -> CheckResult:
    """Equal state roots at equal heights; the bank workload keeps its total supply."""
    roots: dict[int, tuple[bytes, int]] = {}
    for node in obs.honest:
        for block in node.blocks:
            first = roots.setdefault(block.height, (block.state_root, node.index))
            if first[0] != block.state_root:
                return CheckResult(
                    "state",
                    False,
                    f"state roots differ at height {block.height}: node{first[1]} "
                    f"{_short(first[0])}, node{node.index} {_short(block.state_root)}",
                )
    if obs.expected_supply is not None:
        for node in obs.honest:
            if node.supply is not None and node.supply != obs.expected_supply:
                return CheckResult(
                    "state",
                    False,
                    f"node{node.index}: total supply {node.supply}, expected {obs.expected_supply}",
                )
    supply = "" if obs.expected_supply is None else f"; supply {obs.expected_supply} kept"
    return CheckResult("state", True, f"state roots equal at every height{supply}")


def check_liveness(obs: Observations) -> CheckResult:
    """With at most f faulty and the network healed: progress in 30 s, catch-up in 60 s."""
    live = obs.liveness
    if live.not_applicable:
        return CheckResult("liveness", None, live.not_applicable)
    if live.progress_s is None or live.progress_s > PROGRESS_BOUND_S:
        return CheckResult(
            "liveness", False, f"no new block within {PROGRESS_BOUND_S:g} s of healing"
        )
    if live.catch_up_s is None or live.catch_up_s > CATCH_UP_BOUND_S:
        return CheckResult(
            "liveness", False, f"laggards not caught up within {CATCH_UP_BOUND_S:g} s of healing"
        )
    return CheckResult(
        "liveness",
        True,
        f"progress after {live.progress_s:.1f} s, all caught up after {live.catch_up_s:.1f} s",
    )


def check_no_equivocation(obs: Observations) -> CheckResult:
    """No honest validator signed two different blocks at one height."""
    honest = set(obs.honest_keys)
    signed: dict[tuple[bytes, int], tuple[bytes, int]] = {}
    for node in obs.nodes:
        for key in node.evidence_against:
            if key in honest:
                return CheckResult(
                    "no_equivocation",
                    False,
                    f"node{node.index} records evidence against honest validator {_short(key)}",
                )
        for block in node.blocks:
            for key in block.signers:
                if key not in honest:
                    continue
                first = signed.setdefault((key, block.height), (block.hash, node.index))
                if first[0] != block.hash:
                    return CheckResult(
                        "no_equivocation",
                        False,
                        f"validator {_short(key)} signed two blocks at height {block.height} "
                        f"({_short(first[0])} on node{first[1]}, {_short(block.hash)} "
                        f"on node{node.index})",
                    )
    return CheckResult("no_equivocation", True, f"{len(honest)} honest validators signed once")


def check_evidence(obs: Observations) -> CheckResult:
    """Evidence against every double-signing or double-proposing validator is recorded on
    every honest node."""
    if not obs.double_signers:
        return CheckResult("evidence", None, "no equivocating validator in this scenario")
    for node in obs.honest:
        for key in obs.double_signers:
            if key not in node.evidence_against:
                return CheckResult(
                    "evidence",
                    False,
                    f"node{node.index} has no evidence against {_short(key)}",
                )
    return CheckResult(
        "evidence",
        True,
        f"evidence against {len(obs.double_signers)} validator(s) on every honest node",
    )


CHECKS: dict[str, Callable[[Observations], CheckResult]] = {
    "agreement": check_agreement,
    "validity": check_validity,
    "durability": check_durability,
    "state": check_state,
    "liveness": check_liveness,
    "no_equivocation": check_no_equivocation,
    "evidence": check_evidence,
}


def run_checks(obs: Observations) -> list[CheckResult]:
    return [check(obs) for check in CHECKS.values()]
