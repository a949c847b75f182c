"""The chaos results: expected failures count as met, unexpected ones are named."""

from __future__ import annotations

from civicledger.chaos.checkers import CheckResult
from civicledger.chaos.manifest import CHECKERS
from civicledger.chaos.report import render_markdown
from civicledger.chaos.runner import ScenarioResult


def result(agreement: bool | None, expect_agreement: bool | None) -> ScenarioResult:
    checks = [CheckResult(n, True, "ok") for n in CHECKERS]
    checks[0] = CheckResult("agreement", agreement, "fork at height 3")
    expected: dict[str, bool | None] = dict.fromkeys(CHECKERS, True)
    expected["agreement"] = expect_agreement
    return ScenarioResult("s", "a scenario", checks, expected, 12.0)


def test_chaos_report_expected_failure_is_met() -> None:
    r = result(False, False)
    assert r.met
    assert "FAIL (expected)" in render_markdown([r])


def test_chaos_report_unexpected_failure_and_unexpected_pass_are_not_met() -> None:
    failed = result(False, True)
    assert failed.mismatches == ["agreement failed: fork at height 3"]
    passed = result(True, False)
    assert not passed.met and "expected to fail" in passed.mismatches[0]
    table = render_markdown([failed, passed])
    assert table.count("**NOT MET**") == 2
    assert "FAIL ✗" in table


def test_chaos_report_ignored_checker_never_decides() -> None:
    assert result(False, None).met and result(True, None).met


def test_chaos_report_error_is_not_met() -> None:
    r = result(True, True)
    r.error = "scenario could not run: node2 did not answer within 60 s"
    assert not r.met and r.to_json()["met"] is False
