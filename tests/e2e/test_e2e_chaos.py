"""End-to-end: the short chaos profile, real node processes behind the fault proxies.

Each scenario in ``SHORT_PROFILE`` runs as ``civic chaos run`` would and must meet the
outcome its manifest expects, including the fork scenario, where the agreement and
equivocation checkers must *fail*. The full matrix (``civic chaos matrix chaos/scenarios``)
is too long for the suite; its results are in ``docs/reliability.md``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from civicledger.chaos.faults import find_libfaketime
from civicledger.chaos.manifest import load_manifest
from civicledger.chaos.runner import run_scenario
from tests.e2e.harness import civic

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "chaos" / "scenarios"
SHORT_PROFILE = ["partition-minority", "kill-restart", "drop-duplicate", "clock-skew"]


@pytest.fixture(scope="module", autouse=True)
def faketime() -> None:
    """The clock-skew scenario needs libfaketime; the project's script installs it."""
    if find_libfaketime() is None:
        subprocess.run([str(ROOT / "scripts" / "install-faketime.sh")], check=True, timeout=600)
    assert find_libfaketime() is not None


@pytest.mark.parametrize("name", SHORT_PROFILE)
def test_e2e_chaos_short_profile(name: str, tmp_path: Path) -> None:
    manifest = load_manifest(SCENARIOS / f"{name}.toml")
    result = asyncio.run(run_scenario(manifest, tmp_path / name))
    assert result.met, "\n".join([*result.mismatches, *result.events])
    checks = {c.name: c for c in result.checks}
    assert checks["agreement"].passed is True
    assert checks["durability"].passed is True, checks["durability"].reason
    assert result.acknowledged > 50


def test_e2e_chaos_fork_is_caught_by_the_agreement_checker(tmp_path: Path) -> None:
    result = civic(
        "chaos",
        "run",
        str(SCENARIOS / "fork-shared-key.toml"),
        "--json",
        "--workdir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["agreement"]["result"] == "FAIL"
    assert checks["agreement"]["reason"].startswith("fork at height")
    assert checks["no_equivocation"]["result"] == "FAIL"
    assert checks["validity"]["result"] == "pass"


def test_e2e_chaos_run_exits_non_zero_when_the_outcome_is_not_met(tmp_path: Path) -> None:
    manifest = (SCENARIOS / "fork-shared-key.toml").read_text()
    # The same fork, but this manifest claims the nodes agree: the run must say no.
    wrong = (
        manifest.split("[expect]")[0]
        + '[expect]\nignore = ["durability", "liveness", "state", "no_equivocation"]\n'
    )
    path = tmp_path / "claims-agreement.toml"
    path.write_text(wrong.replace("duration_s = 8", "duration_s = 4"))
    result = civic("chaos", "run", str(path), "--workdir", str(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "agreement failed: fork at height" in " ".join(result.stdout.split())


def test_e2e_chaos_run_refuses_a_bad_manifest(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\nduration_s = 5\n[network]\nvalidators = 4\npowers = [1]\n')
    result = civic("chaos", "run", str(path))
    assert result.returncode == 1
    assert "error: bad.toml: network.powers must list 4 positive integers" in result.stderr
