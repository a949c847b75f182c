"""A raw test peer sends a real node everything a broken or hostile peer might.

Each bad input is dropped or answered, counted in a metric, and the node keeps
committing blocks and serving its API.
"""

from __future__ import annotations

import asyncio
import struct

import httpx
import pytest

from civicledger.chain.transaction import make_transaction
from civicledger.consensus.bft.messages import PREVOTE, Vote
from civicledger.contracts.sandbox import CONTRACT_RUNTIME as RUNTIME
from civicledger.crypto.keys import KeyPair
from civicledger.encoding import decode, encode
from civicledger.node.localnet import LOCALNET_CHAIN_ID
from civicledger.p2p.secure import MAGIC, SecureConnection, handshake
from tests.e2e.harness import LocalNetwork, NodeProcess, wait_until

pytestmark = pytest.mark.slow

PEER = KeyPair.from_seed(b"p" * 32)  # on the genesis node allowlist
STRANGER = KeyPair.from_seed(b"s" * 32)  # not on it
SENDER = KeyPair.from_seed(b"q" * 32)


def _metric(node: NodeProcess, name: str) -> float:
    text = httpx.get(f"{node.url}/v1/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(f"civic_{name}"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _genesis_hash(node: NodeProcess) -> bytes:
    return bytes.fromhex(node.status()["genesis_hash"])


async def _connect(
    node: NodeProcess, key: KeyPair, hello: dict
) -> tuple[SecureConnection, asyncio.StreamReader]:
    reader, writer = await asyncio.open_connection("127.0.0.1", node.p2p_port)
    OPEN.append(writer)
    conn = await asyncio.wait_for(
        handshake(reader, writer, key, hello, max_frame=1 << 20), timeout=5
    )
    return conn, reader


OPEN: list[asyncio.StreamWriter] = []


async def _closed(reader: asyncio.StreamReader, timeout: float = 10) -> bool:
    """True once the node has closed the connection (ours is closed then too)."""
    try:
        while True:
            if not await asyncio.wait_for(reader.read(65536), timeout):
                return True
    except (TimeoutError, ConnectionError):
        return False
    finally:
        for writer in OPEN:
            writer.close()
        OPEN.clear()


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    network = LocalNetwork(
        tmp_path_factory.mktemp("p2p"),
        funded=[SENDER],
        allowed_nodes=(PEER.public_key,),
        empty_block_interval_ms=8_000,
    )
    network.start()
    yield network
    network.stop()


def _still_healthy(net: LocalNetwork) -> None:
    """The node still admits a transaction and commits it in a new block."""
    node = net.nodes[0]
    height = node.height()
    nonce = int(httpx.get(f"{node.url}/v1/accounts/{SENDER.address.hex()}").json()["pending_nonce"])
    tx = make_transaction(
        SENDER,
        chain_id=LOCALNET_CHAIN_ID,
        nonce=nonce,
        contract="accounts",
        method="transfer",
        args={"to": SENDER.address, "amount": 1},
    )
    response = httpx.post(
        f"{node.url}/v1/transactions",
        content=tx.encoded,
        headers={"content-type": "application/octet-stream"},
    )
    assert response.status_code == 202, response.text
    wait_until(lambda: node.height() > height, timeout=30, what="the node to keep committing")


def test_garbage_and_stalled_handshakes_are_dropped(net):
    node = net.nodes[0]
    before = _metric(node, "p2p_rejected_total")

    async def scenario() -> None:
        # Not our protocol at all.
        reader, writer = await asyncio.open_connection("127.0.0.1", node.p2p_port)
        OPEN.append(writer)
        writer.write(b"GET / HTTP/1.1\r\n\r\n" + b"\x00" * 64)
        await writer.drain()
        assert await _closed(reader)
        # Our magic, then silence: the handshake times out.
        reader, writer = await asyncio.open_connection("127.0.0.1", node.p2p_port)
        OPEN.append(writer)
        writer.write(MAGIC)
        await writer.drain()
        assert await _closed(reader, timeout=15)

    asyncio.run(scenario())
    wait_until(lambda: _metric(node, "p2p_rejected_total") >= before + 2, timeout=10)
    _still_healthy(net)


def test_peers_off_the_allowlist_or_on_another_chain_are_refused(net):
    node = net.nodes[0]
    genesis_hash = _genesis_hash(node)

    async def scenario() -> None:
        good_hello = {
            "chain_id": LOCALNET_CHAIN_ID,
            "genesis_hash": genesis_hash,
            "contract_runtime": RUNTIME,
        }
        for key, changes in (
            (STRANGER, {}),
            (PEER, {"chain_id": "other-chain"}),
            (PEER, {"genesis_hash": b"\x00" * 32}),
            (PEER, {"contract_runtime": "cpython-2.7"}),
        ):
            _, reader = await _connect(node, key, {**good_hello, **changes})
            assert await _closed(reader)

    before = _metric(node, "p2p_rejected_total")
    asyncio.run(scenario())
    wait_until(lambda: _metric(node, "p2p_rejected_total") >= before + 4, timeout=10)
    _still_healthy(net)


def test_bad_messages_from_an_allowed_peer(net):
    node = net.nodes[0]
    genesis_hash = _genesis_hash(node)
    hello = {
        "chain_id": LOCALNET_CHAIN_ID,
        "genesis_hash": genesis_hash,
        "contract_runtime": RUNTIME,
    }

    async def scenario() -> None:
        conn, reader = await _connect(node, PEER, hello)
        # Malformed payloads and unknown message types are counted, the link stays up.
        await conn.send(b"\xff\xfe not an encoding")
        await conn.send(encode(["no_such_type", 1]))
        await conn.send(encode(["vote", [1, 2, 3]]))
        await conn.send(encode(["get_blocks", [1, 10**9]]))  # a huge range: one batch
        blocks = None
        for _ in range(50):
            message = decode(await asyncio.wait_for(conn.receive(), 10))
            if message[0] == "blocks":
                blocks = message[1]
                break
        assert blocks is not None and 1 <= len(blocks) <= 64
        # A vote from a non-validator, for a height far ahead, duplicated many times.
        far = Vote.sign(PEER, LOCALNET_CHAIN_ID, PREVOTE, 10**6, 0, b"\x11" * 32)
        for _ in range(200):
            await conn.send(encode(["vote", far.to_value()]))
        current = node.height() + 1
        stranger_vote = Vote.sign(PEER, LOCALNET_CHAIN_ID, PREVOTE, current, 0, b"\x22" * 32)
        for _ in range(200):
            await conn.send(encode(["vote", stranger_vote.to_value()]))
        # A forged signature gets the peer disconnected.
        current = node.height() + 1
        forged = Vote(PREVOTE, current, 0, b"\x33" * 32, node_key_of(node), b"\x00" * 64)
        await conn.send(encode(["vote", forged.to_value()]))
        assert await _closed(reader)

        # A frame announcing more than the limit is refused before it is read.
        conn, reader = await _connect(node, PEER, hello)
        conn.writer.write(struct.pack(">I", 2**31))
        await conn.writer.drain()
        assert await _closed(reader)

        # A frame that fails authentication (flipped ciphertext) drops the link.
        conn, reader = await _connect(node, PEER, hello)
        conn.writer.write(struct.pack(">I", 32) + b"\x00" * 32)
        await conn.writer.drain()
        assert await _closed(reader)

    bad_before = _metric(node, "p2p_bad_messages_total")
    asyncio.run(scenario())
    wait_until(lambda: _metric(node, "p2p_bad_messages_total") >= bad_before + 3, timeout=10)
    assert _metric(node, "consensus_bad_signatures_total") >= 1
    _still_healthy(net)


def test_bad_gossip_sync_and_evidence_from_an_allowed_peer(net):
    """The message types beyond votes: malformed gossip, status and proposals are counted
    and the link stays up; a block that does not decode, served as if for sync, and
    false evidence get the peer dropped."""
    node = net.nodes[0]
    hello = {
        "chain_id": LOCALNET_CHAIN_ID,
        "genesis_hash": _genesis_hash(node),
        "contract_runtime": RUNTIME,
    }

    async def scenario() -> None:
        conn, reader = await _connect(node, PEER, hello)
        await conn.send(encode(["txs", "not a list"]))
        await conn.send(encode(["txs", [b"\x00 not a transaction"]]))
        await conn.send(encode(["status", "nope"]))
        await conn.send(encode(["proposal", [1, 2, 3]]))
        # Still connected: the node answers what follows them on the same link.
        await conn.send(encode(["get_blocks", [1, 1]]))
        for _ in range(50):
            if decode(await asyncio.wait_for(conn.receive(), 10))[0] == "blocks":
                break
        else:
            raise AssertionError("no answer to get_blocks after the malformed messages")
        await conn.send(encode(["blocks", [[b"\x01 not a block", b"\x02"]]]))
        assert await _closed(reader)

        # The same vote twice is not evidence of anything.
        conn, reader = await _connect(node, PEER, hello)
        vote = Vote.sign(PEER, LOCALNET_CHAIN_ID, PREVOTE, 5, 0, b"\x44" * 32).to_value()
        await conn.send(encode(["evidence", [vote, vote]]))
        assert await _closed(reader)

    bad_before = _metric(node, "p2p_bad_messages_total")
    sync_before = _metric(node, "sync_bad_blocks_total")
    asyncio.run(scenario())
    # txs, status, proposal, evidence; the undecodable gossiped transaction is refused
    # by the mempool.
    wait_until(lambda: _metric(node, "p2p_bad_messages_total") >= bad_before + 4, timeout=10)
    assert _metric(node, "sync_bad_blocks_total") >= sync_before + 1
    assert _metric(node, "mempool_gossip_rejected_total") >= 1
    _still_healthy(net)


def node_key_of(node: NodeProcess) -> bytes:
    validators = httpx.get(f"{node.url}/v1/validators", timeout=5).json()["validators"]
    return bytes.fromhex(validators[0]["public_key"])
