"""The node's HTTP API (FastAPI; the OpenAPI document is served at ``/openapi.json``).

All handlers run on the node's event loop, so node state is never touched from two
threads. Ledger errors become HTTP responses in ``api.errors`` only. Request bodies are
capped by ``BodyLimitMiddleware``; header sizes by the HTTP server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Path, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from civicledger import __version__
from civicledger.api import models
from civicledger.api.errors import error_response, http_status_of, ledger_error_handler
from civicledger.api.models import error_responses
from civicledger.encoding import decode
from civicledger.errors import DecodeError, LedgerError, NotFound
from civicledger.jsonvalue import json_to_value, value_to_json
from civicledger.metrics import Metrics
from civicledger.node.node import Node
from civicledger.types import Hash32, parse_hex

__all__ = ["MAX_BODY_BYTES", "create_app"]

#: Largest request body accepted (a transaction is at most 64 KiB, hex doubles it).
MAX_BODY_BYTES = 256 * 1024
#: Most concurrent ``wait`` requests.
MAX_WAITERS = 10_000
MAX_WAIT_SECONDS = 60.0
MAX_BLOCK_LIST = 100
MAX_HEIGHT = 2**63 - 1
#: Most event streams at once, and most undelivered events per stream.
MAX_SUBSCRIBERS = 256
MAX_SUBSCRIBER_BACKLOG = 10_000


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes with 413, whether or not they declare it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.limit + 1
                if declared > self.limit:
                    await self._too_large(scope, receive, send)
                    return
        # Read the whole body first (up to the limit), then replay it to the app: the
        # limit then holds whatever the app does with a failing receive().
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)  # disconnected: let the app see it
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.limit:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, "body_too_large", f"request body exceeds {self.limit} bytes")
        await response(scope, receive, send)


#: The two ways to submit a transaction, for the OpenAPI document.
SUBMIT_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "tx": {
                        "type": "string",
                        "pattern": r"^(0[xX])?([0-9a-fA-F]{2})*$",
                        "description": "Hex of the transaction's canonical encoding",
                    }
                },
                "required": ["tx"],
            }
        },
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}


#: Most transactions in one ``POST /v1/txs``.
MAX_BATCH_TXS = 1_000

SUBMIT_BATCH_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "txs": {
                        "type": "array",
                        "maxItems": MAX_BATCH_TXS,
                        "items": {"type": "string", "pattern": r"^(0[xX])?([0-9a-fA-F]{2})*$"},
                        "description": "Hex of each transaction's canonical encoding",
                    }
                },
                "required": ["txs"],
            }
        },
        "application/octet-stream": {
            "schema": {
                "type": "string",
                "format": "binary",
                "description": "The canonical encoding of a list of transaction encodings",
            }
        },
    },
}


class SubmitRequest(BaseModel):
    tx: str = Field(description="Hex of the transaction's canonical encoding")


class QueryRequest(BaseModel):
    contract: str = Field(max_length=64)
    method: str = Field(max_length=64)
    args: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra={"additionalProperties": models.LEDGER_VALUE_REF},
        description="Named arguments, as ledger values in JSON",
    )


# Path parameters: their format is documented, and checked by the handler (``parse_hex``),
# which says precisely what is wrong with a malformed one.
_HEX32 = r"^(0[xX])?[0-9a-fA-F]{64}$"
TX_ID: Any = Path(description="Transaction id (hex)", json_schema_extra={"pattern": _HEX32})
SCHEDULE_ID: Any = Path(
    description="Scheduled call id (hex)", json_schema_extra={"pattern": _HEX32}
)
BLOCK_HASH: Any = Path(description="Block hash (hex)", json_schema_extra={"pattern": _HEX32})
ADDRESS: Any = Path(
    description="Account address (hex)", json_schema_extra={"pattern": r"^(0[xX])?[0-9a-fA-F]{40}$"}
)


def _tx_id(text: str) -> Hash32:
    return Hash32(parse_hex(text, what="transaction id", size=32))


class _Subscriber:
    """One events stream: a bounded queue; ``None`` in it means "too slow, closed"."""

    def __init__(self, contract: str | None, name: str | None) -> None:
        self.contract = contract
        self.name = name
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.dropped = False

    def offer(self, message: dict[str, Any]) -> None:
        if self.dropped:
            return
        if self.contract is not None and message["contract"] != self.contract:
            return
        if self.name is not None and message["name"] != self.name:
            return
        if self.queue.qsize() >= MAX_SUBSCRIBER_BACKLOG:
            self.dropped = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(message)


class Waiters:
    """Futures resolved when a transaction is committed (for ``/wait``)."""

    def __init__(self) -> None:
        self._waiting: dict[bytes, list[asyncio.Future[int]]] = {}
        self._count = 0

    def add(self, tx_id: bytes) -> asyncio.Future[int]:
        if self._count >= MAX_WAITERS:
            raise LedgerError("too many waiting requests; retry later", code="busy")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(tx_id, []).append(future)
        self._count += 1
        return future

    def discard(self, tx_id: bytes, future: asyncio.Future[int]) -> None:
        futures = self._waiting.get(tx_id)
        if futures and future in futures:
            futures.remove(future)
            self._count -= 1
            if not futures:
                del self._waiting[tx_id]

    def on_committed(self, tx_id: bytes, height: int) -> None:
        for future in self._waiting.pop(tx_id, []):
            self._count -= 1
            if not future.done():
                future.set_result(height)


def create_app(
    node: Node,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    metrics: Metrics | None = None,
    consensus_status: Callable[[], dict[str, Any]] | None = None,
) -> FastAPI:
    app = FastAPI(
        title="Civic Ledger node API",
        version=__version__,
        description="Submit signed transactions, read blocks, receipts with proofs, "
        "and contract state. Errors are {'error': {'code', 'message'}}.",
    )
    app.add_middleware(BodyLimitMiddleware, limit=max_body_bytes)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = models.finish_openapi(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_exception_handler(LedgerError, ledger_error_handler)
    waiters = Waiters()
    app.state.node = node
    app.state.waiters = waiters

    subscribers: set[_Subscriber] = set()
    app.state.subscribers = subscribers

    def on_commit(block: Any, receipts: Any, scheduled: Any) -> None:
        for tx in block.transactions:
            waiters.on_committed(tx.tx_id, block.header.height)
        if subscribers:
            for receipt in (*receipts, *scheduled):
                for event in receipt.events:
                    message = {
                        "height": block.header.height,
                        "tx_id": receipt.tx_id.hex(),
                        **event.to_json(),
                    }
                    for subscriber in list(subscribers):
                        subscriber.offer(message)

    node.on_commit.append(on_commit)

    @app.websocket("/v1/events")
    async def events(
        websocket: WebSocket,
        contract: str | None = Query(None, max_length=64),
        name: str | None = Query(None, max_length=64),
    ) -> None:
        """Contract events as they are committed, as JSON messages
        ``{height, tx_id, contract, name, data}``; filter with ``contract`` and ``name``.
        A client that falls more than 10 000 events behind is disconnected (code 1013)."""
        if len(subscribers) >= MAX_SUBSCRIBERS:
            await websocket.close(code=1013)
            return
        await websocket.accept()
        subscriber = _Subscriber(contract, name)
        subscribers.add(subscriber)
        # Watch the socket too: a client that hangs up is noticed at once, not at the
        # next event (its slot would otherwise stay taken).
        listener = asyncio.ensure_future(websocket.receive())
        try:
            while True:
                getter = asyncio.ensure_future(subscriber.queue.get())
                done, _ = await asyncio.wait(
                    {getter, listener}, return_when=asyncio.FIRST_COMPLETED
                )
                if listener in done:
                    getter.cancel()
                    return
                message = getter.result()
                if message is None:
                    await websocket.close(code=1013, reason="too far behind")
                    return
                await websocket.send_json(message)
        except WebSocketDisconnect:
            pass
        finally:
            listener.cancel()
            subscribers.discard(subscriber)

    @app.exception_handler(StarletteHTTPException)
    async def http_error_handler(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        # Keep the exception's headers: a 405 names the allowed methods (``Allow``).
        return error_response(exc.status_code, code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{where}: {first.get('msg', 'invalid request')}"
        return error_response(400, "bad_request", message)

    @app.get(
        "/v1/health", tags=["node"], response_model=None, responses={200: {"model": models.Health}}
    )
    async def health() -> dict[str, Any]:
        """Liveness: the node is up and has a chain."""
        return {"ok": True, "height": node.head.height}

    @app.get(
        "/v1/status", tags=["node"], response_model=None, responses={200: {"model": models.Status}}
    )
    async def status() -> dict[str, Any]:
        """The node's view of the chain."""
        head = node.head
        return {
            "version": __version__,
            "chain_id": node.chain_id,
            "genesis_hash": (node.store.get_meta("genesis_hash") or b"").hex(),
            "head": {"height": head.height, "hash": head.hash.hex(), "time_ms": head.time_ms},
            "mempool": {"size": len(node.mempool), "bytes": node.mempool.size_bytes},
            "validator": node.validator_key.address.hex() if node.validator_key else None,
            "validators": len(node.validators.validators),
            "consensus": consensus_status() if consensus_status else None,
        }

    @app.get(
        "/v1/metrics",
        tags=["node"],
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def get_metrics() -> str:
        """Counters and gauges in the Prometheus text format."""
        registry = metrics or Metrics()
        registry.set("head_height", node.head.height)
        registry.set("mempool_size", len(node.mempool))
        registry.set("mempool_bytes", node.mempool.size_bytes)
        return registry.render()

    @app.get(
        "/v1/genesis",
        tags=["node"],
        response_model=None,
        responses={200: {"model": models.GenesisInfo}},
    )
    async def genesis() -> dict[str, Any]:
        return node.genesis.to_json()

    @app.get(
        "/v1/validators",
        tags=["node"],
        response_model=None,
        responses={200: {"model": models.ValidatorList}},
    )
    async def validators() -> dict[str, Any]:
        return {
            "height": node.head.height,
            "hash": node.validators.hash.hex(),
            "validators": [
                {"address": v.address.hex(), "public_key": v.public_key.hex(), "power": v.power}
                for v in node.validators.validators
            ],
        }

    @app.post(
        "/v1/transactions",
        status_code=202,
        tags=["transactions"],
        response_model=None,
        responses={202: {"model": models.Submitted}, **error_responses(400, 409, 413, 422, 503)},
        openapi_extra={"requestBody": SUBMIT_BODY},
    )
    async def submit(request: Request) -> dict[str, Any]:
        """Submit a signed transaction: JSON ``{"tx": hex}`` or raw bytes
        (``application/octet-stream``). Returns its id at once; 4xx with the reason if
        refused."""
        body = await request.body()
        if request.headers.get("content-type", "").startswith("application/octet-stream"):
            raw = body
        else:
            try:
                parsed = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise DecodeError("request body is not JSON") from None
            if not isinstance(parsed, dict) or not isinstance(parsed.get("tx"), str):
                raise DecodeError('request body must be {"tx": "<hex>"}')
            raw = parse_hex(parsed["tx"], what="tx")
        tx_id = node.submit(raw)
        return {"tx_id": tx_id.hex(), "status": "pending"}

    @app.post(
        "/v1/txs",
        tags=["transactions"],
        response_model=None,
        responses={200: {"model": models.SubmittedBatch}, **error_responses(400, 413)},
        openapi_extra={"requestBody": SUBMIT_BATCH_BODY},
    )
    async def submit_batch(request: Request) -> JSONResponse:
        """Submit up to 1,000 signed transactions at once: JSON ``{"txs": [hex, ...]}``
        or, as ``application/octet-stream``, the canonical encoding of the list of their
        encodings. Each is admitted or refused as by ``POST /v1/transactions`` (their
        signatures are checked together, on every core); the answer gives each one's id
        or reason, in order."""
        raws = _parse_batch(
            await request.body(),
            request.headers.get("content-type", "").startswith("application/octet-stream"),
        )
        # The signatures are checked off the event loop, which serves others meanwhile.
        batch = node.begin_admission(raws)
        signed = await node.verify_async(batch.to_verify)
        results: list[dict[str, Any]] = []
        accepted = 0
        for outcome in node.end_admission(batch, signed):
            if isinstance(outcome, LedgerError):
                results.append(
                    {
                        "status": "refused",
                        "error": {"code": outcome.code, "message": outcome.message},
                        "http_status": http_status_of(outcome),
                    }
                )
            else:
                accepted += 1
                results.append({"status": "pending", "tx_id": outcome.hex()})
        # Plain JSON already: no second walk through FastAPI's encoder.
        return JSONResponse({"accepted": accepted, "results": results})

    @app.get(
        "/v1/schedules/{schedule_id}",
        tags=["contracts"],
        response_model=None,
        responses={200: {"model": models.ScheduledCallStatus}, **error_responses(400, 404)},
    )
    async def get_schedule(schedule_id: str = SCHEDULE_ID) -> dict[str, Any]:
        """A scheduled call: ``waiting`` (with what will run and when) or ``ran`` (with the
        height, its position among the block's scheduled calls, and its receipt)."""
        return node.get_scheduled(_tx_id(schedule_id))

    @app.get(
        "/v1/transactions/{tx_id}",
        tags=["transactions"],
        response_model=None,
        responses={200: {"model": models.TransactionDetail}, **error_responses(400, 404)},
    )
    async def get_transaction(tx_id: str = TX_ID) -> dict[str, Any]:
        """A transaction, whether it is pending or committed, and its receipt."""
        st = node.get_tx_status(_tx_id(tx_id))
        return {
            "tx_id": st.tx_id.hex(),
            "status": st.status,
            "height": st.height,
            "index": st.index,
            "transaction": st.transaction.to_json(),
            "receipt": st.receipt.to_json() if st.receipt else None,
        }

    @app.get(
        "/v1/transactions/{tx_id}/wait",
        tags=["transactions"],
        response_model=None,
        responses={200: {"model": models.TransactionDetail}, **error_responses(400, 404, 408, 503)},
    )
    async def wait_transaction(
        tx_id: str = TX_ID, timeout: float = Query(10.0, gt=0, le=MAX_WAIT_SECONDS)
    ) -> dict[str, Any]:
        """Wait until a transaction is committed (or ``timeout`` seconds pass: 408)."""
        txid = _tx_id(tx_id)
        future = waiters.add(txid)
        try:
            if node.store.get_tx(txid) is None:
                if txid not in node.mempool:
                    raise NotFound(f"no transaction {tx_id} (neither pending nor committed)")
                try:
                    await asyncio.wait_for(asyncio.shield(future), timeout)
                except TimeoutError:
                    return JSONResponse(  # type: ignore[return-value]
                        {"error": {"code": "timeout", "message": "not committed yet"}},
                        status_code=408,
                    )
        finally:
            waiters.discard(txid, future)
        return await get_transaction(tx_id)

    @app.get(
        "/v1/transactions/{tx_id}/proof",
        tags=["transactions"],
        response_model=None,
        responses={200: {"model": models.ReceiptProofFile}, **error_responses(400, 404)},
    )
    async def get_proof(tx_id: str = TX_ID) -> dict[str, Any]:
        """The receipt with inclusion proofs, header, commit and validator set, for
        offline verification (``civic receipt verify``)."""
        return node.get_receipt_proof(_tx_id(tx_id)).to_json()

    def _block_json(height: int, with_txs: bool, with_ids: bool = False) -> dict[str, Any]:
        if with_txs:
            block, commit = node.get_block(height)
            header, tx_ids = block.header, [tx.tx_id for tx in block.transactions]
        else:  # no transaction is decoded
            header, commit, tx_ids = node.get_block_ids(height)
        out: dict[str, Any] = {
            "header": header.to_json(),
            "tx_count": len(tx_ids),
            "commit": None
            if commit is None
            else {
                "round": commit.round,
                "signatures": [
                    {"public_key": s.public_key.hex(), "signature": s.signature.hex()}
                    for s in commit.signatures
                ],
            },
        }
        if with_ids:
            out["tx_ids"] = [tx_id.hex() for tx_id in tx_ids]
        if with_txs:
            receipts = node.get_receipts(height)
            out["transactions"] = [
                {**tx.to_json(), "receipt": rc.to_json()}
                for tx, rc in zip(block.transactions, receipts, strict=True)
            ]
            out["scheduled"] = [rc.to_json() for rc in node.get_scheduled_receipts(height)]
        return out

    @app.get(
        "/v1/blocks",
        tags=["blocks"],
        response_model=None,
        responses={200: {"model": models.BlockList}, **error_responses(400)},
    )
    async def list_blocks(
        start: int | None = Query(None, ge=0, description="Lowest height (default: newest)"),
        limit: int = Query(20, ge=1, le=MAX_BLOCK_LIST),
    ) -> dict[str, Any]:
        """Block headers, newest first unless ``start`` is given."""
        head = node.head.height
        if start is None:
            heights = range(head, max(-1, head - limit), -1)
        else:
            heights = range(start, min(head, start + limit - 1) + 1)
        return {"head": head, "blocks": [node.get_header(h).to_json() for h in heights]}

    @app.get(
        "/v1/blocks/head",
        tags=["blocks"],
        response_model=None,
        responses={200: {"model": models.BlockDetail}, **error_responses(400)},
    )
    async def get_head(txs: bool = False) -> dict[str, Any]:
        return _block_json(node.head.height, txs)

    @app.get(
        "/v1/blocks/hash/{block_hash}",
        tags=["blocks"],
        response_model=None,
        responses={200: {"model": models.BlockDetail}, **error_responses(400, 404)},
    )
    async def get_block_by_hash(block_hash: str = BLOCK_HASH, txs: bool = False) -> dict[str, Any]:
        height = node.get_block_hash_height(parse_hex(block_hash, what="block hash", size=32))
        return _block_json(height, txs)

    @app.get(
        "/v1/blocks/{height}",
        tags=["blocks"],
        response_model=None,
        responses={200: {"model": models.BlockDetail}, **error_responses(400, 404)},
    )
    async def get_block(height: int, txs: bool = False, tx_ids: bool = False) -> dict[str, Any]:
        """Block ``height``; ``txs`` adds transactions with receipts, ``tx_ids`` just ids."""
        if not 0 <= height <= MAX_HEIGHT:
            raise NotFound(f"heights run from 0 to {MAX_HEIGHT}")
        return _block_json(height, txs, tx_ids)

    @app.get(
        "/v1/accounts/{address}",
        tags=["accounts"],
        response_model=None,
        responses={200: {"model": models.Account}, **error_responses(400)},
    )
    async def get_account(address: str = ADDRESS) -> dict[str, Any]:
        """An account's nonces and native balance."""
        from civicledger.types import Address

        addr = Address(parse_hex(address, what="address", size=20))
        balance = node.query("accounts", "balance", {"address": addr})
        return {
            "address": addr.hex(),
            "nonce": node.get_nonce(addr),
            "pending_nonce": node.mempool.get_pending_nonce(addr),
            "balance": balance,
        }

    @app.get(
        "/v1/contracts",
        tags=["contracts"],
        response_model=None,
        responses={200: {"model": models.ContractList}},
    )
    async def list_contracts() -> dict[str, Any]:
        out = []
        for name in node.registry.names():
            contract = node.registry.get(name)
            out.append(
                {"name": name, "calls": contract.methods("call"), "views": contract.methods("view")}
            )
        return {"contracts": out}

    @app.post(
        "/v1/query",
        tags=["contracts"],
        response_model=None,
        responses={200: {"model": models.QueryResult}, **error_responses(400, 404, 413, 422)},
    )
    async def query(body: QueryRequest) -> dict[str, Any]:
        """Run a read-only contract view against the latest committed state."""
        args = json_to_value(body.args)
        assert isinstance(args, dict)
        result = node.query(body.contract, body.method, args)
        return {"height": node.head.height, "result": value_to_json(result)}

    @app.get(
        "/v1/state-proof",
        tags=["contracts"],
        response_model=None,
        responses={
            200: {"model": models.StateProofFile},
            **error_responses(400, 404, 422, 503),
        },
    )
    async def get_state_proof(
        contract: str = Query(..., max_length=64),
        key: str = Query(..., max_length=256),
        height: int | None = Query(None, ge=1, le=2**63 - 1),
    ) -> dict[str, Any]:
        """A contract state key's value (or absence) after block ``height`` (default: the
        head; recent heights are kept, see ``state_history``) with a Merkle proof, the
        header, its commit and the validators: verifiable offline (``civic state verify``)."""
        return node.get_state_proof(contract, key, height).to_json()

    @app.get(
        "/v1/state/{contract}/{key:path}",
        tags=["contracts"],
        response_model=None,
        responses={200: {"model": models.StateEntry}, **error_responses(400, 404)},
    )
    async def get_state(contract: str, key: str) -> dict[str, Any]:
        """A raw state entry of a contract at the head, decoded."""
        raw = node.get_state_value(contract, key)
        if raw is None:
            raise NotFound(f"no state key {key!r} in contract {contract!r}")
        return {
            "height": node.head.height,
            "contract": contract,
            "key": key,
            "raw": raw.hex(),
            "value": value_to_json(decode(raw)),
        }

    return app


def _parse_batch(body: bytes, raw: bool) -> list[bytes]:
    """The transactions' encodings in a ``POST /v1/txs`` body; ``DecodeError`` if the
    body is not a list of at most ``MAX_BATCH_TXS`` of them."""
    items: list[bytes] = []
    if raw:
        value = decode(body)
        if not isinstance(value, list) or not all(isinstance(v, bytes) for v in value):
            raise DecodeError("request body must encode a list of transaction encodings")
        items = value  # type: ignore[assignment]
    else:
        try:
            parsed = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise DecodeError("request body is not JSON") from None
        txs = parsed.get("txs") if isinstance(parsed, dict) else None
        if not isinstance(txs, list) or not all(isinstance(t, str) for t in txs):
            raise DecodeError('request body must be {"txs": ["<hex>", ...]}')
        items = [parse_hex(t, what="tx") for t in txs]
    if len(items) > MAX_BATCH_TXS:
        raise DecodeError(f"at most {MAX_BATCH_TXS} transactions per request")
    return items
