"""The one place where ledger errors become HTTP responses.

Every error response is ``{"error": {"code": ..., "message": ...}}`` with a status from
``STATUS_BY_ERROR`` (most specific class first).
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse

from civicledger.errors import (
    ContractError,
    CorruptionError,
    DecodeError,
    EncodeError,
    InvalidBlock,
    InvalidProof,
    InvalidTransaction,
    LedgerError,
    MempoolFull,
    NotFound,
)

__all__ = [
    "STATUS_BY_ERROR",
    "STATUS_DESCRIPTIONS",
    "error_response",
    "http_status_of",
    "ledger_error_handler",
]

STATUS_BY_ERROR: tuple[tuple[type[LedgerError], int], ...] = (
    (NotFound, 404),
    (MempoolFull, 503),
    (CorruptionError, 500),
    (DecodeError, 400),
    (EncodeError, 400),
    (InvalidTransaction, 422),
    (InvalidProof, 422),
    (InvalidBlock, 422),
    (ContractError, 422),
)

#: Refusals that are about the sender's sequence rather than the content.
CONFLICT_CODES = frozenset({"duplicate", "nonce_too_low", "nonce_taken"})


def http_status_of(exc: LedgerError) -> int:
    if isinstance(exc, InvalidTransaction) and exc.code in CONFLICT_CODES:
        return 409
    if isinstance(exc, InvalidTransaction) and exc.code == "too_large":
        return 413
    if isinstance(exc, ContractError) and exc.code == "not_found":
        return 404
    if exc.code == "busy":
        return 503
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 400


#: What each error status means, for the OpenAPI document.
STATUS_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request: a parameter, body or encoding is invalid",
    404: "No such object (block, transaction, contract, key, account)",
    408: "The transaction was not committed within the timeout",
    409: "Refused because of the sender's sequence: duplicate, nonce too low or taken",
    413: "The request body or the transaction is too large",
    422: "Well formed but refused: invalid transaction, failed contract call or proof",
    503: "The node is busy (mempool full, too many waiting requests): retry later",
}


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


async def ledger_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LedgerError)
    return error_response(http_status_of(exc), exc.code, exc.message)
