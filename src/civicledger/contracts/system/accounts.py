"""The native currency: balances, transfers, and minting by issuers.

State keys (under ``accounts/``): ``balance/<address hex>`` → int, ``supply`` → int,
``issuer/<address hex>`` → ``True``. Issuers are named in the genesis file and may grant
or revoke the issuer role. Amounts are whole units, at most 2**128 - 1.
"""

from __future__ import annotations

from civicledger.contracts.base import Args, Context, Contract, ViewContext, call, view
from civicledger.encoding import Value
from civicledger.types import Address

__all__ = ["MAX_AMOUNT", "Accounts"]

MAX_AMOUNT = 2**128 - 1


def _balance_key(address: bytes) -> str:
    return f"balance/{address.hex()}"


def _issuer_key(address: bytes) -> str:
    return f"issuer/{address.hex()}"


class Accounts(Contract):
    name = "accounts"

    def _require_issuer(self, ctx: Context) -> None:
        ctx.require(
            ctx.has(_issuer_key(ctx.sender)),
            f"{ctx.sender.hex()} does not hold the issuer role",
            code="permission_denied",
        )

    def _credit(self, ctx: Context, to: Address, amount: int) -> int:
        balance = ctx.get_int(_balance_key(to)) + amount
        ctx.require(balance <= MAX_AMOUNT, "balance would exceed 2**128 - 1", code="overflow")
        ctx.set(_balance_key(to), balance)
        return balance

    @call
    def mint(self, ctx: Context, args: Args) -> Value:
        """Create ``amount`` new units in ``to``'s account (issuers only)."""
        to = args.address("to")
        amount = args.integer("amount", minimum=1, maximum=MAX_AMOUNT)
        args.check_no_extra()
        self._require_issuer(ctx)
        supply = ctx.get_int("supply") + amount
        ctx.require(supply <= MAX_AMOUNT, "total supply would exceed 2**128 - 1", code="overflow")
        ctx.set("supply", supply)
        balance = self._credit(ctx, to, amount)
        ctx.emit("Minted", to=to, amount=amount, by=ctx.sender)
        return balance

    @call
    def transfer(self, ctx: Context, args: Args) -> Value:
        """Move ``amount`` units from the sender to ``to``."""
        to = args.address("to")
        amount = args.integer("amount", minimum=1, maximum=MAX_AMOUNT)
        args.check_no_extra()
        balance = ctx.get_int(_balance_key(ctx.sender))
        ctx.require(
            balance >= amount,
            f"insufficient funds: balance {balance}, transfer {amount}",
            code="insufficient_funds",
        )
        ctx.set(_balance_key(ctx.sender), balance - amount)
        credited = self._credit(ctx, to, amount)
        ctx.emit("Transferred", sender=ctx.sender, to=to, amount=amount)
        return credited if to == ctx.sender else balance - amount

    @call
    def burn(self, ctx: Context, args: Args) -> Value:
        """Destroy ``amount`` of the sender's units."""
        amount = args.integer("amount", minimum=1, maximum=MAX_AMOUNT)
        args.check_no_extra()
        balance = ctx.get_int(_balance_key(ctx.sender))
        ctx.require(
            balance >= amount,
            f"insufficient funds: balance {balance}, burn {amount}",
            code="insufficient_funds",
        )
        ctx.set(_balance_key(ctx.sender), balance - amount)
        ctx.set("supply", ctx.get_int("supply") - amount)
        ctx.emit("Burned", sender=ctx.sender, amount=amount)
        return balance - amount

    @call
    def grant_issuer(self, ctx: Context, args: Args) -> Value:
        """Give ``address`` the issuer role (issuers only)."""
        address = args.address("address")
        args.check_no_extra()
        self._require_issuer(ctx)
        ctx.set(_issuer_key(address), True)
        ctx.emit("IssuerGranted", address=address, by=ctx.sender)
        return None

    @call
    def revoke_issuer(self, ctx: Context, args: Args) -> Value:
        """Take the issuer role from ``address`` (issuers only)."""
        address = args.address("address")
        args.check_no_extra()
        self._require_issuer(ctx)
        ctx.require(ctx.has(_issuer_key(address)), "that address is not an issuer")
        ctx.delete(_issuer_key(address))
        ctx.emit("IssuerRevoked", address=address, by=ctx.sender)
        return None

    @view
    def balance(self, ctx: ViewContext, args: Args) -> Value:
        address = args.address("address")
        args.check_no_extra()
        return ctx.get_int(_balance_key(address))

    @view
    def supply(self, ctx: ViewContext, args: Args) -> Value:
        args.check_no_extra()
        return ctx.get_int("supply")

    @view
    def is_issuer(self, ctx: ViewContext, args: Args) -> Value:
        address = args.address("address")
        args.check_no_extra()
        return ctx.has(_issuer_key(address))
