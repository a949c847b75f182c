"""The bank workload: transfers among a fixed set of accounts, and who saw what committed.

Every account starts with the same balance at genesis and only sends to the others, so
the sum of their balances (the total supply) must never change. The transfer with a given
sender and nonce is always the same transaction (recipient and amount come from a hash
of the seed, sender and nonce): resubmitting it after a lost acknowledgement or a node
restart cannot create a second, different transaction for the same nonce.

``Observer`` polls every serving node for new blocks with their transaction ids; a
transaction seen in a committed block is *acknowledged* (a client was told it is
committed), and the heights over time feed the liveness checker.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from civicledger.chain.transaction import Transaction, make_transaction
from civicledger.crypto.keys import KeyPair

__all__ = ["BankLoad", "Observer", "workload_accounts"]

INITIAL_BALANCE = 10**9


def workload_accounts(seed: int, count: int) -> list[KeyPair]:
    return [
        KeyPair.from_seed(hashlib.sha256(f"civic-chaos/{seed}/account/{i}".encode()).digest())
        for i in range(count)
    ]


@dataclass(slots=True)
class _Sender:
    key: KeyPair
    #: Next nonce to submit, as far as this client knows.
    nonce: int | None = None
    home: int = 0


class BankLoad:
    """Submits transfers at ``rate`` per second to the serving honest nodes."""

    def __init__(
        self,
        *,
        chain_id: str,
        accounts: list[KeyPair],
        rate: float,
        seed: int,
        urls: Callable[[], list[str]],
    ) -> None:
        self.chain_id = chain_id
        self.accounts = accounts
        self.rate = rate
        self.seed = seed
        self.urls = urls
        self.senders = [_Sender(k, home=i) for i, k in enumerate(accounts)]
        self.submitted: dict[bytes, float] = {}
        self.accepted = 0
        self.refused = 0
        self.errors = 0
        self._stop = asyncio.Event()

    def transfer(self, sender: KeyPair, nonce: int) -> Transaction:
        digest = hashlib.sha256(
            f"civic-chaos/{self.seed}/{sender.address.hex()}/{nonce}".encode()
        ).digest()
        others = [k for k in self.accounts if k.address != sender.address]
        to = others[digest[0] % len(others)]
        amount = 1 + int.from_bytes(digest[1:3], "big") % 1000
        return make_transaction(
            sender,
            chain_id=self.chain_id,
            nonce=nonce,
            contract="accounts",
            method="transfer",
            args={"to": to.address, "amount": amount},
        )

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        if self.rate <= 0:
            return
        interval = 1.0 / self.rate
        turn = 0
        next_at = time.monotonic()
        async with httpx.AsyncClient(timeout=2.0) as client:
            resync = asyncio.create_task(self._resync_loop(client))
            try:
                while not self._stop.is_set():
                    sender = self.senders[turn % len(self.senders)]
                    turn += 1
                    await self._submit_one(client, sender)
                    next_at += interval
                    delay = next_at - time.monotonic()
                    if delay < -1.0:  # fell behind (a paused node held a request): re-pace
                        next_at = time.monotonic()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), max(0.0, delay))
            finally:
                resync.cancel()

    def _url_for(self, sender: _Sender) -> str | None:
        urls = self.urls()
        return urls[sender.home % len(urls)] if urls else None

    async def _submit_one(self, client: httpx.AsyncClient, sender: _Sender) -> None:
        url = self._url_for(sender)
        if url is None:
            return
        try:
            if sender.nonce is None:
                sender.nonce = await self._pending_nonce(client, url, sender)
            tx = self.transfer(sender.key, sender.nonce)
            response = await client.post(
                f"{url}/v1/transactions",
                content=tx.encoded,
                headers={"content-type": "application/octet-stream"},
            )
            code = ""
            if response.status_code >= 400:
                code = str(response.json().get("error", {}).get("code", ""))
            # Already waiting there (an earlier acknowledgement was lost): the same transaction.
            duplicate = code == "duplicate"
            if response.status_code == 202 or duplicate:
                self.submitted.setdefault(bytes(tx.tx_id), time.monotonic())
                sender.nonce += 1
                self.accepted += 1
            else:
                self.refused += 1
                sender.nonce = None  # ask the node again next time
        except (httpx.HTTPError, ValueError, KeyError):
            self.errors += 1
            sender.nonce = None
            sender.home += 1  # try another node

    async def _pending_nonce(self, client: httpx.AsyncClient, url: str, sender: _Sender) -> int:
        response = await client.get(f"{url}/v1/accounts/{sender.key.address.hex()}")
        return int(response.json()["pending_nonce"])

    async def _resync_loop(self, client: httpx.AsyncClient) -> None:
        """Every 2 s, fall back to a node's pending nonce when it lost our later ones
        (a restarted node's mempool is empty), so a nonce gap cannot stall a sender."""
        while True:
            await asyncio.sleep(2.0)
            for sender in self.senders:
                url = self._url_for(sender)
                if url is None or sender.nonce is None:
                    continue
                try:
                    pending = await self._pending_nonce(client, url, sender)
                except (httpx.HTTPError, ValueError, KeyError):
                    continue
                if pending < sender.nonce:
                    sender.nonce = pending


@dataclass(slots=True)
class _NodeView:
    height: int = -1
    read_upto: int = 0


@dataclass(slots=True)
class Observer:
    """Polls serving nodes: heights over time and transactions seen committed."""

    urls: Callable[[], dict[int, str]]
    interval: float = 0.25
    #: (monotonic time, node index, height)
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    #: tx id -> height at which a node first reported it committed
    acknowledged: dict[bytes, int] = field(default_factory=dict)
    views: dict[int, _NodeView] = field(default_factory=dict)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self) -> None:
        self._stop.set()

    def heights(self) -> dict[int, int]:
        return {i: v.height for i, v in self.views.items()}

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=1.5) as client:
            while not self._stop.is_set():
                targets = self.urls()
                await asyncio.gather(
                    *(self._poll(client, i, url) for i, url in targets.items()),
                    return_exceptions=True,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.interval)

    async def poll_once(self) -> None:
        async with httpx.AsyncClient(timeout=3.0) as client:
            for i, url in self.urls().items():
                await self._poll(client, i, url)

    async def _poll(self, client: httpx.AsyncClient, index: int, url: str) -> None:
        view = self.views.setdefault(index, _NodeView())
        try:
            health = (await client.get(f"{url}/v1/health")).json()
            height = int(health["height"])
        except (httpx.HTTPError, ValueError, KeyError):
            return
        view.height = height
        self.samples.append((time.monotonic(), index, height))
        # Read at most 20 new blocks per poll; the rest next time.
        for h in range(max(view.read_upto, 1), min(height, view.read_upto + 20) + 1):
            try:
                block = (await client.get(f"{url}/v1/blocks/{h}", params={"tx_ids": "true"})).json()
            except (httpx.HTTPError, ValueError):
                return
            for tx_id in block.get("tx_ids", []):
                self.acknowledged.setdefault(bytes.fromhex(tx_id), h)
            view.read_upto = h + 1
