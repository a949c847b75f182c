"""Chaos scenarios as data: the TOML manifest and its validation.

A manifest describes one run: the network (validators and their powers, extra node
processes), the load, a timeline of faults, and the outcome expected from each checker.
Every field is checked once, here; an error names the field (``fault[2].duration_s``)
and what was expected. A commented example::

    name = "partition-minority"
    description = "one validator cut off for 8 s, then healed"
    duration_s = 20              # length of the fault timeline
    seed = 7                     # drives the load and the proxies' random choices

    [network]
    validators = 4
    powers = [1, 1, 1, 1]        # optional, default 1 each
    block_interval_ms = 200

    [[node]]                     # optional per-node settings
    index = 4                    # an extra process (index >= validators) ...
    key_of = 2                   # ... that runs validator 2's key
    # byzantine = "double-sign"  # or "double-propose", "invalid-block"

    [load]
    kind = "bank"                # transfers among a fixed set of accounts
    accounts = 8
    rate = 20                    # transactions per second
    duration_s = 20              # default: the whole timeline

    [[fault]]
    kind = "partition"
    start_s = 4
    duration_s = 8               # omitted: until the end of the run (never healed)
    groups = [[0, 1, 2], [3]]

    [expect]
    liveness = true              # every checker must pass unless listed as false
    # fork = true                # shorthand for agreement = false
    # ignore = ["liveness"]      # checkers whose outcome does not matter here
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from civicledger.errors import LedgerError
from civicledger.node.config import BYZANTINE_MODES

__all__ = [
    "BYZANTINE_MODES",
    "CHECKERS",
    "FAULT_KINDS",
    "Expectation",
    "Fault",
    "LoadSpec",
    "Manifest",
    "ManifestError",
    "NodeSpec",
    "load_manifest",
    "parse_manifest",
]

#: Every checker, in the order the report lists them.
CHECKERS = (
    "agreement",
    "validity",
    "durability",
    "state",
    "liveness",
    "no_equivocation",
    "evidence",
)
#: Network faults act on the proxied links; process faults on one node's process.
NETWORK_FAULTS = ("partition", "delay", "drop", "duplicate")
PROCESS_FAULTS = ("kill", "pause", "restart", "clock_skew", "disk_full", "wal_damage")
FAULT_KINDS = NETWORK_FAULTS + PROCESS_FAULTS
WAL_DAMAGE = ("truncate", "corrupt", "header", "page")


class ManifestError(LedgerError):
    """A chaos manifest is missing a field or has a wrong value."""

    code = "bad_manifest"


@dataclass(frozen=True, slots=True)
class NodeSpec:
    #: Position of the node process; ``0 .. validators - 1`` hold their own key.
    index: int
    #: Validator whose key this process runs (itself for a normal validator).
    key_of: int
    #: Byzantine behaviour written to the node's ``[byzantine]`` section, or ``None``.
    byzantine: str | None = None


@dataclass(frozen=True, slots=True)
class LoadSpec:
    kind: str = "bank"
    accounts: int = 8
    rate: float = 20.0
    #: Seconds from the start; ``None`` for the whole timeline.
    duration_s: float | None = None


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    start_s: float
    #: ``None``: never healed during the run.
    duration_s: float | None
    #: Nodes the fault applies to (process faults: exactly one; link faults: links touching
    #: any of them, or every link when empty).
    nodes: tuple[int, ...] = ()
    groups: tuple[tuple[int, ...], ...] = ()
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    probability: float = 0.0
    skew_s: float = 0.0
    damage: str = "truncate"

    @property
    def end_s(self) -> float | None:
        return None if self.duration_s is None else self.start_s + self.duration_s


@dataclass(frozen=True, slots=True)
class Expectation:
    #: Checker name -> whether it must pass (True) or must fail (False).
    outcomes: dict[str, bool] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()

    def expects(self, checker: str) -> bool | None:
        """True: must pass; False: must fail; None: either is fine."""
        if checker in self.ignore:
            return None
        return self.outcomes.get(checker, True)


@dataclass(frozen=True, slots=True)
class Manifest:
    name: str
    description: str
    duration_s: float
    seed: int
    validators: int
    powers: tuple[int, ...]
    nodes: tuple[NodeSpec, ...]
    block_interval_ms: int
    load: LoadSpec
    faults: tuple[Fault, ...]
    expect: Expectation
    path: Path | None = None

    @property
    def honest(self) -> tuple[int, ...]:
        """Node indexes that run no byzantine behaviour."""
        return tuple(n.index for n in self.nodes if n.byzantine is None)

    @property
    def byzantine_keys(self) -> tuple[int, ...]:
        return tuple(sorted({n.key_of for n in self.nodes if n.byzantine is not None}))


class _Reader:
    """Typed access to one TOML table; errors name the field's full path."""

    def __init__(self, table: Any, where: str) -> None:
        if not isinstance(table, dict):
            raise ManifestError(f"{where or 'manifest'} must be a table")
        self.table: dict[str, Any] = table
        self.where = where
        self.used: set[str] = set()

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.table.get(key, default)

    def number(
        self, key: str, default: float | None = None, *, low: float = 0.0, high: float = 1e9
    ) -> float:
        value = self.get(key, default)
        if value is None:
            raise ManifestError(f"{self.path(key)} is required")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ManifestError(f"{self.path(key)} must be a number, not {value!r}")
        if not low <= value <= high:
            raise ManifestError(f"{self.path(key)} must be between {low:g} and {high:g}")
        return float(value)

    def optional_number(self, key: str, *, low: float = 0.0, high: float = 1e9) -> float | None:
        return None if self.table.get(key) is None else self.number(key, low=low, high=high)

    def integer(self, key: str, default: int | None = None, *, low: int = 0, high: int) -> int:
        value = self.get(key, default)
        if value is None:
            raise ManifestError(f"{self.path(key)} is required")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ManifestError(f"{self.path(key)} must be an integer, not {value!r}")
        if not low <= value <= high:
            raise ManifestError(f"{self.path(key)} must be between {low} and {high}")
        return value

    def string(self, key: str, default: str | None = None, *, choices: tuple[str, ...] = ()) -> str:
        value = self.get(key, default)
        if not isinstance(value, str):
            raise ManifestError(f"{self.path(key)} must be a string")
        if choices and value not in choices:
            raise ManifestError(f"{self.path(key)} must be one of {', '.join(choices)}")
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise ManifestError(f"unknown field {self.path(unknown[0])}")


