"""How exact counts over a time range are read: the cheapest signed sum of rollup
buckets (days, hours) and raw rows.

Counts are additive, so a partial bucket can be read either as the rows inside the
range, or as the whole bucket minus the rows outside it: the last 24 hours are today's
day bucket (the rest of today has not happened yet), plus yesterday's day bucket minus
its first hours, instead of 23 hourly buckets and two partial hours of rows. Both forms
are exact because the rollups are kept in the same transaction as the rows. The choice
between them only changes the cost, estimated from how much each source holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)

Source = Literal["day", "hour", "rows"]
_SOURCE_OF: dict[timedelta, Source] = {DAY: "day", HOUR: "hour"}
# Relative read cost of one bucket, and of an hour of rows: an hour bucket holds at most
# one row per user, a day bucket a few times that, an hour of rows several per user.
_BUCKET_COST = {DAY: 2.0, HOUR: 1.0}
_ROWS_PER_HOUR_COST = 4.0


@dataclass(frozen=True, slots=True)
class Term:
    """`sign` times the counts of `source` over lo <= time < hi (bucket-aligned for
    rollups)."""

    sign: int
    source: Source
    lo: datetime
    hi: datetime


def plan(start: datetime, end: datetime, widths: tuple[timedelta, ...], now: datetime) -> (
    list[Term]
):  # fmt: skip
    """Terms whose signed sum counts exactly the events in [start, end).

    `widths` are the rollup bucket widths available (coarsest first, among DAY and
    HOUR); rows fill in the rest. Time after `now` is taken as nearly empty, so the
    part of a bucket still in the future costs nothing to subtract.
    """
    return _plan(start, end, widths, now, 1)[1]


def _plan(
    lo: datetime, hi: datetime, widths: tuple[timedelta, ...], now: datetime, sign: int
) -> tuple[float, list[Term]]:
    if lo >= hi:
        return 0.0, []
    best = (_rows_cost(lo, hi, now), [Term(sign, "rows", lo, hi)])
    if not widths:
        return best
    width, finer = widths[0], widths[1:]
    options = [_plan(lo, hi, finer, now, sign)]
    inner_lo, inner_hi = _ceil(lo, width), _floor(hi, width)
    if inner_lo <= inner_hi:
        # Whole buckets in the middle; each partial end added finely, or taken whole
        # with the part outside the range subtracted.
        middle = _buckets(inner_lo, inner_hi, width, now, sign)
        heads = [_plan(lo, inner_lo, finer, now, sign)]
        if lo < inner_lo:
            head = inner_lo - width
            heads.append(_join(_buckets(head, inner_lo, width, now, sign),
                               _plan(head, lo, finer, now, -sign)))  # fmt: skip
        tails = [_plan(inner_hi, hi, finer, now, sign)]
        if inner_hi < hi:
            tail = inner_hi + width
            tails.append(_join(_buckets(inner_hi, tail, width, now, sign),
                               _plan(hi, tail, finer, now, -sign)))  # fmt: skip
        options.append(_join(middle, min(heads, key=_cost), min(tails, key=_cost)))
    else:  # inside one bucket: the whole bucket minus both sides
        bucket = _floor(lo, width)
        options.append(_join(_buckets(bucket, bucket + width, width, now, sign),
                             _plan(bucket, lo, finer, now, -sign),
                             _plan(hi, bucket + width, finer, now, -sign)))  # fmt: skip
    return min([best, *options], key=_cost)


def _buckets(
    lo: datetime, hi: datetime, width: timedelta, now: datetime, sign: int
) -> tuple[float, list[Term]]:
    if lo >= hi:
        return 0.0, []
    live = max(lo, min(hi, _ceil(now, width))) - lo
    return _BUCKET_COST[width] * (live / width), [Term(sign, _SOURCE_OF[width], lo, hi)]


def _rows_cost(lo: datetime, hi: datetime, now: datetime) -> float:
    past = max(lo, min(hi, now)) - lo
    return _ROWS_PER_HOUR_COST * (past / HOUR)


def _join(*parts: tuple[float, list[Term]]) -> tuple[float, list[Term]]:
    return sum(p[0] for p in parts), [t for p in parts for t in p[1]]


def _cost(option: tuple[float, list[Term]]) -> float:
    return option[0]


def _floor(t: datetime, width: timedelta) -> datetime:
    return _ORIGIN + (t - _ORIGIN) // width * width


def _ceil(t: datetime, width: timedelta) -> datetime:
    floor = _floor(t, width)
    return floor if floor == t else floor + width


def union_of(sources: dict[str, str], terms: list[Term], args: list[Any]) -> str:
    """The UNION ALL of each term's signed counts; its bounds appended to `args`."""
    selects = []
    for term in terms:
        args += [term.lo, term.hi]
        selects.append(
            sources[term.source].format(sign=term.sign, lo=f"${len(args) - 1}", hi=f"${len(args)}")
        )
    return " UNION ALL ".join(selects)
