"""The arithmetic of call credits, without I/O: rates, reservations, charges and amounts.

Amounts are integers of micro-units of the account's currency (1 unit = 1_000_000), so
no sum ever rounds. A call is charged per second: its duration is rounded up to a whole
second, and the charge up to a micro-unit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

MICROS_PER_UNIT = 1_000_000
# Largest amount a command accepts (units): far from overflowing bigint sums.
MAX_AMOUNT_UNITS = 1_000_000_000
# A rate prefix: '+' then up to 15 digits ('+' alone matches every number).
_PREFIX = re.compile(r"\+[0-9]{0,15}")
_AMOUNT = re.compile(r"[0-9]+(\.[0-9]+)?")


class AmountError(ValueError):
    """A written amount or prefix that is not valid (the message says why)."""


def billed_seconds(duration_ms: int) -> int:
    """Whole seconds charged for a call of `duration_ms` (rounded up; 0 for none)."""
    return -(-max(duration_ms, 0) // 1000)


def charge(duration_ms: int, rate_per_minute: int) -> int:
    """What a call of `duration_ms` costs at `rate_per_minute`, rounded up to a micro-unit."""
    return -(-billed_seconds(duration_ms) * rate_per_minute // 60)


def settle_amount(duration_ms: int, rate_per_minute: int, reserved: int) -> int:
    """The charge for the call, never more than was reserved for it."""
    return min(charge(duration_ms, rate_per_minute), reserved)


def seconds_paid(reserved: int, rate_per_minute: int) -> int:
    """How many whole seconds `reserved` pays for at `rate_per_minute` (rate > 0)."""
    return reserved * 60 // rate_per_minute


@dataclass(frozen=True)
class Reservation:
    reserved: int
    max_seconds: int


def plan_reservation(
    available: int, rate_per_minute: int, max_call_seconds: int
) -> Reservation | None:
    """What to hold for a call, or None when `available` cannot pay for one minute.

    A free destination (rate 0) holds nothing and may last the longest call. Otherwise hold
    the cost of the longest call, or all that is available when that is less, and grant
    the seconds the held amount pays for.
    """
    if rate_per_minute < 0:
        raise ValueError(f"a rate is 0 or more, not {rate_per_minute}")
    if rate_per_minute == 0:
        return Reservation(reserved=0, max_seconds=max_call_seconds)
    if available < rate_per_minute:
        return None
    reserved = min(available, charge(max_call_seconds * 1000, rate_per_minute))
    return Reservation(
        reserved=reserved,
        max_seconds=min(seconds_paid(reserved, rate_per_minute), max_call_seconds),
    )


def candidate_prefixes(number: str) -> list[str]:
    """Every rate prefix that could match an E.164 number, longest first ('+' last)."""
    return [number[:end] for end in range(len(number), 0, -1)]


def longest_prefix(number: str, prefixes: Iterable[str]) -> str | None:
    """The longest of `prefixes` that `number` starts with, or None."""
    matching = [prefix for prefix in prefixes if number.startswith(prefix)]
    return max(matching, key=len, default=None)


def check_prefix(prefix: str) -> str:
    prefix = prefix.strip()
    if not _PREFIX.fullmatch(prefix):
        raise AmountError(
            f"prefix {prefix[:32]!r} is not '+' then up to 15 digits (e.g. +1415, or + for "
            "every number)"
        )
    return prefix


def parse_amount(text: str, what: str = "amount") -> int:
    """Units written in decimal ('12.50', at most 6 decimals) as micro-units; 0 or more."""
    text = text.strip()
    if not _AMOUNT.fullmatch(text):
        raise AmountError(f"{what} {text[:32]!r} is not a number of units like 12.50")
    try:
        value = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already said no
        raise AmountError(f"{what} {text[:32]!r} is not a number") from exc
    micros = value * MICROS_PER_UNIT
    if micros != micros.to_integral_value():
        raise AmountError(f"{what} {text} has more than 6 decimals (a micro-unit is 0.000001)")
    if value > MAX_AMOUNT_UNITS:
        raise AmountError(f"{what} {text} is more than {MAX_AMOUNT_UNITS} units")
    return int(micros)


def format_amount(micros: int) -> str:
    """Micro-units as units: 1_240_000 -> '1.24', 500 -> '0.0005', -2_000_000 -> '-2.00'."""
    sign = "-" if micros < 0 else ""
    units, rest = divmod(abs(micros), MICROS_PER_UNIT)
    decimals = f"{rest:06d}".rstrip("0").ljust(2, "0")
    return f"{sign}{units}.{decimals}"
