"""`civic contract new` scaffolds a contract and its tests; `civic contract test` runs them."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from civicledger.cli.main import cli
from civicledger.contracts.sandbox import compile_contract
from civicledger.testing import LocalChain


def test_scaffold_compiles_and_its_tests_pass(tmp_path):
    result = CliRunner().invoke(cli, ["contract", "new", "permits", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    source = (tmp_path / "permits.py").read_text()
    compile_contract(source, name="permits")
    run = subprocess.run(
        [sys.executable, "-m", "civicledger", "contract", "test", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
    again = CliRunner().invoke(cli, ["contract", "new", "permits", "--dir", str(tmp_path)])
    assert again.exit_code == 1 and "exists" in again.output
    bad = CliRunner().invoke(cli, ["contract", "new", "Bad-Name", "--dir", str(tmp_path)])
    assert bad.exit_code == 1


def test_local_chain_reports_the_contracts_own_line_on_failure():
    chain = LocalChain()
    source = (
        "class Broken:\n    @call\n    def go(self, ctx, args):\n        require(False, 'no')\n"
    )
    assert chain.deploy("broken", source).ok
    receipt = chain.call("broken", "go")
    assert not receipt.ok
    assert receipt.error_message.startswith("line 4:")
