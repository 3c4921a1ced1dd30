"""The arithmetic of call credits: charges per second, reservations, prefixes, amounts."""

from __future__ import annotations

import pytest

from parley_auth import credits
from parley_auth.credits import Reservation

UNIT = 1_000_000
FOUR_HOURS = 4 * 3600


def test_a_call_is_charged_per_started_second_rounded_up_to_a_micro_unit() -> None:
    assert credits.billed_seconds(0) == 0
    assert credits.billed_seconds(1) == 1
    assert credits.billed_seconds(1000) == 1
    assert credits.billed_seconds(61_200) == 62
    assert credits.billed_seconds(-5) == 0
    # 61.2 s at 1.20 per minute: 62 s, 1.24.
    assert credits.charge(61_200, 1_200_000) == 1_240_000
    assert credits.charge(60_000, 1_200_000) == 1_200_000
    # One second at 0.01 per minute is 166.66... micro-units: 167.
    assert credits.charge(1000, 10_000) == 167
    assert credits.charge(1000, 1) == 1  # never rounded down to nothing
    assert credits.charge(0, 1_200_000) == 0
    assert credits.charge(3_600_000, 0) == 0


def test_a_settlement_never_charges_more_than_was_reserved() -> None:
    assert credits.settle_amount(61_200, 1_200_000, 5 * UNIT) == 1_240_000
    assert credits.settle_amount(3_600_000, 1_200_000, 5 * UNIT) == 5 * UNIT
    assert credits.settle_amount(10_000, 0, 0) == 0


def test_a_reservation_holds_the_longest_call_or_what_is_available() -> None:
    rate = 1_200_000  # 1.20 per minute; four hours cost 288.00
    assert credits.plan_reservation(1_199_999, rate, FOUR_HOURS) is None
    # Exactly one minute available.
    assert credits.plan_reservation(rate, rate, FOUR_HOURS) == Reservation(rate, 60)
    # 5.00 pays for 250 s (4.1666 minutes).
    assert credits.plan_reservation(5 * UNIT, rate, FOUR_HOURS) == Reservation(5 * UNIT, 250)
    # More than four hours' worth: hold four hours' cost only.
    assert credits.plan_reservation(1000 * UNIT, rate, FOUR_HOURS) == Reservation(
        288 * UNIT, FOUR_HOURS
    )
    # The seconds granted never cost more than the amount held.
    for available in (1_234_567, 1_234_568, 7_777_777, 123_456_789):
        plan = credits.plan_reservation(available, 1_234_567, FOUR_HOURS)
        assert plan is not None
        assert credits.charge(plan.max_seconds * 1000, 1_234_567) <= plan.reserved <= available
        assert credits.charge((plan.max_seconds + 1) * 1000, 1_234_567) > plan.reserved


def test_a_free_destination_holds_nothing_and_may_last_the_longest_call() -> None:
    assert credits.plan_reservation(0, 0, FOUR_HOURS) == Reservation(0, FOUR_HOURS)
    with pytest.raises(ValueError):
        credits.plan_reservation(UNIT, -1, FOUR_HOURS)


def test_the_longest_matching_prefix_gives_the_rate() -> None:
    number = "+14155550101"
    assert credits.candidate_prefixes(number)[:3] == ["+14155550101", "+1415555010", "+141555501"]
    assert credits.candidate_prefixes(number)[-2:] == ["+1", "+"]
    assert len(credits.candidate_prefixes(number)) == len(number)
    table = ["+1", "+1415", "+14", "+44", "+", "+14155550102"]
    assert credits.longest_prefix(number, table) == "+1415"
    assert credits.longest_prefix("+442071234567", table) == "+44"
    assert credits.longest_prefix("+33123456789", table) == "+"
    assert credits.longest_prefix("+33123456789", ["+1", "+44"]) is None
    assert credits.longest_prefix(number, []) is None


def test_prefixes_are_plus_and_digits() -> None:
    assert credits.check_prefix(" +1415 ") == "+1415"
    assert credits.check_prefix("+") == "+"
    for bad in ("1415", "+14a", "++1", "+" + "1" * 16, ""):
        with pytest.raises(credits.AmountError):
            credits.check_prefix(bad)


def test_amounts_are_written_in_units_and_kept_in_micro_units() -> None:
    assert credits.parse_amount("12.50") == 12_500_000
    assert credits.parse_amount("0.000001") == 1
    assert credits.parse_amount("3") == 3 * UNIT
    assert credits.parse_amount("0") == 0
    for bad in ("-1", "1.0000001", "1e3", "12,50", "", ".5", "nan", "1000000001"):
        with pytest.raises(credits.AmountError):
            credits.parse_amount(bad)
    assert credits.format_amount(1_240_000) == "1.24"
    assert credits.format_amount(12_500_000) == "12.50"
    assert credits.format_amount(0) == "0.00"
    assert credits.format_amount(500) == "0.0005"
    assert credits.format_amount(-1_240_000) == "-1.24"
    assert credits.format_amount(1_234_567) == "1.234567"
    for micros in (1, 99, 1_000_000, 123_456_789):
        assert credits.parse_amount(credits.format_amount(micros)) == micros
