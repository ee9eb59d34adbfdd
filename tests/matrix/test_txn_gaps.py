"""Noticing a transaction the homeserver left unsent (bridge/matrix/txn_gaps.py)."""

from __future__ import annotations

from bridge.matrix.txn_gaps import CONSECUTIVE_NEEDED, TransactionGaps


def stored_in_turn(gaps: TransactionGaps, *ids: str) -> None:
    for txn_id in ids:
        assert gaps.missing_before(txn_id) is None, txn_id
        gaps.stored(txn_id)


def run_up_to(last: int) -> list[str]:
    """A run of ids one apart, long enough for a gap after it to be believed."""
    return [str(n) for n in range(last - CONSECUTIVE_NEEDED + 1, last + 1)]


def after_a_run(last: int) -> TransactionGaps:
    gaps = TransactionGaps()
    stored_in_turn(gaps, *run_up_to(last))
    return gaps


def test_consecutive_ids_are_never_refused() -> None:
    stored_in_turn(TransactionGaps(), *run_up_to(100), "101", "102")


def test_a_gap_is_refused_once_and_the_missing_one_then_fills_it() -> None:
    gaps = after_a_run(244)
    assert gaps.missing_before("246") == range(245, 246)
    # The homeserver's recovery sends the oldest stored transaction first, then this one.
    stored_in_turn(gaps, "245", "246", "247")
    assert not gaps.numbered_with_gaps
    assert gaps.missing_before("249") == range(248, 249)  # and the next hole is seen too


def test_several_missing_ones_are_named() -> None:
    assert after_a_run(30).missing_before("34") == range(31, 34)


def test_a_refusal_that_brings_back_the_same_one_means_gaps_are_normal_here() -> None:
    # Synapse numbers the transactions of all its appservices with one counter: beside other
    # bridges a gap is no loss. The recovery then sends the refused one itself.
    gaps = after_a_run(50)
    assert gaps.missing_before("52") is not None
    stored_in_turn(gaps, "52", *run_up_to(200), "203", "210")
    assert gaps.numbered_with_gaps


def test_no_refusal_before_a_long_run_of_consecutive_ids() -> None:
    gaps = TransactionGaps()
    stored_in_turn(gaps, *[str(n) for n in range(1, CONSECUTIVE_NEEDED)])  # one short
    assert gaps.missing_before(str(CONSECUTIVE_NEEDED + 1)) is None


def test_a_lower_id_starts_the_count_again() -> None:
    # Synapse on SQLite counts from its stored transactions again after a restart.
    gaps = after_a_run(500)
    stored_in_turn(gaps, "1")
    assert gaps.missing_before("3") is None
    stored_in_turn(gaps, "3", *run_up_to(40))
    assert gaps.missing_before("42") == range(41, 42)


def test_a_replay_of_the_last_one_changes_nothing() -> None:
    gaps = after_a_run(70)
    stored_in_turn(gaps, "70")
    assert gaps.missing_before("72") == range(71, 72)


def test_ids_that_are_not_numbers_are_never_refused() -> None:
    gaps = after_a_run(90)
    stored_in_turn(gaps, "abc", "91", "93", "txn-9", "٣", "95")
    assert gaps.missing_before("99") is None


def test_a_gap_left_while_the_bridge_was_away_is_seen_after_its_restart() -> None:
    gaps = TransactionGaps()
    gaps.seed(run_up_to(32))  # stored before the restart
    assert gaps.missing_before("34") == range(33, 34)
    stored_in_turn(gaps, "33", "34")
