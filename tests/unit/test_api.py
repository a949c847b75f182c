"""The HTTP API over a real node, through FastAPI's test client (no server, no sleeps).

Blocks are produced by calling ``node.produce_block`` directly. Every refusal is checked
for its HTTP status *and* its ``{"error": {"code", "message"}}`` body, and for leaving
the node as it was.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from civicledger.api.app import MAX_BODY_BYTES, create_app
from civicledger.chain.genesis import Genesis
from civicledger.chain.proof import ReceiptProof, verify_receipt_proof
from civicledger.chain.transaction import MAX_TX_SIZE, Transaction
from civicledger.crypto.keys import KeyPair
from civicledger.encoding import encode
from civicledger.mempool.pool import MempoolLimits
from civicledger.node.node import RECENT_BLOCK_IDS, Node

Sign = Callable[..., Transaction]
NOW_MS = 1_750_000_000_000


@pytest.fixture
def client(node: Node) -> Iterator[TestClient]:
    with TestClient(create_app(node)) as c:
        yield c


@pytest.fixture
def mint(sign: Sign, alice: KeyPair, bob: KeyPair) -> Callable[..., Transaction]:
    def make(nonce: int, amount: int = 1, key: KeyPair = alice, **kw: Any) -> Transaction:
        return sign(key, nonce, "accounts", "mint", {"to": bob.address, "amount": amount}, **kw)

    return make


def submit(client: TestClient, tx: Transaction | bytes) -> httpx.Response:
    raw = tx if isinstance(tx, bytes) else tx.encoded
    response: httpx.Response = client.post("/v1/transactions", json={"tx": raw.hex()})
    return response


def produce(node: Node, now_ms: int = NOW_MS) -> int:
    block = node.produce_block(now_ms + node.head.height)
    assert block is not None
    return block.header.height


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message"}, body
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"]
    return error


@contextmanager
def nothing_stored(client: TestClient, node: Node) -> Iterator[None]:
    """The block below must leave the chain and the mempool as they were, and the node up."""
    before = (node.head, len(node.mempool), node.mempool.size_bytes, node.store.count_txs())
    yield
    assert (node.head, len(node.mempool), node.mempool.size_bytes, node.store.count_txs()) == (
        before
    )
    health = client.get("/v1/health")
    assert health.status_code == 200
    assert health.json() == {"ok": True, "height": before[0].height}


# --- submitting and reading transactions ---------------------------------------------


def test_submit_json_then_read_pending_then_committed(
    client: TestClient, node: Node, mint: Callable[..., Transaction]
) -> None:
    tx = mint(0, amount=5)
    response = submit(client, tx)
    assert response.status_code == 202
    assert response.json() == {"tx_id": tx.tx_id.hex(), "status": "pending"}
    pending = client.get(f"/v1/transactions/{tx.tx_id.hex()}").json()
    assert pending["status"] == "pending"
    assert (pending["height"], pending["index"], pending["receipt"]) == (None, None, None)
    assert pending["transaction"] == tx.to_json()
    produce(node)
    committed = client.get(f"/v1/transactions/{tx.tx_id.hex()}")
    assert committed.status_code == 200
    body = committed.json()
    assert (body["status"], body["height"], body["index"]) == ("committed", 1, 0)
    assert body["receipt"]["status"] == "ok"
    assert body["receipt"]["result"] == 5
    assert body["receipt"]["events"][0]["name"] == "Minted"
    assert body["receipt"]["events"][0]["data"]["amount"] == 5


def test_submit_octet_stream(
    client: TestClient, node: Node, mint: Callable[..., Transaction]
) -> None:
    tx = mint(0)
    response = client.post(
        "/v1/transactions",
        content=tx.encoded,
        headers={"content-type": "application/octet-stream"},
    )
    assert response.status_code == 202
    assert response.json()["tx_id"] == tx.tx_id.hex()
    assert tx.tx_id in node.mempool


def test_submit_a_batch_admits_each_or_says_why_not(
    client: TestClient, node: Node, mint: Callable[..., Transaction]
) -> None:
    a0, a1 = mint(0), mint(1)
    forged = encode([*mint(2).body_value(), bytes(64)])
    batch = [a0.encoded, b"\x07", forged, a1.encoded, a0.encoded]
    response = client.post(
        "/v1/txs", content=encode(batch), headers={"content-type": "application/octet-stream"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 2
    results = body["results"]
    assert [r["status"] for r in results] == ["pending", "refused", "refused", "pending", "refused"]
    assert [results[i]["tx_id"] for i in (0, 3)] == [a0.tx_id.hex(), a1.tx_id.hex()]
    assert [
        (r["error"]["code"], r["http_status"]) for r in (results[1], results[2], results[4])
    ] == [
        ("malformed", 400),
        ("invalid_signature", 422),
        ("duplicate", 409),
    ]
    assert len(node.mempool) == 2
    # The same as JSON; and a body that is no list of transactions is refused whole.
    a2 = mint(2)
    response = client.post("/v1/txs", json={"txs": [a2.encoded.hex()]})
    assert response.json() == {
        "accepted": 1,
        "results": [{"status": "pending", "tx_id": a2.tx_id.hex()}],
    }
    with nothing_stored(client, node):
        for content, content_type in (
            (encode([1, 2]), "application/octet-stream"),
            (encode([b""] * 1_001), "application/octet-stream"),
            (b'{"txs": ["zz"]}', "application/json"),
            (b'{"tx": "00"}', "application/json"),
        ):
            response = client.post(
                "/v1/txs", content=content, headers={"content-type": content_type}
            )
            assert_error(response, 400, "malformed")


def test_submit_hex_with_0x_prefix_and_upper_case(
    client: TestClient, node: Node, mint: Callable[..., Transaction]
) -> None:
    first, second = mint(0), mint(1)
    response = client.post("/v1/transactions", json={"tx": "0x" + first.encoded.hex()})
    assert response.status_code == 202
    assert (
        client.post("/v1/transactions", json={"tx": second.encoded.hex().upper()}).status_code
        == 202
    )
    assert len(node.mempool) == 2


def test_insufficient_funds_is_a_committed_failed_receipt(
    client: TestClient, node: Node, sign: Sign, bob: KeyPair, alice: KeyPair
) -> None:
    tx = sign(bob, 0, "accounts", "transfer", {"to": alice.address, "amount": 1})
    assert submit(client, tx).status_code == 202
    produce(node)
    body = client.get(f"/v1/transactions/{tx.tx_id.hex()}").json()
    assert body["status"] == "committed"
    receipt = body["receipt"]
    assert (receipt["status"], receipt["error_code"]) == ("failed", "insufficient_funds")
    assert receipt["events"] == [] and receipt["result"] is None
    account = client.get(f"/v1/accounts/{bob.address.hex()}").json()
    assert (account["nonce"], account["balance"]) == (1, 0)


def test_wait_for_a_committed_transaction(
    client: TestClient, node: Node, mint: Callable[..., Transaction]
) -> None:
    tx = mint(0)
    submit(client, tx)
    produce(node)
    response = client.get(f"/v1/transactions/{tx.tx_id.hex()}/wait")
    assert response.status_code == 200
    assert response.json()["status"] == "committed"
    assert response.json()["receipt"]["status"] == "ok"


def test_wait_for_an_unknown_transaction(client: TestClient, node: Node) -> None:
    with nothing_stored(client, node):
        response = client.get(f"/v1/transactions/{'ab' * 32}/wait")
        assert_error(response, 404, "not_found")


def test_wait_for_a_pending_transaction_times_out(
    client: TestClient, node: Node, mint: Callable[..., Transaction]
) -> None:
    # Nothing produces blocks here, so the outcome does not depend on timing.
    tx = mint(0)
    submit(client, tx)
    response = client.get(f"/v1/transactions/{tx.tx_id.hex()}/wait", params={"timeout": 0.001})
    assert_error(response, 408, "timeout")
    assert tx.tx_id in node.mempool


@pytest.mark.parametrize("timeout", ["0", "-1", "61", "soon"])
def test_wait_with_a_bad_timeout(client: TestClient, node: Node, timeout: str) -> None:
    with nothing_stored(client, node):
        response = client.get(f"/v1/transactions/{'ab' * 32}/wait", params={"timeout": timeout})
        assert_error(response, 400, "bad_request")


def test_proof_endpoint(
    client: TestClient, node: Node, mint: Callable[..., Transaction], genesis: Genesis
) -> None:
    txs = [mint(n) for n in range(3)]
    for tx in txs:
        submit(client, tx)
    pending = client.get(f"/v1/transactions/{txs[1].tx_id.hex()}/proof")
    assert_error(pending, 404, "not_found")
    produce(node)
    response = client.get(f"/v1/transactions/{txs[1].tx_id.hex()}/proof")
    assert response.status_code == 200
    saved = response.json()
    assert (saved["tx_id"], saved["height"], saved["status"]) == (txs[1].tx_id.hex(), 1, "ok")
    proof = ReceiptProof.from_json(saved)
    assert proof.transaction == txs[1]
    verify_receipt_proof(proof, trusted_validators=genesis.validators)


# --- blocks ---------------------------------------------------------------------------


def test_blocks_by_height_hash_and_head(
    client: TestClient, node: Node, mint: Callable[..., Transaction]
) -> None:
    submit(client, mint(0))
    submit(client, mint(1))
    produce(node)
    genesis_block = client.get("/v1/blocks/0").json()
    assert genesis_block["header"]["height"] == 0
    assert (genesis_block["tx_count"], genesis_block["commit"]) == (0, None)
    block = client.get("/v1/blocks/1", params={"txs": "true"}).json()
    assert block["header"]["prev_hash"] == genesis_block["header"]["hash"]
    assert block["tx_count"] == 2
    assert [t["nonce"] for t in block["transactions"]] == [0, 1]
    assert all(t["receipt"]["status"] == "ok" for t in block["transactions"])
    assert len(block["commit"]["signatures"]) == 1
    assert "transactions" not in client.get("/v1/blocks/1").json()
    head = client.get("/v1/blocks/head").json()
    assert head["header"] == block["header"] == node.head.to_json()
    by_hash = client.get(f"/v1/blocks/hash/{node.head.hash.hex()}").json()
    assert by_hash["header"] == block["header"]


def test_block_list_and_its_bounds(client: TestClient, node: Node) -> None:
    for _ in range(4):
        produce(node)
    newest = client.get("/v1/blocks").json()
    assert newest["head"] == 4
    assert [b["height"] for b in newest["blocks"]] == [4, 3, 2, 1, 0]
    limited = client.get("/v1/blocks", params={"limit": 2}).json()
    assert [b["height"] for b in limited["blocks"]] == [4, 3]
    window = client.get("/v1/blocks", params={"start": 1, "limit": 2}).json()
    assert [b["height"] for b in window["blocks"]] == [1, 2]
    tail = client.get("/v1/blocks", params={"start": 3, "limit": 100}).json()
    assert [b["height"] for b in tail["blocks"]] == [3, 4]
    beyond = client.get("/v1/blocks", params={"start": 10**30}).json()
    assert beyond["blocks"] == []


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": -1}, {"start": -1}, {"start": "x"}, {"limit": "1.5"}],
)
def test_block_list_bad_bounds(client: TestClient, node: Node, params: dict[str, Any]) -> None:
    with nothing_stored(client, node):
        assert_error(client.get("/v1/blocks", params=params), 400, "bad_request")


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/blocks/-1", 404, "not_found"),
        ("/v1/blocks/1", 404, "not_found"),
        ("/v1/blocks/9223372036854775807", 404, "not_found"),
        ("/v1/blocks/one", 400, "bad_request"),
        ("/v1/blocks/1.5", 400, "bad_request"),
        ("/v1/blocks/hash/abcd", 400, "malformed"),
        (f"/v1/blocks/hash/{'00' * 33}", 400, "malformed"),
        (f"/v1/blocks/hash/{'zz' * 32}", 400, "malformed"),
        (f"/v1/blocks/hash/{'00' * 32}", 404, "not_found"),
        ("/v1/transactions/abcd", 400, "malformed"),
        (f"/v1/transactions/{'ab' * 31}", 400, "malformed"),
        (f"/v1/transactions/{'ab' * 33}", 400, "malformed"),
        (f"/v1/transactions/{'zz' * 32}", 400, "malformed"),
        (f"/v1/transactions/{'ab' * 32}", 404, "not_found"),
        ("/v1/transactions/abcd/wait", 400, "malformed"),
        ("/v1/transactions/abcd/proof", 400, "malformed"),
        (f"/v1/transactions/{'ab' * 32}/proof", 404, "not_found"),
        ("/v1/accounts/abcd", 400, "malformed"),
        (f"/v1/accounts/{'11' * 21}", 400, "malformed"),
        (f"/v1/accounts/{'11' * 19}", 400, "malformed"),
        (f"/v1/accounts/{'xy' * 20}", 400, "malformed"),
        ("/v1/state/accounts/nope", 404, "not_found"),
        ("/v1/state/nosuch/supply", 404, "not_found"),
    ],
)
def test_bad_reads(client: TestClient, node: Node, path: str, status: int, code: str) -> None:
    with nothing_stored(client, node):
        assert_error(client.get(path), status, code)


@pytest.mark.parametrize("height", ["9223372036854775808", "1" + "0" * 30])
def test_huge_heights_are_refused_cleanly(node: Node, height: str) -> None:
    with TestClient(create_app(node), raise_server_exceptions=False) as client:
        response = client.get(f"/v1/blocks/{height}")
        assert response.status_code in (400, 404)
        assert response.json()["error"]["code"] in ("bad_request", "not_found")


# --- accounts, contracts, queries, state -----------------------------------------------


def test_account(
    client: TestClient, node: Node, mint: Callable[..., Transaction], alice: KeyPair, bob: KeyPair
) -> None:
    submit(client, mint(0, amount=7))
    produce(node)
    submit(client, mint(1))
    submit(client, mint(2))
    account = client.get(f"/v1/accounts/{alice.address.hex()}").json()
    assert account == {
        "address": alice.address.hex(),
        "nonce": 1,
        "pending_nonce": 3,
        "balance": 0,
    }
    assert client.get(f"/v1/accounts/0x{bob.address.hex().upper()}").json()["balance"] == 7


def test_contracts_list(client: TestClient) -> None:
    contracts = {c["name"]: c for c in client.get("/v1/contracts").json()["contracts"]}
    assert set(contracts) == {
        "accounts",
        "contracts",
        "documents",
        "evidence",
        "governance",
        "organisations",
    }
    assert contracts["accounts"]["calls"] == [
        "burn",
        "grant_issuer",
        "mint",
        "revoke_issuer",
        "transfer",
    ]
    assert contracts["accounts"]["views"] == ["balance", "is_issuer", "supply"]
    assert contracts["documents"]["calls"] == ["register", "revoke", "update"]
    assert contracts["documents"]["views"] == ["get", "history", "lookup"]


def test_query(client: TestClient, node: Node, sign: Sign, alice: KeyPair) -> None:
    digest = hashlib.sha256(b"decree").digest()
    args = {"id": "decree-9", "sha256": digest, "title": "Decree 9"}
    submit(client, sign(alice, 0, "documents", "register", args))
    produce(node)
    response = client.post(
        "/v1/query",
        json={
            "contract": "documents",
            "method": "lookup",
            "args": {"sha256": {"$bytes": digest.hex()}},
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["height"] == 1
    assert body["result"]["registered"] is True
    assert body["result"]["id"] == "decree-9" and body["result"]["current"] is True
    assert body["result"]["latest_sha256"] == {"$bytes": digest.hex()}
    issuer = client.post(
        "/v1/query",
        json={
            "contract": "accounts",
            "method": "is_issuer",
            "args": {"address": {"$bytes": alice.address.hex()}},
        },
    )
    assert issuer.json() == {"height": 1, "result": True}
    supply = client.post("/v1/query", json={"contract": "accounts", "method": "supply"})
    assert supply.json() == {"height": 1, "result": 0}


def test_state(client: TestClient, alice: KeyPair) -> None:
    response = client.get(f"/v1/state/accounts/issuer/{alice.address.hex()}")
    assert response.status_code == 200
    assert response.json() == {
        "height": 0,
        "contract": "accounts",
        "key": f"issuer/{alice.address.hex()}",
        "raw": encode(True).hex(),
        "value": True,
    }


# --- the node itself ---------------------------------------------------------------------


def test_status_health_genesis_validators(
    client: TestClient, node: Node, genesis: Genesis, validator_key: KeyPair, alice: KeyPair
) -> None:
    produce(node)
    assert client.get("/v1/health").json() == {"ok": True, "height": 1}
    status = client.get("/v1/status").json()
    assert status["chain_id"] == genesis.chain_id
    assert status["genesis_hash"] == node.get_header(0).hash.hex()
    assert status["head"] == {
        "height": 1,
        "hash": node.head.hash.hex(),
        "time_ms": node.head.time_ms,
    }
    assert status["mempool"] == {"size": 0, "bytes": 0}
    assert status["validator"] == validator_key.address.hex()
    assert status["validators"] == 1
    assert client.get("/v1/genesis").json() == genesis.to_json()
    assert client.get("/v1/genesis").json()["issuers"] == [alice.address.hex()]
    validators = client.get("/v1/validators").json()
    assert validators["hash"] == genesis.validators.hash.hex()
    assert validators["validators"] == [
        {
            "address": validator_key.address.hex(),
            "public_key": validator_key.public_key.hex(),
            "power": 1,
        }
    ]


def test_openapi_document(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "Civic Ledger node API"
    for path in (
        "/v1/transactions",
        "/v1/transactions/{tx_id}",
        "/v1/transactions/{tx_id}/wait",
        "/v1/transactions/{tx_id}/proof",
        "/v1/blocks",
        "/v1/blocks/{height}",
        "/v1/blocks/hash/{block_hash}",
        "/v1/accounts/{address}",
        "/v1/query",
        "/v1/status",
    ):
        assert path in document["paths"], path


# --- refused submissions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"", "application/json"),
        (b"\xff\xfe\xfa", "application/json"),
        (b'["tx"]', "application/json"),
        (b'{"tx": 5}', "application/json"),
        (b'{"transaction": "00"}', "application/json"),
        (b'{"tx": "not hex"}', "application/json"),
        (b'{"tx": "abc"}', "application/json"),
        (b'{"tx": ""}', "application/json"),
        (b"", "application/octet-stream"),
        (b"\xff\x00 garbage \x07\x07", "application/octet-stream"),
        (encode([1, 2, 3]), "application/octet-stream"),
        (encode("a string"), "application/octet-stream"),
    ],
)
def test_malformed_submissions(
    client: TestClient, node: Node, body: bytes, content_type: str
) -> None:
    with nothing_stored(client, node):
        response = client.post(
            "/v1/transactions", content=body, headers={"content-type": content_type}
        )
        assert_error(response, 400, "malformed")


def test_truncated_transaction(
    client: TestClient, node: Node, mint: Callable[..., Transaction]
) -> None:
    raw = mint(0).encoded
    with nothing_stored(client, node):
        for cut in (1, 10, len(raw) // 2, len(raw) - 1):
            assert_error(submit(client, raw[:cut]), 400, "malformed")
        assert_error(submit(client, raw + b"\x00"), 400, "malformed")


def test_transaction_over_the_size_limit(
    client: TestClient, node: Node, sign: Sign, alice: KeyPair
) -> None:
    raw = b"\x07" + bytes(MAX_TX_SIZE)
    assert 2 * len(raw) < MAX_BODY_BYTES
    with nothing_stored(client, node):
        assert_error(submit(client, raw), 413, "too_large")
        big_args = sign(alice, 0, "documents", "register", {"blob": bytes(50_000)})
        assert_error(submit(client, big_args), 413, "too_large")


def test_oversized_body_with_content_length(client: TestClient, node: Node) -> None:
    with nothing_stored(client, node):
        response = client.post(
            "/v1/transactions",
            content=b"0" * (MAX_BODY_BYTES + 1),
            headers={"content-type": "application/octet-stream"},
        )
        assert_error(response, 413, "body_too_large")
        response = client.post(
            "/v1/query",
            content=b" " * (MAX_BODY_BYTES + 1),
            headers={"content-type": "application/json"},
        )
        assert_error(response, 413, "body_too_large")


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A request body with no Content-Length: sent in chunks."""
    while total > 0:
        yield b"0" * min(size, total)
        total -= size


