"""Measured numbers in the docs come from a committed record: the page's table is the record's,
rendered, so a number edited by hand (or a record not rendered) fails here."""

import json

from conftest import ROOT

from bench.stop_signals import DOC, RECORD, with_table


def test_the_stop_signals_table_is_the_records():
    doc, record = (ROOT / DOC).read_text(), json.loads((ROOT / RECORD).read_text())
    assert with_table(doc, record) == doc, f"run python bench/stop_signals.py, or render {RECORD} into {DOC}"
    assert len(record["rows"]) == 4 and all(row["rerun_identical"] for row in record["rows"])


def test_the_check_fails_on_a_number_changed_by_hand():
    doc, record = (ROOT / DOC).read_text(), json.loads((ROOT / RECORD).read_text())
    seconds = f"| {record['rows'][0]['seconds_to_end']} |"
    assert seconds in doc
    edited = doc.replace(seconds, "| 0.1 |", 1)
    assert with_table(edited, record) != edited
