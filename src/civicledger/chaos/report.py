"""Presenting chaos results: a rich table per scenario, a markdown table for a matrix."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from civicledger.chaos.manifest import CHECKERS
from civicledger.chaos.runner import ScenarioResult

__all__ = ["print_result", "render_markdown"]

_EXPECTED = {True: "pass", False: "fail", None: "any"}


def print_result(result: ScenarioResult, console: Console) -> None:
    table = Table(title=f"chaos scenario {result.name}: {result.description}")
    table.add_column("checker")
    table.add_column("result")
    table.add_column("expected")
    table.add_column("reason", overflow="fold")
    for check in result.checks:
        want = result.expected.get(check.name)
        ok = want is None or (check.passed is False) == (want is False)
        style = "green" if ok else "bold red"
        table.add_row(check.name, f"[{style}]{check.label}[/]", _EXPECTED[want], check.reason)
    console.print(table)
    links = result.links
    console.print(
        f"{result.seconds:.0f} s, head {result.height}, {result.submitted} transfers submitted, "
        f"{result.acknowledged} acknowledged committed; proxied frames {links.frames} "
        f"(dropped {links.dropped}, duplicated {links.duplicated}, delayed {links.delayed}), "
        f"connections {links.connections} (refused {links.refused}, cut {links.cut})"
    )
    console.print(f"data kept in {result.workdir}")
    if result.met:
        console.print("[green]expected outcome met[/]")
    else:
        for problem in result.mismatches:
            console.print(f"[bold red]not as expected:[/] {problem}")


def _cell(result: ScenarioResult, name: str) -> str:
    check = next((c for c in result.checks if c.name == name), None)
    if check is None:
        return "-"
    want = result.expected.get(name)
    mark = "" if want is None or (check.passed is False) == (want is False) else " ✗"
    suffix = " (expected)" if want is False and check.passed is False else ""
    return f"{check.label}{suffix}{mark}"


def render_markdown(results: list[ScenarioResult]) -> str:
    header = ["scenario", *CHECKERS, "outcome", "time"]
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    for r in results:
        outcome = "met" if r.met else "**NOT MET**"
        cells = [f"`{r.name}`", *(_cell(r, n) for n in CHECKERS), outcome, f"{r.seconds:.0f} s"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for r in results:
        links = r.links
        frames = ""
        if links.dropped or links.duplicated or links.delayed or links.cut or links.refused:
            frames = (
                f"; proxies: {links.frames} frames, {links.dropped} dropped, "
                f"{links.duplicated} duplicated, {links.delayed} delayed, "
                f"{links.cut} connections cut, {links.refused} refused"
            )
        liveness = next((c.reason for c in r.checks if c.name == "liveness"), "")
        # Node folders are temporary: name them relative to the run's folder.
        notable = [
            e.split("s ", 1)[1].replace(r.workdir + "/", "") for e in r.events if _is_notable(e)
        ]
        lines.append(
            f"- `{r.name}` ({r.description}): head {r.height}, {r.acknowledged} of "
            f"{r.submitted} transfers acknowledged; liveness: {liveness}{frames}"
            + "".join(f"; {n}" for n in notable)
            + "."
        )
        lines.extend(f"  - not as expected: {m}" for m in r.mismatches)
    return "\n".join(lines) + "\n"


def _is_notable(event: str) -> bool:
    return any(
        word in event
        for word in (
            "refused to start",
            "stays down",
            "resync:",
            "restarted on the damaged",
            "SIGKILL node",
        )
    )