@pytest.mark.parametrize("content_type", ["application/octet-stream", "application/json"])
def test_oversized_streamed_body(client: TestClient, node: Node, content_type: str) -> None:
    with nothing_stored(client, node):
        response = client.post(
            "/v1/transactions",
            content=chunks(MAX_BODY_BYTES + 1),
            headers={"content-type": content_type},
        )
        assert "content-length" not in response.request.headers
        assert_error(response, 413, "body_too_large")


def test_body_at_the_limit_is_read(client: TestClient, node: Node) -> None:
    with nothing_stored(client, node):
        response = client.post(
            "/v1/transactions",
            content=chunks(MAX_BODY_BYTES),
            headers={"content-type": "application/octet-stream"},
        )
        # Read in full, then refused for what it is, not for its size.
        assert_error(response, 413, "too_large")
    small = TestClient(create_app(node, max_body_bytes=100))
    with nothing_stored(small, node):
        assert_error(small.post("/v1/transactions", content=b"0" * 101), 413, "body_too_large")
        assert_error(small.post("/v1/transactions", content=b"0" * 100), 400, "malformed")


def test_oversized_streamed_query(client: TestClient, node: Node) -> None:
    with nothing_stored(client, node):
        response = client.post(
            "/v1/query",
            content=chunks(MAX_BODY_BYTES + 1),
            headers={"content-type": "application/json"},
        )
        assert_error(response, 413, "body_too_large")


