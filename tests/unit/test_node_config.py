"""Node configuration: sections and settings are written, read back and validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from civicledger.errors import DecodeError
from civicledger.node.config import BYZANTINE_MODES, NodeConfig, load_config, render_config


def _write(tmp_path: Path, config: NodeConfig) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(render_config(config))
    return path


def test_config_honest_node_has_no_byzantine_section(tmp_path: Path) -> None:
    path = _write(tmp_path, NodeConfig(home=tmp_path, name="n"))
    assert "[byzantine]" not in path.read_text()
    assert load_config(path).byzantine is None


@pytest.mark.parametrize("mode", BYZANTINE_MODES)
def test_config_byzantine_mode_round_trips(tmp_path: Path, mode: str) -> None:
    path = _write(tmp_path, NodeConfig(home=tmp_path, byzantine=mode))
    assert f'mode = "{mode}"' in path.read_text()
    assert load_config(path).byzantine == mode


def test_config_unknown_byzantine_mode_is_refused_with_the_choices(tmp_path: Path) -> None:
    path = _write(tmp_path, NodeConfig(home=tmp_path))
    path.write_text(path.read_text() + '\n[byzantine]\nmode = "double-vote"\n')
    with pytest.raises(DecodeError) as info:
        load_config(path)
    message = str(info.value)
    assert "double-vote" in message and "double-sign" in message and str(path) in message


def test_config_byzantine_section_needs_a_mode(tmp_path: Path) -> None:
    path = _write(tmp_path, NodeConfig(home=tmp_path))
    path.write_text(path.read_text() + "\n[byzantine]\nmodes = 1\n")
    with pytest.raises(DecodeError, match="byzantine"):
        load_config(path)
    path.write_text(
        _write(tmp_path, NodeConfig(home=tmp_path)).read_text() + "\n[byzantine]\nmode = 3\n"
    )
    with pytest.raises(DecodeError, match="mode must be one of"):
        load_config(path)


def test_config_unknown_mode_refused_when_built_in_code() -> None:
    with pytest.raises(DecodeError, match="unknown"):
        NodeConfig(home=Path("."), byzantine="lie")


def test_config_verify_workers_round_trips_and_is_bounded(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, NodeConfig(home=tmp_path))).verify_workers == 0
    path = _write(tmp_path, NodeConfig(home=tmp_path, verify_workers=3))
    assert "verify_workers = 3" in path.read_text()
    assert load_config(path).verify_workers == 3
    for bad in ("-1", "17", '"2"', "1.5"):
        path.write_text(path.read_text().replace("verify_workers = 3", f"verify_workers = {bad}"))
        with pytest.raises(DecodeError, match="verify_workers must be a whole number"):
            load_config(path)
        path.write_text(path.read_text().replace(f"verify_workers = {bad}", "verify_workers = 3"))
