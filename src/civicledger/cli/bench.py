"""``civic bench``: throughput and latency of a local network, against the machine's limit."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click
from rich.console import Console
from rich.table import Table

from civicledger.cli.common import CliError

if TYPE_CHECKING:
    from civicledger.bench import BenchResult
    from civicledger.bench_loads import LoadKind

__all__ = ["bench"]


@click.command()
@click.option("--validators", default=4, show_default=True, type=click.IntRange(1, 16))
@click.option(
    "--load",
    type=click.Choice(["transfer", "document", "contract"]),
    default="transfer",
    show_default=True,
    help="Native transfers, document registrations, or calls of a sandboxed contract.",
)
@click.option("--transactions", default=10_000, show_default=True, type=click.IntRange(1))
@click.option("--senders", default=100, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--rate", default=0.0, show_default=True, help="Target tx/s (0: flat out).")
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--batch",
    default=100,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Transactions per request: above 1, each connection sends those due at once "
    "with POST /v1/txs.",
)
@click.option("--block-interval-ms", default=100, show_default=True, type=click.IntRange(10))
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also draw throughput and latency over time to this PNG file.",
)
@click.option(
    "--failover",
    is_flag=True,
    help="Instead, time the chain's resumption after the "
    "next proposer is killed (SIGKILL), three times.",
)
def bench(
    validators: int,
    load: str,
    transactions: int,
    senders: int,
    rate: float,
    concurrency: int,
    batch: int,
    block_interval_ms: int,
    as_json: bool,
    plot: Path | None,
    failover: bool,
) -> None:
    """Start a fresh local network, load it with pre-signed transactions, report the figures."""
    from civicledger.bench import measure_failover, run_bench

    if failover:
        try:
            outcome = measure_failover(validators=max(validators, 4))
        except RuntimeError as exc:
            raise CliError(str(exc)) from None
        if as_json:
            click.echo(json.dumps(dataclasses.asdict(outcome)))
            return
        click.echo(
            f"{outcome.validators} validators, proposer killed {outcome.trials} times: "
            f"chain resumed after {', '.join(f'{s:.2f}' for s in outcome.resume_s)} s "
            f"(propose timeout {outcome.propose_timeout_ms} ms)"
        )
        return

    if plot is not None:
        from civicledger.bench_plot import require_matplotlib

        try:
            require_matplotlib()
        except RuntimeError as exc:
            raise CliError(str(exc)) from None
    try:
        result = run_bench(
            validators=validators,
            load=cast("LoadKind", load),  # click.Choice admits only the load kinds
            transactions=transactions,
            senders=senders,
            rate=rate,
            concurrency=concurrency,
            batch=batch,
            block_interval_ms=block_interval_ms,
        )
    except RuntimeError as exc:
        raise CliError(str(exc)) from None
    if plot is not None:
        from civicledger.bench_plot import save_plot

        save_plot(result, plot)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        _print_table(result)
    if plot is not None and not as_json:
        click.echo(f"plot saved to {plot}")


def _print_table(result: BenchResult) -> None:
    from civicledger.bench_loads import LOAD_TITLES

    table = Table(
        title=f"civic bench: {result.validators} validator(s), {LOAD_TITLES[result.load]}"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        (
            "transactions submitted / committed / rejected",
            f"{result.transactions} / {result.committed} / {result.rejected}",
        ),
        ("committed tx/s", f"{result.committed_tps:,.0f}"),
        ("submitted tx/s (load generator)", f"{result.submit_tps:,.0f}"),
        (
            "latency submit→commit p50 / p95 / p99 (ms)",
            f"{result.latency_ms['p50']:.0f} / {result.latency_ms['p95']:.0f} / "
            f"{result.latency_ms['p99']:.0f}",
        ),
        (
            "blocks; txs per block mean / max",
            f"{result.blocks}; {result.mean_block_txs:,.0f} / {result.max_block_txs:,}",
        ),
        (
            "block size mean / max (KiB)",
            f"{result.mean_block_bytes / 1024:,.0f} / {result.max_block_bytes / 1024:,.0f}",
        ),
        ("mean block interval (ms)", f"{result.mean_block_interval_ms:.0f}"),
        *(
            (
                f"{node.name} (with its verifiers): CPU % of one core, RSS / peak MB",
                f"{node.cpu_percent:.0f}, {node.rss_mb:.0f} / {node.peak_rss_mb:.0f}",
            )
            for node in result.nodes
        ),
        ("Ed25519 verify/s, one core (PyNaCl)", f"{result.ed25519_verify_per_s_core:,.0f}"),
        (
            f"verify limit, {result.cores} cores (one core × {result.cores})",
            f"{result.ed25519_verify_per_s_machine:,.0f}",
        ),
        (
            f"verify/s measured on {result.cores} cores at once",
            f"{result.ed25519_verify_per_s_all_cores:,.0f}",
        ),
        ("committed tx/s ÷ verify limit", f"{result.ratio_of_verify_limit:.1%}"),
        (
            "receipts read back: failed / checked",
            f"{result.receipts_failed} / {result.receipts_checked}",
        ),
        (
            f"machine load average before / after ({result.cores} cores)",
            f"{result.load_average[0]:.1f} / {result.load_average[1]:.1f}",
        ),
    ]
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)
    for note in result.notes:
        click.echo(f"note: {note}")