def test_wrong_chain_id(client: TestClient, node: Node, mint: Callable[..., Transaction]) -> None:
    with nothing_stored(client, node):
        assert_error(submit(client, mint(0, chain_id="other-net")), 422, "wrong_chain_id")


def test_bad_signature(
    client: TestClient, node: Node, mint: Callable[..., Transaction], bob: KeyPair
) -> None:
    tx = mint(0)
    other = mint(0, amount=99)
    with nothing_stored(client, node):
        for signature in (bytes(64), other.signature, bob.sign(tx.signing_bytes)):
            raw = encode([*tx.body_value(), signature])
            assert_error(submit(client, raw), 422, "invalid_signature")


def test_bad_names(client: TestClient, node: Node, mint: Callable[..., Transaction]) -> None:
    body = mint(0).body_value()
    with nothing_stored(client, node):
        for index, name, code in ((3, "bad name!", "bad_contract"), (4, "_credit", "bad_method")):
            value = list(body)
            value[index] = name
            raw = encode([*value, bytes(64)])
            assert_error(submit(client, raw), 422, code)


def test_duplicate_and_replayed_nonces(
    client: TestClient, node: Node, mint: Callable[..., Transaction]
) -> None:
    tx = mint(0)
    assert submit(client, tx).status_code == 202
    with nothing_stored(client, node):
        assert_error(submit(client, tx), 409, "duplicate")
        assert_error(submit(client, mint(0, amount=2)), 409, "nonce_taken")
    produce(node)
    with nothing_stored(client, node):
        assert_error(submit(client, tx), 409, "nonce_too_low")
        assert_error(submit(client, mint(0, amount=3)), 409, "nonce_too_low")


