"""The HTTP client: typed calls of the node API, signing and submitting transactions."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx

from civicledger.chain.proof import ReceiptProof
from civicledger.chain.transaction import DEFAULT_FUEL_LIMIT, Transaction, make_transaction
from civicledger.crypto.keys import KeyPair
from civicledger.encoding import Value
from civicledger.errors import LedgerError
from civicledger.jsonvalue import value_to_json

__all__ = ["ApiError", "Client", "sha256_file"]


class ApiError(LedgerError):
    """The node refused a request, or could not be reached."""

    def __init__(self, message: str, *, code: str, status: int = 0) -> None:
        super().__init__(message, code=code)
        self.status = status


def sha256_file(path: Path) -> bytes:
    """SHA-256 of a file, read in chunks (documents never leave the machine)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise LedgerError(f"cannot read {path}: {exc.strerror}", code="file_error") from None
    return digest.digest()


class Client:
    def __init__(self, url: str = "http://127.0.0.1:8545", *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        self._chain_id: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ApiError(
                f"the node at {self.url} did not answer in time", code="timeout"
            ) from None
        except httpx.HTTPError as exc:
            raise ApiError(
                f"cannot reach the node at {self.url}: {exc}", code="unreachable"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict):
                raise ApiError(
                    str(error.get("message", "")),
                    code=str(error.get("code", "error")),
                    status=response.status_code,
                )
            raise ApiError(
                f"HTTP {response.status_code} from {self.url}{path}",
                code="http_error",
                status=response.status_code,
            )
        return body

    # -- reads -------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/v1/status")
        return result

    def chain_id(self) -> str:
        if self._chain_id is None:
            self._chain_id = str(self.status()["chain_id"])
        return self._chain_id

    def genesis(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/v1/genesis")
        return result

    def block(self, height: int | str = "head", *, txs: bool = False) -> dict[str, Any]:
        path = f"/v1/blocks/{height}"
        result: dict[str, Any] = self._request("GET", path, params={"txs": str(txs).lower()})
        return result

    def blocks(self, *, start: int | None = None, limit: int = 20) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if start is not None:
            params["start"] = start
        result: dict[str, Any] = self._request("GET", "/v1/blocks", params=params)
        return result

    def transaction(self, tx_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/v1/transactions/{tx_id}")
        return result

    def wait(self, tx_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until ``tx_id`` is committed; raise ``ApiError`` (code ``timeout``) if not."""
        result: dict[str, Any] = self._request(
            "GET",
            f"/v1/transactions/{tx_id}/wait",
            params={"timeout": timeout},
            timeout=timeout + 10,
        )
        return result

    def proof(self, tx_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/v1/transactions/{tx_id}/proof")
        ReceiptProof.from_json(result)  # refuse to hand on something that is not a proof
        return result

    def account(self, address: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/v1/accounts/{address}")
        return result

    def query(self, contract: str, method: str, args: dict[str, Value] | None = None) -> Any:
        body = {"contract": contract, "method": method, "args": value_to_json(args or {})}
        return self._request("POST", "/v1/query", json=body)["result"]

    def state_proof(self, contract: str, key: str, height: int | None = None) -> dict[str, Any]:
        """A key's value after block ``height`` (default: the head) with its proof."""
        params: dict[str, Any] = {"contract": contract, "key": key}
        if height is not None:
            params["height"] = height
        result: dict[str, Any] = self._request("GET", "/v1/state-proof", params=params)
        return result

    def state(self, contract: str, key: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/v1/state/{contract}/{key}")
        return result

    def scheduled(self, schedule_id: str) -> dict[str, Any]:
        """A scheduled call: waiting (with what runs when) or ran (with its receipt)."""
        result: dict[str, Any] = self._request("GET", f"/v1/schedules/{schedule_id}")
        return result

    # -- writes ------------------------------------------------------------------

    def submit(self, tx: Transaction) -> str:
        """Submit a signed transaction; return its id (hex)."""
        response = self._request(
            "POST",
            "/v1/transactions",
            content=tx.encoded,
            headers={"content-type": "application/octet-stream"},
        )
        return str(response["tx_id"])

    def sign(
        self,
        key: KeyPair,
        contract: str,
        method: str,
        args: dict[str, Value] | None = None,
        *,
        nonce: int | None = None,
        fuel_limit: int = DEFAULT_FUEL_LIMIT,
        expiry: int = 0,
    ) -> Transaction:
        """Build and sign a transaction, asking the node for the next nonce if not given."""
        if nonce is None:
            nonce = int(self.account(key.address.hex())["pending_nonce"])
        return make_transaction(
            key,
            chain_id=self.chain_id(),
            nonce=nonce,
            contract=contract,
            method=method,
            args=args,
            fuel_limit=fuel_limit,
            expiry=expiry,
        )

    def send(
        self,
        key: KeyPair,
        contract: str,
        method: str,
        args: dict[str, Value] | None = None,
        *,
        wait: bool = True,
        timeout: float = 30.0,
        **options: Any,
    ) -> dict[str, Any]:
        """Sign, submit and (by default) wait for the receipt."""
        tx = self.sign(key, contract, method, args, **options)
        tx_id = self.submit(tx)
        if not wait:
            return {"tx_id": tx_id, "status": "pending"}
        return self.wait(tx_id, timeout=timeout)
