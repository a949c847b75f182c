"""The tree of expected failures.

Every failure a user can cause is a precise subclass of ``LedgerError`` with a stable
machine-readable ``code`` and a message a person can act on. Broken invariants are not
``LedgerError``: they crash loudly. The API maps these classes to HTTP statuses in
exactly one place (``civicledger.api.errors``).
"""

from __future__ import annotations

__all__ = [
    "ContractError",
    "CorruptionError",
    "DecodeError",
    "EncodeError",
    "InvalidBlock",
    "InvalidProof",
    "InvalidTransaction",
    "KeystoreError",
    "LedgerError",
    "MempoolFull",
    "NotFound",
    "OutOfFuel",
    "WrongPassphrase",
]


class LedgerError(Exception):
    """Root of every expected failure."""

    code = "ledger_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class EncodeError(LedgerError):
    """A value has no canonical encoding (wrong type, too large, too deep)."""

    code = "unencodable"


class DecodeError(LedgerError):
    """Bytes are not the canonical encoding of a valid object."""

    code = "malformed"


class InvalidTransaction(LedgerError):
    """A transaction cannot be admitted (signature, chain id, nonce, expiry, size...)."""

    code = "invalid_transaction"


class MempoolFull(LedgerError):
    """The mempool is at its bound; the client should retry later."""

    code = "mempool_full"


class InvalidBlock(LedgerError):
    """A block, its seal or its roots do not check out."""

    code = "invalid_block"


class InvalidProof(LedgerError):
    """A Merkle proof, receipt or seal does not verify."""

    code = "invalid_proof"


class ContractError(LedgerError):
    """A contract call failed; its writes are rolled back and a failed receipt recorded."""

    code = "contract_error"


class OutOfFuel(ContractError):
    """A call used more fuel than the transaction allowed."""

    code = "out_of_fuel"


class NotFound(LedgerError):
    """The asked-for block, transaction, key or account does not exist."""

    code = "not_found"


class KeystoreError(LedgerError):
    """A key file is missing, unreadable or not a Civic Ledger key file."""

    code = "keystore_error"


class WrongPassphrase(KeystoreError):
    """The passphrase does not decrypt the key file."""

    code = "wrong_passphrase"


class CorruptionError(LedgerError):
    """Stored data fails its integrity checks; the node refuses to use it."""

    code = "corrupted"
