"""Faults with real processes: three senders on one issue, one killed with SIGKILL mid-batch.
(`benchmarks/senders_faults.py` runs the same ten times and more.)"""

from __future__ import annotations

from pathlib import Path

from helpers.senders import kill_one_of_three_senders


def test_three_senders_one_killed_mid_batch_every_reader_gets_it_and_only_in_flight_ones_twice(
    tmp_path: Path, database_url: str
) -> None:
    outcome = kill_one_of_three_senders(tmp_path, database_url)
    assert outcome.exit_codes == [0, 0], outcome.outputs
    assert sorted(outcome.copies) == outcome.active  # every subscriber delivered, nobody else
    assert all(len(set(ids)) == 1 for ids in outcome.copies.values())  # a second copy: same Message-ID
    twice = {recipient for recipient, ids in outcome.copies.items() if len(ids) > 1}
    assert outcome.resent  # it was killed with messages handed over and unanswered
    assert twice <= outcome.resent  # only those may arrive twice
    assert outcome.statuses == {"delivered"}
