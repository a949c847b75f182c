"""``civic chaos``: fault scenarios described in TOML, run against local node processes."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import click
from rich.console import Console

from civicledger.cli.common import CliError, LedgerGroup

__all__ = ["chaos"]


@click.group(cls=LedgerGroup)
def chaos() -> None:
    """Chaos scenarios: faults on a local network, then invariant checks."""


def _workdir(base: Path | None, name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if base is None:
        return Path(tempfile.mkdtemp(prefix=f"civic-chaos-{name}-"))
    return base / f"{name}-{stamp}"


@chaos.command("run")
@click.argument("manifest_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to keep the network's data (default: a new temporary folder).",
)
def chaos_run(manifest_path: Path, as_json: bool, workdir: Path | None) -> None:
    """Run the scenario in MANIFEST_PATH; exit 1 unless the expected outcome is met."""
    from civicledger.chaos.manifest import load_manifest
    from civicledger.chaos.report import print_result
    from civicledger.chaos.runner import run_scenario

    manifest = load_manifest(manifest_path)
    console = Console(stderr=as_json)
    result = asyncio.run(
        run_scenario(manifest, _workdir(workdir, manifest.name), say=console.print)
    )
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        print_result(result, console)
    if not result.met:
        sys.exit(1)


@chaos.command("matrix")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("chaos-results.md"),
    show_default=True,
    help="Markdown file for the results table.",
)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path))
def chaos_matrix(directory: Path, output: Path, workdir: Path | None) -> None:
    """Run every scenario (*.toml) in DIRECTORY and write a markdown results table."""
    from civicledger.chaos.manifest import load_manifest
    from civicledger.chaos.report import print_result, render_markdown
    from civicledger.chaos.runner import run_scenario

    paths = sorted(directory.glob("*.toml"))
    if not paths:
        raise CliError(f"no *.toml scenario in {directory}")
    manifests = [load_manifest(p) for p in paths]  # all checked before the first runs
    console = Console()
    results = []
    for manifest in manifests:
        console.rule(manifest.name)
        result = asyncio.run(
            run_scenario(manifest, _workdir(workdir, manifest.name), say=console.print)
        )
        print_result(result, console)
        results.append(result)
    output.write_text(render_markdown(results))
    console.print(render_markdown(results))
    console.print(f"results table written to {output}")
    if not all(r.met for r in results):
        sys.exit(1)


@chaos.command("crashloop")
@click.option("--kills", type=click.IntRange(1), default=100, show_default=True)
@click.option("--validators", type=click.IntRange(1), default=1, show_default=True)
@click.option("--seed", type=int, help="Repeat a run (default: a new seed, printed).")
@click.option("--rate", type=float, default=400.0, show_default=True, help="Transfers per second.")
@click.option(
    "--max-delay",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds: each kill falls at random within this after the node's first new block.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to keep the network's data (default: a new temporary folder).",
)
def chaos_crashloop(
    kills: int,
    validators: int,
    seed: int | None,
    rate: float,
    max_delay: float,
    as_json: bool,
    workdir: Path | None,
) -> None:
    """SIGKILL a node KILLS times during heavy commits; after each kill, check that its
    chain verifies and that nothing it acknowledged was lost. Exit 1 otherwise."""
    from civicledger.chaos.crashloop import CrashLoopConfig, run_crashloop

    config = CrashLoopConfig(
        kills=kills, validators=validators, seed=seed, rate=rate, max_delay_s=max_delay
    )
    say = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    report = run_crashloop(config, _workdir(workdir, "crashloop"), say=say)
    summary = report.to_json()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(
            f"{report.kills} kills in {summary['seconds']} s (seed {report.seed}): "
            f"{report.blocks_acknowledged} blocks and {report.txs_acknowledged} transactions "
            f"acknowledged, {report.txs_checked} checks of acknowledged transactions after "
            f"kills, {report.txs_lost} lost, {report.verify_failures} verification failures; "
            f"restart median {summary['restart_s_median']} s, max {summary['restart_s_max']} s"
        )
        for problem in report.problems:
            click.echo(f"problem: {problem}", err=True)
    if not report.ok:
        sys.exit(1)