def _node_list(reader: _Reader, key: str, count: int) -> tuple[int, ...]:
    value = reader.get(key, [])
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in value
    ):
        raise ManifestError(f"{reader.path(key)} must be a list of node indexes")
    for i in value:
        if not 0 <= i < count:
            raise ManifestError(f"{reader.path(key)} names node {i}; nodes are 0..{count - 1}")
    if len(set(value)) != len(value):
        raise ManifestError(f"{reader.path(key)} names a node twice")
    return tuple(value)


def _parse_fault(table: Any, where: str, count: int, duration: float) -> Fault:
    r = _Reader(table, where)
    kind = r.string("kind", choices=FAULT_KINDS)
    start = r.number("start_s", low=0.0, high=duration)
    length = r.optional_number("duration_s", low=0.0, high=1e6)
    if length is not None and start + length > duration:
        raise ManifestError(
            f"{r.path('duration_s')}: the fault ends after the run ({duration:g} s)"
        )
    fault = Fault(kind=kind, start_s=start, duration_s=length)
    if kind == "partition":
        raw = r.get("groups")
        if not isinstance(raw, list) or len(raw) < 2:
            raise ManifestError(f"{r.path('groups')} must list at least two groups of nodes")
        groups = []
        for g, group in enumerate(raw):
            if not isinstance(group, list) or not group:
                raise ManifestError(f"{r.path('groups')}[{g}] must be a non-empty list")
            groups.append(
                _node_list(_Reader({"group": group}, r.path(f"groups[{g}]")), "group", count)
            )
        flat = [i for g in groups for i in g]
        if sorted(flat) != list(range(count)):
            raise ManifestError(
                f"{r.path('groups')} must place every node (0..{count - 1}) in exactly one group"
            )
        fault = Fault(kind, start, length, groups=tuple(groups))
    elif kind in NETWORK_FAULTS:
        nodes = _node_list(r, "nodes", count)
        if kind == "delay":
            delay = r.number("delay_ms", low=0.0, high=60_000.0)
            jitter = r.number("jitter_ms", 0.0, low=0.0, high=60_000.0)
            fault = Fault(kind, start, length, nodes=nodes, delay_ms=delay, jitter_ms=jitter)
        else:
            p = r.number("probability", low=0.0, high=1.0)
            fault = Fault(kind, start, length, nodes=nodes, probability=p)
    else:
        node = r.integer("node", low=0, high=count - 1)
        skew = (
            r.number("skew_s", 0.0, low=-86_400.0, high=86_400.0) if kind == "clock_skew" else 0.0
        )
        damage = r.string("damage", "truncate", choices=WAL_DAMAGE) if kind == "wal_damage" else ""
        if kind in ("pause", "clock_skew", "disk_full") and length is None:
            raise ManifestError(f"{r.path('duration_s')} is required for a {kind} fault")
        fault = Fault(kind, start, length, nodes=(node,), skew_s=skew, damage=damage or "truncate")
    r.finish()
    return fault


