"""Noticing a transaction the homeserver left unsent (bridge/matrix/txn_gaps.py)."""

from __future__ import annotations

from bridge.matrix.txn_gaps import TransactionGaps


def stored_in_turn(gaps: TransactionGaps, *ids: str) -> None:
    for txn_id in ids:
        assert gaps.missing_before(txn_id) is None, txn_id
        gaps.stored(txn_id)


def test_consecutive_ids_are_never_refused() -> None:
    stored_in_turn(TransactionGaps(), "1", "2", "3", "4", "5")


def test_a_gap_is_refused_once_and_the_missing_one_then_fills_it() -> None:
    gaps = TransactionGaps()
    stored_in_turn(gaps, "243", "244")
    assert gaps.missing_before("246") == range(245, 246)
    # The homeserver's recovery sends the oldest stored transaction first, then this one.
    stored_in_turn(gaps, "245", "246", "247")


def test_several_missing_ones_are_named() -> None:
    gaps = TransactionGaps()
    stored_in_turn(gaps, "10", "11")
    assert gaps.missing_before("15") == range(12, 15)


def test_a_gap_that_never_fills_costs_one_refusal() -> None:
    gaps = TransactionGaps()
    stored_in_turn(gaps, "1", "2")
    assert gaps.missing_before("4") is not None
    stored_in_turn(gaps, "4", "5", "6")  # 3 never came: 4 is taken the second time


def test_no_refusal_before_the_homeserver_showed_it_numbers_consecutively() -> None:
    gaps = TransactionGaps()
    stored_in_turn(gaps, "100")  # the first one after a start of the bridge
    assert gaps.missing_before("102") is None
    gaps.stored("102")
    assert gaps.missing_before("110") is None  # 100, 102, 110: not one apart


def test_a_lower_id_starts_the_count_again() -> None:
    # Synapse on SQLite counts from its stored transactions again after a restart.
    gaps = TransactionGaps()
    stored_in_turn(gaps, "500", "501", "502", "1")
    assert gaps.missing_before("3") is None
    stored_in_turn(gaps, "3", "4")
    assert gaps.missing_before("6") == range(5, 6)


def test_a_replay_of_the_last_one_changes_nothing() -> None:
    gaps = TransactionGaps()
    stored_in_turn(gaps, "7", "8", "8")
    assert gaps.missing_before("10") == range(9, 10)


def test_ids_that_are_not_numbers_are_never_refused() -> None:
    gaps = TransactionGaps()
    stored_in_turn(gaps, "1", "2", "abc", "3", "5", "txn-9", "٣")
    assert gaps.missing_before("12") is None


def test_a_gap_left_while_the_bridge_was_away_is_seen_after_its_restart() -> None:
    gaps = TransactionGaps()
    gaps.seed(["30", "31", "32"])  # stored before the restart
    assert gaps.missing_before("34") == range(33, 34)
    stored_in_turn(gaps, "33", "34")
