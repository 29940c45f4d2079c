"""The README's decision table, alert contract and Events name exactly the contract's enums.

A reason added to the code but not the README (or documented but never produced) fails here, so
the table users read and the strings the metrics, audit and logs carry cannot drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

from webhook.contract import EventReason, FailReason, Outcome, SkipReason, Trigger

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
TICKED = re.compile(r"`([^`]+)`")


def _table_after(heading: str) -> list[list[str]]:
    """The cells of the first markdown table following `heading` (header and rule dropped)."""
    section = README.split(heading, 1)[1]
    rows: list[list[str]] = []
    for line in section.splitlines():
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    return rows[2:]


DECISION_ROWS = _table_after("## How a decision is made")


def _reasons_of(outcome: str) -> list[str]:
    found: list[str] = []
    for cells in DECISION_ROWS:
        if cells[0] == f"`{outcome}`":
            found.extend(TICKED.findall(cells[1]))
    return found


def test_decision_table_names_every_outcome_and_only_those():
    outcomes = [TICKED.findall(cells[0])[0] for cells in DECISION_ROWS]
    assert sorted(set(outcomes)) == sorted(Outcome)


def test_decision_table_skip_reasons_are_the_enum_in_its_order():
    # The enum lists the reasons in the order the policy checks them, as the table does.
    assert _reasons_of("skipped") == list(SkipReason)


def test_decision_table_fail_reasons_are_the_enum():
    assert sorted(_reasons_of("failed")) == sorted(FailReason)


def test_acting_outcomes_have_no_reason():
    for outcome in (Outcome.DRY_RUN, Outcome.ROLLED_BACK):
        assert _reasons_of(outcome) == []


def test_alert_contract_names_every_trigger():
    contract_line = re.search(r"`rollback_trigger`\s*\(([^)]*)\)", README)
    assert contract_line is not None
    assert sorted(TICKED.findall(contract_line.group(1))) == sorted(Trigger)


def test_rules_table_names_every_trigger():
    rows = _table_after("## Alerting rules")
    assert sorted(TICKED.findall(cells[1])[0] for cells in rows) == sorted(Trigger)


def test_events_line_names_every_event_reason():
    events = re.search(r"Events: (.*?)\.\n", README, flags=re.S)
    assert events is not None
    assert sorted(TICKED.findall(events.group(1))) == sorted(EventReason)