def test_nonce_gap(client: TestClient, node: Node, mint: Callable[..., Transaction]) -> None:
    with nothing_stored(client, node):
        assert_error(submit(client, mint(5_000)), 422, "nonce_gap")


def test_expired(client: TestClient, node: Node, mint: Callable[..., Transaction]) -> None:
    produce(node)
    produce(node)
    with nothing_stored(client, node):
        assert_error(submit(client, mint(0, expiry=2)), 422, "expired")
    assert submit(client, mint(0, expiry=3)).status_code == 202


def test_unknown_contract_and_method(
    client: TestClient, node: Node, sign: Sign, alice: KeyPair
) -> None:
    with nothing_stored(client, node):
        assert_error(submit(client, sign(alice, 0, "nosuch", "mint")), 422, "unknown_contract")
        assert_error(submit(client, sign(alice, 0, "accounts", "fly")), 422, "unknown_method")
        assert_error(submit(client, sign(alice, 0, "accounts", "balance")), 422, "unknown_method")


def test_mempool_full(
    tmp_path: Path, genesis: Genesis, validator_key: KeyPair, mint: Callable[..., Transaction]
) -> None:
    node = Node(tmp_path / "full", genesis, validator_key, mempool_limits=MempoolLimits(max_txs=1))
    try:
        with TestClient(create_app(node)) as client:
            assert submit(client, mint(0)).status_code == 202
            with nothing_stored(client, node):
                assert_error(submit(client, mint(1)), 503, "mempool_full")
            produce(node)
            assert submit(client, mint(1)).status_code == 202
    finally:
        node.close()