def parse_manifest(obj: Any, *, path: Path | None = None) -> Manifest:
    """Check a parsed TOML document and build the manifest; raises ``ManifestError``."""
    r = _Reader(obj, "")
    name = r.string("name")
    description = r.string("description", "")
    duration = r.number("duration_s", low=1.0, high=3600.0)
    seed = r.integer("seed", 1, low=0, high=2**63)

    net = _Reader(r.get("network", {}), "network")
    validators = net.integer("validators", low=1, high=16)
    raw_powers = net.get("powers", [1] * validators)
    if (
        not isinstance(raw_powers, list)
        or len(raw_powers) != validators
        or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 1 for p in raw_powers)
    ):
        raise ManifestError(f"network.powers must list {validators} positive integers")
    interval = net.integer("block_interval_ms", 200, low=10, high=10_000)
    net.finish()

    specs: dict[int, NodeSpec] = {i: NodeSpec(i, i) for i in range(validators)}
    raw_nodes = r.get("node", [])
    if not isinstance(raw_nodes, list):
        raise ManifestError("node must be an array of tables ([[node]])")
    for k, table in enumerate(raw_nodes):
        n = _Reader(table, f"node[{k}]")
        index = n.integer("index", low=0, high=31)
        default_key = index if index < validators else None
        key_of = n.get("key_of", default_key)
        if isinstance(key_of, bool) or not isinstance(key_of, int) or not 0 <= key_of < validators:
            raise ManifestError(
                f"{n.path('key_of')} must name a validator 0..{validators - 1}"
                + (" (required for an extra node)" if default_key is None else "")
            )
        if index < validators and key_of != index:
            raise ManifestError(f"{n.path('key_of')}: validator {index} runs its own key")
        byz = n.get("byzantine")
        if byz is not None and byz not in BYZANTINE_MODES:
            raise ManifestError(
                f"{n.path('byzantine')} must be one of {', '.join(BYZANTINE_MODES)}"
            )
        n.finish()
        if index >= validators and index in specs:
            raise ManifestError(f"{n.path('index')}: node {index} is described twice")
        specs[index] = NodeSpec(index, key_of, byz)
    count = len(specs)
    if sorted(specs) != list(range(count)):
        raise ManifestError(f"node indexes must run 0..{count - 1} without gaps")
    nodes = tuple(specs[i] for i in range(count))

    ld = _Reader(r.get("load", {}), "load")
    load = LoadSpec(
        kind=ld.string("kind", "bank", choices=("bank", "none")),
        accounts=ld.integer("accounts", 8, low=2, high=1000),
        rate=ld.number("rate", 20.0, low=0.0, high=5000.0),
        duration_s=ld.optional_number("duration_s", low=0.0, high=duration),
    )
    ld.finish()

    raw_faults = r.get("fault", [])
    if not isinstance(raw_faults, list):
        raise ManifestError("fault must be an array of tables ([[fault]])")
    faults = tuple(
        _parse_fault(t, f"fault[{k}]", count, duration) for k, t in enumerate(raw_faults)
    )

    ex = _Reader(r.get("expect", {}), "expect")
    outcomes: dict[str, bool] = {}
    for key in list(ex.table):
        if key == "ignore":
            continue
        target = "agreement" if key == "fork" else key
        if target not in CHECKERS:
            raise ManifestError(f"expect.{key} is not a checker ({', '.join(CHECKERS)}, fork)")
        value = ex.get(key)
        if not isinstance(value, bool):
            raise ManifestError(f"expect.{key} must be true or false")
        outcomes[target] = (not value) if key == "fork" else value
    ignore = ex.get("ignore", [])
    if not isinstance(ignore, list) or not all(i in CHECKERS for i in ignore):
        raise ManifestError(f"expect.ignore must list checkers ({', '.join(CHECKERS)})")
    ex.finish()
    r.finish()
    return Manifest(
        name=name,
        description=description,
        duration_s=duration,
        seed=seed,
        validators=validators,
        powers=tuple(raw_powers),
        nodes=nodes,
        block_interval_ms=interval,
        load=load,
        faults=faults,
        expect=Expectation(outcomes, tuple(ignore)),
        path=path,
    )


def load_manifest(path: Path) -> Manifest:
    try:
        obj = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ManifestError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path} is not valid TOML: {exc}") from None
    try:
        return parse_manifest(obj, path=path)
    except ManifestError as exc:
        raise ManifestError(f"{path.name}: {exc.message}") from None
