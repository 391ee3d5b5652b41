"""Modality worklist matching: a C-FIND identifier → :class:`MWLQuery` → SQL (sans-I/O).

:meth:`MWLQuery.from_identifier` reads the matching keys (:mod:`channels.dicom_mwl.keys`) from
the top level and from the first item of the Scheduled Procedure Step Sequence. The query then
answers three ways, which must agree (a hypothesis test checks it):

- :meth:`MWLQuery.where` — the SQL condition over ``worklist w`` that the store runs;
- :meth:`MWLQuery.accepts` — the keys SQL does not evaluate, checked on each stored item;
- :meth:`MWLQuery.matches` — the whole query as a Python predicate on a stored item: the
  reference the SQL is tested against.

Rules beyond single/wildcard/range/list matching:

- SPS Start Date and Time together are one combined date-time range (``20240406`` with
  ``1600-1700`` is 16:00 to 17:00 on that day; ``D1-D2`` with ``T1-T2`` runs from D1 T1 to
  D2 T2), as dcm4chee and DCMTK do; time alone is matched against the time of day.
- Scheduled Station AE Title is multi-valued in storage and matched as a set: ``AB45`` finds a
  step scheduled on ``AB45\\DD56``.
- Steps whose SPS Status is in ``hidden_statuses`` (by default STARTED, DEPARTED, CANCELED,
  DISCONTINUED, COMPLETED) are left out unless the query itself matches on SPS Status.
- With ``calling_ae`` given (station coercion), a query without a Scheduled Station AE Title
  value is restricted to the calling AE title.
- An empty stored value never matches a non-universal key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset

from channels.dicom_mwl.identifier import QueryElement, from_dataset
from channels.dicom_mwl.keys import (
    KEYS,
    START_DATE,
    START_TIME,
    STATION,
    STATUS,
    Alternative,
    Exact,
    Key,
    Pattern,
    Range,
    alternatives,
    date_ranges,
    time_ranges,
)
from engine.dicom.values import (
    TIME_MAX,
    clean,
    normalize_da,
    normalize_pn,
    normalize_tm,
    split_values,
    sps_start,
)
from engine.store.worklist import SCHEDULED, SPS

DEFAULT_HIDDEN = frozenset({"STARTED", "DEPARTED", "CANCELED", "DISCONTINUED", "COMPLETED"})


@dataclass(frozen=True, slots=True)
class Condition:
    """One matching key with its alternatives (any may match)."""

    key: Key
    alts: tuple[Alternative, ...]
    column: str | None = None
    """Overrides ``key.column`` (the combined start uses ``sps_start``)."""

    @property
    def target(self) -> str | None:
        return self.column or self.key.column


def _combined_start(date_raw: object, time_raw: object) -> Condition | None:
    dates = date_ranges(date_raw, START_DATE.keyword)
    times = time_ranges(time_raw, START_TIME.keyword)
    if not dates and not times:
        return None
    if not dates:
        alts = tuple(Range(lo or "0", hi or "~") for lo, hi in times)
        return Condition(START_TIME, alts, "sps_start_time")
    ranges: list[Alternative] = []
    for dlo, dhi in dates:
        for tlo, thi in times or [("", "")]:
            low = dlo + tlo if dlo else "0"
            high = dhi + (thi or TIME_MAX) if dhi else "~"
            ranges.append(Range(low, high))
    return Condition(START_DATE, tuple(ranges), "sps_start")


def _stored_text(key: Key, item: Mapping[str, Any], step: Mapping[str, Any]) -> str:
    source = step if key.level == "sps" else item
    raw = source.get(key.keyword)
    if key.vr == "PN":
        return normalize_pn(raw)
    if key.vr == "DA":
        return normalize_da(raw)
    if key.vr == "TM":
        return normalize_tm(raw)
    return clean(raw)


def _first_step(item: Mapping[str, Any]) -> Mapping[str, Any]:
    seq = item.get(SPS)
    if isinstance(seq, list) and seq and isinstance(seq[0], Mapping):
        return seq[0]
    return {}


@dataclass(frozen=True)
class MWLQuery:
    """The matching part of one worklist C-FIND request."""

    conditions: tuple[Condition, ...] = ()
    hidden_statuses: frozenset[str] = DEFAULT_HIDDEN
    ignored: tuple[str, ...] = ()
    """Keywords that carried a value but are not matching keys (answered as return keys)."""
    _python: tuple[Condition, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_python", tuple(c for c in self.conditions if not c.target))

    # -- building ---------------------------------------------------------------------
    @classmethod
    def from_identifier(
        cls, ds: Dataset, *, calling_ae: str | None = None,
        hidden_statuses: frozenset[str] = DEFAULT_HIDDEN,
    ) -> MWLQuery:
        """Parse a C-FIND identifier; ``calling_ae`` enables station coercion.

        Raises MWLQueryError when a key's value cannot be interpreted."""
        return cls.from_elements(from_dataset(ds), calling_ae=calling_ae,
                                 hidden_statuses=hidden_statuses)

    @classmethod
    def from_elements(
        cls, elements: tuple[QueryElement, ...], *, calling_ae: str | None = None,
        hidden_statuses: frozenset[str] = DEFAULT_HIDDEN,
    ) -> MWLQuery:
        """As :meth:`from_identifier`, from :mod:`~channels.dicom_mwl.identifier` elements."""
        step: tuple[QueryElement, ...] = ()
        for _tag, keyword, _vr, value in elements:
            if keyword == SPS and isinstance(value, tuple) and value:
                step = value[0]
        values: dict[str, object] = {}
        ignored: list[str] = []
        for level, source in (("top", elements), ("sps", step)):
            for _tag, keyword, vr, value in source:
                if vr == "SQ" or not keyword or not isinstance(value, str) or not value:
                    continue
                key = KEYS.get(keyword)
                if key is None or key.level != level:
                    ignored.append(keyword)
                    continue
                values[keyword] = value
        if calling_ae and not split_values(values.get(STATION.keyword)):
            values[STATION.keyword] = calling_ae
        return cls.from_values(values, hidden_statuses=hidden_statuses, ignored=tuple(ignored))

    @classmethod
    def from_values(
        cls, values: Mapping[str, object], *, hidden_statuses: frozenset[str] = DEFAULT_HIDDEN,
        ignored: tuple[str, ...] = (),
    ) -> MWLQuery:
        """Build from keyword → query value (strings in DICOM form, e.g. ``"CT\\\\MR"``)."""
        conditions: list[Condition] = []
        for keyword, raw in values.items():
            key = KEYS[keyword]
            if key in (START_DATE, START_TIME):
                continue
            alts = alternatives(key, raw)
            if alts:
                conditions.append(Condition(key, alts))
        start = _combined_start(values.get(START_DATE.keyword), values.get(START_TIME.keyword))
        if start is not None:
            conditions.append(start)
        return cls(tuple(conditions), hidden_statuses, ignored)

    # -- evaluation ---------------------------------------------------------------------
    @property
    def hides_statuses(self) -> bool:
        return bool(self.hidden_statuses) and not any(c.key is STATUS for c in self.conditions)

    @property
    def needs_python(self) -> bool:
        return bool(self._python)

    def accepts(self, item: Mapping[str, Any]) -> bool:
        """The conditions SQL does not evaluate, on a stored item."""
        step = _first_step(item)
        return all(self._test(c, item, step) for c in self._python)

    def matches(self, item: Mapping[str, Any]) -> bool:
        """The whole query on a stored item (the reference the SQL must agree with)."""
        step = _first_step(item)
        if self.hides_statuses:
            status = clean(step.get(STATUS.keyword)) or SCHEDULED
            if status in self.hidden_statuses:
                return False
        return all(self._test(c, item, step) for c in self.conditions)

    @staticmethod
    def _test(cond: Condition, item: Mapping[str, Any], step: Mapping[str, Any]) -> bool:
        if cond.key is STATION:
            titles = [a.strip() for a in split_values(step.get(STATION.keyword))]
            return any(alt.test(t) for t in titles if t for alt in cond.alts)
        if cond.column == "sps_start":
            text = sps_start(step.get(START_DATE.keyword), step.get(START_TIME.keyword))
        elif cond.key is STATUS:
            text = clean(step.get(STATUS.keyword)) or SCHEDULED
        else:
            text = _stored_text(cond.key, item, step)
        return bool(text) and any(alt.test(text) for alt in cond.alts)

    def where(self) -> tuple[str, Sequence[object]]:
        """SQL condition over ``worklist w`` (the conditions with an indexed column)."""
        parts: list[str] = []
        params: list[object] = []
        start = next((c for c in self.conditions if c.column == "sps_start"), None)
        station = any(c.key is STATION for c in self.conditions)
        for cond in self.conditions:
            if cond is start and station:
                continue  # evaluated inside the station subquery
            if cond.key is STATION:
                sql, args = _alts_sql("s.ae_title", cond.alts)
                sub = f"SELECT s.step_id FROM worklist_station s WHERE {sql}"
                if start is not None:  # one index range scan for "my station, these days"
                    ssql, sargs = _alts_sql("s.sps_start", start.alts)
                    sub += f" AND {ssql}"
                    args = [*args, *sargs]
                parts.append(f"w.id IN ({sub})")
                params.extend(args)
            elif cond.target:
                sql, args = _alts_sql(f"w.{cond.target}", cond.alts)
                parts.append(sql)
                params.extend(args)
        if self.hides_statuses:
            hidden = sorted(self.hidden_statuses)
            parts.append(f"w.sps_status NOT IN ({', '.join('?' * len(hidden))})")
            params.extend(hidden)
        return (" AND ".join(parts) or "1"), params


def _alts_sql(column: str, alts: tuple[Alternative, ...]) -> tuple[str, list[object]]:
    exact = [a.value for a in alts if isinstance(a, Exact)]
    sql: list[str] = []
    params: list[object] = []
    if len(exact) == 1:
        sql.append(f"{column} = ?")
    elif exact:
        sql.append(f"{column} IN ({', '.join('?' * len(exact))})")
    params.extend(exact)
    for alt in alts:
        if isinstance(alt, Pattern):
            sql.append(f"{column} GLOB ?")
            params.append(alt.glob())
        elif isinstance(alt, Range):
            sql.append(f"{column} BETWEEN ? AND ?")
            params.extend((alt.low, alt.high))
    if len(sql) == 1:
        return sql[0], params
    return "(" + " OR ".join(sql) + ")", params