# --- refused queries ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"contract": "accounts", "method": "balance", "args": {"address": 1.5}}, 400, "malformed"),
        ({"contract": "accounts", "method": "supply", "args": {"x": [0.0]}}, 400, "malformed"),
        ({"contract": "accounts", "method": "balance", "args": {"a": 2**300}}, 400, "malformed"),
        (
            {"contract": "accounts", "method": "balance", "args": {"address": {"$bytes": "zz"}}},
            400,
            "malformed",
        ),
        ({"contract": "accounts", "method": "balance", "args": {}}, 422, "bad_argument"),
        (
            {"contract": "accounts", "method": "balance", "args": {"address": "alice"}},
            422,
            "bad_argument",
        ),
        ({"contract": "nosuch", "method": "balance"}, 422, "unknown_contract"),
        ({"contract": "accounts", "method": "mint"}, 422, "unknown_method"),
        ({"contract": "accounts", "method": "_credit"}, 422, "unknown_method"),
        ({"contract": "documents", "method": "get", "args": {"id": "nope"}}, 404, "not_found"),
        ({"contract": "documents", "method": "get", "args": {"id": "a/b"}}, 422, "bad_argument"),
        ({"method": "balance"}, 400, "bad_request"),
        ({"contract": "accounts", "method": "balance", "args": [1]}, 400, "bad_request"),
        ({"contract": "a" * 65, "method": "balance"}, 400, "bad_request"),
    ],
)
def test_bad_queries(
    client: TestClient, node: Node, body: dict[str, Any], status: int, code: str
) -> None:
    with nothing_stored(client, node):
        assert_error(client.post("/v1/query", json=body), status, code)


