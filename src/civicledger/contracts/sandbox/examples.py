"""The example contract used by the documentation, the benchmark and the tests."""

from __future__ import annotations

__all__ = ["COUNTER"]

#: A counter: ``add`` (a transaction) and ``total`` (a query).
COUNTER = """
class Counter:
    @call
    def add(self, ctx, args):
        n = args.integer("n", minimum=1, maximum=100)
        total = ctx.get_int("total") + n
        ctx.set("total", total)
        ctx.emit("Added", n=n, total=total)
        return total

    @view
    def total(self, ctx, args):
        return ctx.get_int("total")
"""
