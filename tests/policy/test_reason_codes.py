"""One list of reason codes: the enum, the doc's tables and the Rego name the same codes."""

from __future__ import annotations

import re
from pathlib import Path

from fedsilo.policy import Reason

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "policy-input.md").read_text()
CODE = re.compile(r"`([a-z][a-z0-9_]*)`")


def _first_cells(text: str) -> set[str]:
    """Backticked codes in the first cell of every table row of ``text``."""
    codes: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            codes.update(CODE.findall(line.split("|")[1]))
    return codes


def _section(start: str, end: str) -> str:
    return DOC[DOC.index(start) : DOC.index(end)]


def _rego_codes() -> set[str]:
    codes: set[str] = set()
    for path in (ROOT / "policies").rglob("*.rego"):
        if path.name.endswith("_test.rego"):
            continue
        text = path.read_text()
        codes.update(re.findall(r'"([a-z][a-z0-9_]*): ', text))
        hub = re.search(r"hub_reasons := \{(.*?)\}", text, re.DOTALL)
        if hub:
            codes.update(re.findall(r'"([a-z][a-z0-9_]*)"', hub.group(1)))
    return codes


def test_the_enum_and_the_doc_name_the_same_codes() -> None:
    documented = _first_cells(_section("### Update reason codes", "## Parameters"))
    assert documented == {reason.value for reason in Reason}


def test_the_rego_names_every_code_except_those_decided_without_an_engine() -> None:
    without_engine = _first_cells(_section("### Refusals recorded without the engine", "## Job input"))
    assert without_engine == {"metadata_invalid", "no_open_round", "policy_unavailable", "rate_limited"}
    assert _rego_codes() == {reason.value for reason in Reason} - without_engine
