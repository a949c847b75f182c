"""Node configuration: one TOML file per node, paths relative to the file's folder.

Example (written by ``civic init``)::

    [node]
    name = "node0"
    data_dir = "data"
    genesis = "genesis.json"
    keystore = "keys"
    validator_key = "validator"        # key name in the keystore; omit for a non-validator
    passphrase_file = "passphrase"     # or set CIVIC_PASSPHRASE; omit both to be prompted
    state_history = 1000               # recent heights whose state stays provable
    verify_workers = 0                 # signature-checking processes; 0: one per core

    [api]
    host = "127.0.0.1"
    port = 8545
    max_body_bytes = 262144

    [mempool]
    max_txs = 50000
    max_bytes = 67108864
    max_nonce_gap = 1000

    [p2p]
    host = "127.0.0.1"
    port = 26656
    peers = ["10.0.0.2:26656", "10.0.0.3:26656"]   # host:port of the other nodes

    [consensus]                          # round timeouts (ms); each grows per round
    propose_ms = 3000
    prevote_ms = 1000
    precommit_ms = 1000

A node without ``validator_key`` follows the chain; it authenticates to peers with
``node_key``, which must be on the network's node allowlist.

For fault-injection tests only, a validator can be made to misbehave on purpose
(``node/byzantine.py``; the node warns loudly at start)::

    [byzantine]
    mode = "double-sign"                 # or "double-propose", "invalid-block"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from civicledger.consensus.bft.engine import TimeoutConfig
from civicledger.errors import DecodeError
from civicledger.mempool.pool import MempoolLimits
from civicledger.node.verifier import MAX_WORKERS
from civicledger.p2p.peers import P2PConfig

__all__ = ["BYZANTINE_MODES", "ApiConfig", "NodeConfig", "load_config", "render_config"]

#: Deliberate faults a validator can be configured to commit (``[byzantine] mode``), for
#: fault-injection tests: signing conflicting votes, proposing two blocks in one round,
#: proposing blocks that honest validators must refuse.
BYZANTINE_MODES = ("double-sign", "double-propose", "invalid-block")


@dataclass(frozen=True, slots=True)
class ApiConfig:
    host: str = "127.0.0.1"
    port: int = 8545
    max_body_bytes: int = 256 * 1024


@dataclass(frozen=True, slots=True)
class NodeConfig:
    #: Folder of the configuration file; relative paths are resolved from it.
    home: Path
    name: str = "node"
    data_dir: Path = Path("data")
    genesis: Path = Path("genesis.json")
    keystore: Path = Path("keys")
    validator_key: str | None = None
    #: Key that authenticates this node to peers (default: the validator key).
    node_key: str | None = None
    passphrase_file: Path | None = None
    #: Recent heights whose state can still be proven (``civic state get --height``).
    state_history: int = 1_000
    #: Processes checking transaction signatures (0: one per core).
    verify_workers: int = 0
    api: ApiConfig = field(default_factory=ApiConfig)
    mempool: MempoolLimits = field(default_factory=MempoolLimits)
    p2p: P2PConfig = field(default_factory=P2PConfig)
    timeouts: TimeoutConfig = field(default_factory=TimeoutConfig)
    #: A deliberate fault (one of ``BYZANTINE_MODES``) for fault-injection tests; ``None``
    #: for an honest node, which every real deployment is.
    byzantine: str | None = None

    def __post_init__(self) -> None:
        if self.byzantine is not None and self.byzantine not in BYZANTINE_MODES:
            raise DecodeError(
                f"[byzantine] mode {self.byzantine!r} is unknown; "
                f"use one of {', '.join(BYZANTINE_MODES)}"
            )

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else self.home / path


def _section(obj: dict[str, Any], name: str) -> dict[str, Any]:
    section = obj.get(name, {})
    if not isinstance(section, dict):
        raise DecodeError(f"[{name}] must be a table")
    return section


def _p2p(section: dict[str, Any]) -> P2PConfig:
    peers = section.pop("peers", [])
    if not isinstance(peers, list) or not all(isinstance(p, str) and ":" in p for p in peers):
        raise DecodeError('[p2p] peers must be a list of "host:port" strings')
    return P2PConfig(peers=tuple(peers), **section)


def _byzantine(section: dict[str, Any]) -> str | None:
    if not section:
        return None
    mode = section.pop("mode", None)
    if section:
        raise TypeError(f"[byzantine] knows only mode, not {', '.join(sorted(section))}")
    if not isinstance(mode, str):
        raise DecodeError(f"[byzantine] mode must be one of {', '.join(BYZANTINE_MODES)}")
    return mode


def _state_history(value: object) -> int:
    if type(value) is not int or not 1 <= value <= 10_000_000:
        raise DecodeError("[node] state_history must be a whole number of blocks, 1 to 10000000")
    return value


def _verify_workers(value: object) -> int:
    if type(value) is not int or not 0 <= value <= MAX_WORKERS:
        raise DecodeError(
            f"[node] verify_workers must be a whole number from 0 (one per core) to {MAX_WORKERS}"
        )
    return value


def load_config(path: Path) -> NodeConfig:
    try:
        obj = tomllib.loads(path.read_text())
    except OSError as exc:
        raise DecodeError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DecodeError(f"{path} is not valid TOML: {exc}") from None
    node = _section(obj, "node")
    try:
        passphrase_file = node.get("passphrase_file")
        return NodeConfig(
            home=path.parent.resolve(),
            name=str(node.get("name", "node")),
            data_dir=Path(node.get("data_dir", "data")),
            genesis=Path(node.get("genesis", "genesis.json")),
            keystore=Path(node.get("keystore", "keys")),
            validator_key=node.get("validator_key"),
            node_key=node.get("node_key"),
            passphrase_file=Path(passphrase_file) if passphrase_file else None,
            state_history=_state_history(node.get("state_history", 1_000)),
            verify_workers=_verify_workers(node.get("verify_workers", 0)),
            api=ApiConfig(**_section(obj, "api")),
            mempool=MempoolLimits(**_section(obj, "mempool")),
            p2p=_p2p(_section(obj, "p2p")),
            timeouts=TimeoutConfig(**_section(obj, "consensus")),
            byzantine=_byzantine(_section(obj, "byzantine")),
        )
    except DecodeError as exc:
        raise DecodeError(f"{path}: {exc}") from None
    except TypeError as exc:
        raise DecodeError(f"{path}: unknown or misspelt setting ({exc})") from None


def render_config(config: NodeConfig) -> str:
    lines = [
        "[node]",
        f'name = "{config.name}"',
        f'data_dir = "{config.data_dir}"',
        f'genesis = "{config.genesis}"',
        f'keystore = "{config.keystore}"',
    ]
    if config.validator_key:
        lines.append(f'validator_key = "{config.validator_key}"')
    if config.node_key:
        lines.append(f'node_key = "{config.node_key}"')
    if config.passphrase_file:
        lines.append(f'passphrase_file = "{config.passphrase_file}"')
    lines.append(f"state_history = {config.state_history}")
    if config.verify_workers:
        lines.append(f"verify_workers = {config.verify_workers}")
    lines += [
        "",
        "[api]",
        f'host = "{config.api.host}"',
        f"port = {config.api.port}",
        f"max_body_bytes = {config.api.max_body_bytes}",
        "",
        "[mempool]",
        f"max_txs = {config.mempool.max_txs}",
        f"max_bytes = {config.mempool.max_bytes}",
        f"max_nonce_gap = {config.mempool.max_nonce_gap}",
        "",
        "[p2p]",
        f'host = "{config.p2p.host}"',
        f"port = {config.p2p.port}",
        "peers = [" + ", ".join(f'"{p}"' for p in config.p2p.peers) + "]",
        "",
        "[consensus]",
        f"propose_ms = {config.timeouts.propose_ms}",
        f"propose_delta_ms = {config.timeouts.propose_delta_ms}",
        f"prevote_ms = {config.timeouts.prevote_ms}",
        f"prevote_delta_ms = {config.timeouts.prevote_delta_ms}",
        f"precommit_ms = {config.timeouts.precommit_ms}",
        f"precommit_delta_ms = {config.timeouts.precommit_delta_ms}",
        "",
    ]
    if config.byzantine:
        lines += [
            "[byzantine]                          # fault-injection tests only",
            f'mode = "{config.byzantine}"',
            "",
        ]
    return "\n".join(lines)