def test_query_that_is_not_json(client: TestClient, node: Node) -> None:
    with nothing_stored(client, node):
        response = client.post(
            "/v1/query", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert_error(response, 400, "bad_request")


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/nope"), ("DELETE", "/v1/query")])
def test_unknown_routes_use_the_error_envelope(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code in (404, 405)
    assert set(response.json()) == {"error"}


def test_the_node_still_serves_after_all_that(
    client: TestClient, node: Node, mint: Callable[..., Transaction]
) -> None:
    with nothing_stored(client, node):
        submit(client, b"\x00")
        client.post("/v1/transactions", content=chunks(MAX_BODY_BYTES + 1))
        client.post("/v1/query", json={"contract": "accounts", "method": "x", "args": {"a": 1.0}})
        client.get("/v1/blocks/-5")
    tx = mint(0)
    assert submit(client, tx).status_code == 202
    assert produce(node) == 1
    assert client.get(f"/v1/transactions/{tx.tx_id.hex()}").json()["status"] == "committed"


def test_state_proof_endpoint(client: TestClient, node, sign, alice) -> None:
    from civicledger.state.bundle import StateProofBundle, verify_state_bundle

    node.submit(sign(alice, 0, "accounts", "mint", {"to": alice.address, "amount": 3}).encoded)
    node.produce_block(node.head.time_ms + 1_000)
    response = client.get(
        "/v1/state-proof",
        params={"contract": "accounts", "key": f"balance/{alice.address.hex()}"},
    )
    assert response.status_code == 200
    verify_state_bundle(StateProofBundle.from_json(response.json()))
    missing = client.get("/v1/state-proof", params={"contract": "accounts"})
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "bad_request"


def test_events_stream_with_filters(client: TestClient, node, sign, alice) -> None:
    with client.websocket_connect("/v1/events?contract=accounts&name=Minted") as stream:
        node.submit(sign(alice, 0, "accounts", "mint", {"to": alice.address, "amount": 4}).encoded)
        node.submit(
            sign(
                alice,
                1,
                "documents",
                "register",
                {"id": "d", "sha256": b"\x01" * 32, "title": "t"},
            ).encoded
        )
        node.submit(sign(alice, 2, "accounts", "mint", {"to": alice.address, "amount": 5}).encoded)
        node.produce_block(node.head.time_ms + 1_000)
        first = stream.receive_json()
        second = stream.receive_json()
    assert (first["name"], first["data"]["amount"]) == ("Minted", 4)
    assert (second["name"], second["data"]["amount"]) == ("Minted", 5)
    assert first["height"] == second["height"] == node.head.height


def test_an_events_client_that_hangs_up_frees_its_slot(client: TestClient) -> None:
    import time

    subscribers = client.app.state.subscribers
    with client.websocket_connect("/v1/events"):
        deadline = time.monotonic() + 5
        while not subscribers and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(subscribers) == 1
    deadline = time.monotonic() + 5
    while subscribers and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not subscribers


def test_block_ids_are_served_checked_without_decoding(
    client: TestClient, node: Node, mint: Callable[..., Transaction]
) -> None:
    for nonce in range(3):
        submit(client, mint(nonce))
    produce(node)
    height = node.head.height
    ids = client.get(f"/v1/blocks/{height}", params={"tx_ids": "true"}).json()["tx_ids"]
    full = client.get(f"/v1/blocks/{height}", params={"txs": "true"}).json()["transactions"]
    assert len(ids) == 3 and ids == [tx["tx_id"] for tx in full]
    # A stored transaction altered on disk: the ids are refused, as the full block is,
    # once the block is no longer among the newest (those are answered from memory, as
    # they were committed).
    row = node.store.get_block_txs(height)[1]
    node.store._db.execute(
        "UPDATE txs SET raw = ? WHERE tx_id = ?",
        (row.raw[:-1] + bytes([row.raw[-1] ^ 1]), row.tx_id),
    )
    assert client.get(f"/v1/blocks/{height}", params={"tx_ids": "true"}).json()["tx_ids"] == ids
    for _ in range(RECENT_BLOCK_IDS):
        produce(node)
    assert_error(client.get(f"/v1/blocks/{height}", params={"tx_ids": "true"}), 500, "corrupted")
    assert_error(client.get(f"/v1/blocks/{height}", params={"txs": "true"}), 500, "corrupted")
