"""Chaos manifests: the shipped scenarios load, and mistakes are named by their field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from civicledger.chaos.manifest import ManifestError, load_manifest, parse_manifest

SCENARIOS = Path(__file__).resolve().parents[2] / "chaos" / "scenarios"


def base(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "t",
        "duration_s": 10,
        "network": {"validators": 4},
        "fault": [{"kind": "kill", "node": 1, "start_s": 2, "duration_s": 3}],
    }
    doc.update(changes)
    return doc


def test_chaos_manifest_shipped_scenarios_load() -> None:
    paths = sorted(SCENARIOS.glob("*.toml"))
    assert len(paths) >= 5
    names = {load_manifest(p).name for p in paths}
    assert "fork-shared-key" in names


def test_chaos_manifest_defaults_and_expectations() -> None:
    m = parse_manifest(
        base(
            network={"validators": 3, "powers": [1, 1, 3]},
            node=[{"index": 3, "key_of": 2}],
            expect={"fork": True, "ignore": ["liveness"]},
        )
    )
    assert [n.key_of for n in m.nodes] == [0, 1, 2, 2]
    assert m.expect.expects("agreement") is False
    assert m.expect.expects("liveness") is None
    assert m.expect.expects("validity") is True
    assert m.faults[0].end_s == 5


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (base(duration_s="ten"), "duration_s must be a number"),
        (base(network={"validators": 4, "powers": [1, 2]}), "network.powers must list 4"),
        (base(fault=[{"kind": "flood", "start_s": 1}]), "fault[0].kind must be one of"),
        (base(fault=[{"kind": "kill", "node": 9, "start_s": 1}]), "fault[0].node must be"),
        (
            base(fault=[{"kind": "kill", "node": 1, "start_s": 8, "duration_s": 5}]),
            "fault[0].duration_s: the fault ends after the run",
        ),
        (
            base(fault=[{"kind": "partition", "start_s": 1, "groups": [[0, 1], [2]]}]),
            "fault[0].groups must place every node",
        ),
        (
            base(fault=[{"kind": "drop", "start_s": 1, "probability": 2}]),
            "fault[0].probability must be between 0 and 1",
        ),
        (base(fault=[{"kind": "pause", "node": 1, "start_s": 1}]), "duration_s is required"),
        (base(node=[{"index": 5, "key_of": 0}]), "node indexes must run 0..4"),
        (base(node=[{"index": 4}]), "node[0].key_of must name a validator"),
        (base(node=[{"index": 1, "byzantine": "lie"}]), "node[0].byzantine must be one of"),
        (base(expect={"speed": True}), "expect.speed is not a checker"),
        (base(load={"rate": 10, "burst": 3}), "unknown field load.burst"),
        (base(colour="red"), "unknown field colour"),
    ],
)
def test_chaos_manifest_errors_name_the_field(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(doc)
    assert message in info.value.message


def test_chaos_manifest_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\nduration_s = 10\n[network]\nvalidators = 0\n')
    with pytest.raises(ManifestError, match=r"bad.toml: network.validators must be between"):
        load_manifest(path)
    path.write_text("name = \n")
    with pytest.raises(ManifestError, match="not valid TOML"):
        load_manifest(path)
