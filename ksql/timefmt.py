"""Java `DateTimeFormatter` patterns, for TIMESTAMPTOSTRING, STRINGTOTIMESTAMP and TIMESTAMP_FORMAT.

Why our own: ksqlDB statements carry Java patterns ('yyyy-MM-dd HH:mm:ss.SSS'), which differ from
strftime, and the output must match ksqlDB character for character. A pattern is compiled once
into a list of small field printers (and, for parsing, one regular expression for the whole
pattern); letters we do not implement raise `PatternError` so the caller can refuse the pattern
instead of printing something else. Locale is always English (ksqlDB's default, Locale.ROOT/US).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class PatternError(ValueError):
    """The pattern uses a letter or form this implementation does not support."""


def zone(name: str | None) -> tzinfo:
    """A zone from a ksqlDB time-zone argument; None means the process's local zone."""
    if name is None:
        return _local_zone()
    text = name.strip()
    if text.upper() in ("UTC", "Z", "GMT", "UT"):
        return timezone.utc
    offset = re.fullmatch(r"(?:UTC|GMT|UT)?([+-])(\d{1,2})(?::?(\d{2}))?", text, re.IGNORECASE)
    if offset:
        sign = -1 if offset.group(1) == "-" else 1
        delta = timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3) or 0))
        return timezone(sign * delta)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise PatternError(f"Unknown time-zone ID: {name}") from None


@functools.lru_cache(maxsize=4)
def _local_zone_for(tz_env: str) -> tzinfo:
    """The process's zone: the TZ variable when it names a zone, else what the C library uses."""
    name = tz_env.lstrip(":")
    if name:
        if name.upper() in ("UTC", "UTC0", "GMT", "GMT0", "Z"):
            return timezone.utc
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return datetime.now().astimezone().tzinfo or timezone.utc


def _local_zone() -> tzinfo:
    return _local_zone_for(os.environ.get("TZ", ""))


# ---- pattern tokenizer ------------------------------------------------------------------------------------------


def _tokens(pattern: str) -> list[tuple[str, str, int]]:
    """Split a pattern into ("field", letter, count) and ("text", literal) tokens."""
    result: list = []
    index = 0
    length = len(pattern)
    while index < length:
        char = pattern[index]
        if char == "'":
            end = index + 1
            literal = []
            while end < length:
                if pattern[end] == "'":
                    if end + 1 < length and pattern[end + 1] == "'":
                        literal.append("'")
                        end += 2
                        continue
                    break
                literal.append(pattern[end])
                end += 1
            if end >= length:
                raise PatternError(f"Pattern ends with an incomplete string literal: {pattern}")
            result.append(("text", "'" if end == index + 1 else "".join(literal), 0))
            index = end + 1
        elif char.isascii() and char.isalpha():
            end = index
            while end < length and pattern[end] == char:
                end += 1
            result.append(("field", char, end - index))
            index = end
        elif char in "[]":
            index += 1  # optional sections: every field is always present when formatting
        elif char in "#{}":
            raise PatternError(f"Pattern includes reserved character: '{char}'")
        else:
            result.append(("text", char, 0))
            index += 1
    return result


# ---- formatting ----------------------------------------------------------------------------------------------


def _pad(value: int, width: int) -> str:
    text = str(abs(value)).rjust(width, "0")
    return "-" + text if value < 0 else text


def _offset_parts(dt: datetime) -> tuple[int, int, int, int]:
    offset = dt.utcoffset() or timedelta(0)
    total = int(offset.total_seconds())
    sign = -1 if total < 0 else 1
    total = abs(total)
    return sign, total // 3600, (total % 3600) // 60, total % 60


def _iso_offset(dt: datetime, count: int, z_for_zero: bool) -> str:
    sign, hours, minutes, seconds = _offset_parts(dt)
    if z_for_zero and hours == minutes == seconds == 0:
        return "Z"
    prefix = "-" if sign < 0 else "+"
    if count == 1:
        return f"{prefix}{hours:02d}" + (f"{minutes:02d}" if minutes else "")
    if count == 2:
        return f"{prefix}{hours:02d}{minutes:02d}"
    if count == 3:
        return f"{prefix}{hours:02d}:{minutes:02d}"
    if count == 4:
        return f"{prefix}{hours:02d}{minutes:02d}" + (f"{seconds:02d}" if seconds else "")
    return f"{prefix}{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")


def _field_printer(letter: str, count: int) -> Callable[[datetime, int], str]:
    """A printer for one field; it receives the datetime and the nanosecond of second."""
    if letter in "uy":
        if count == 2:
            return lambda dt, ns: _pad(dt.year % 100, 2)
        return lambda dt, ns: _pad(dt.year, count if count >= 4 else 1)
    if letter in "ML":
        if count == 1:
            return lambda dt, ns: str(dt.month)
        if count == 2:
            return lambda dt, ns: _pad(dt.month, 2)
        if count == 3:
            return lambda dt, ns: MONTHS[dt.month - 1][:3]
        if count == 4:
            return lambda dt, ns: MONTHS[dt.month - 1]
        if count == 5:
            return lambda dt, ns: MONTHS[dt.month - 1][0]
    simple = {
        "d": lambda dt: dt.day,
        "H": lambda dt: dt.hour,
        "m": lambda dt: dt.minute,
        "s": lambda dt: dt.second,
        "k": lambda dt: dt.hour or 24,
        "K": lambda dt: dt.hour % 12,
        "h": lambda dt: (dt.hour % 12) or 12,
        "D": lambda dt: dt.timetuple().tm_yday,
    }
    if letter in simple and count <= (3 if letter == "D" else 2):
        getter = simple[letter]
        return lambda dt, ns: _pad(getter(dt), count)
    if letter == "S" and count <= 9:
        return lambda dt, ns: str(ns).rjust(9, "0")[:count]
    if letter == "n":
        return lambda dt, ns: _pad(ns, count)
    if letter == "A":
        return lambda dt, ns: _pad(((dt.hour * 60 + dt.minute) * 60 + dt.second) * 1000 + ns // 1_000_000, count)
    if letter == "N":
        return lambda dt, ns: _pad(((dt.hour * 60 + dt.minute) * 60 + dt.second) * 1_000_000_000 + ns, count)
    if letter == "a" and count == 1:
        return lambda dt, ns: "AM" if dt.hour < 12 else "PM"
    if letter == "E":
        if count <= 3:
            return lambda dt, ns: DAYS[dt.weekday()][:3]
        if count == 4:
            return lambda dt, ns: DAYS[dt.weekday()]
        if count == 5:
            return lambda dt, ns: DAYS[dt.weekday()][0]
    if letter == "G":
        if count <= 3:
            return lambda dt, ns: "AD"
        if count == 4:
            return lambda dt, ns: "Anno Domini"
    if letter == "z" and count <= 3:
        return lambda dt, ns: dt.tzname() or "UTC"
    if letter == "V" and count == 2:
        return lambda dt, ns: (
            getattr(dt.tzinfo, "key", None) or ("UTC" if dt.utcoffset() == timedelta(0) else _iso_offset(dt, 3, True))
        )
    if letter == "X" and count <= 5:
        return lambda dt, ns: _iso_offset(dt, count, True)
    if letter == "x" and count <= 5:
        return lambda dt, ns: _iso_offset(dt, count, False)
    if letter == "Z":
        if count <= 3:
            return lambda dt, ns: _iso_offset(dt, 2, False)
        if count == 5:
            return lambda dt, ns: _iso_offset(dt, 3, True)
        if count == 4:
            return lambda dt, ns: "GMT" if not dt.utcoffset() else "GMT" + _iso_offset(dt, 3, False)
    raise PatternError(f"unsupported pattern letter '{letter * count}'")


class Formatter:
    """A compiled pattern. `format_millis(ms, zone)` renders an epoch-millisecond instant."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        parts: list = []
        for kind, value, count in _tokens(pattern):
            if kind == "text":
                parts.append(value)
            else:
                parts.append(_field_printer(value, count))
        self._parts = parts

    def format_millis(self, millis: int, tz: tzinfo) -> str:
        seconds, milli = divmod(millis, 1000)
        dt = (EPOCH + timedelta(seconds=seconds)).astimezone(tz)
        nanos = milli * 1_000_000
        return "".join(part if isinstance(part, str) else part(dt, nanos) for part in self._parts)


@functools.lru_cache(maxsize=256)
def formatter(pattern: str) -> Formatter:
    return Formatter(pattern)


# ---- parsing -------------------------------------------------------------------------------------------------------

_MONTH_INDEX = {name.lower(): index + 1 for index, name in enumerate(MONTHS)}
_MONTH_INDEX.update({name[:3].lower(): index + 1 for index, name in enumerate(MONTHS)})
_DAY_NAMES = "|".join(DAYS + [day[:3] for day in DAYS])
_OFFSET_RE = r"Z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?"


def _field_regex(letter: str, count: int, group: str) -> str:
    if letter in "uy":
        if count == 2:
            return rf"(?P<{group}>\d{{2}})"
        return rf"(?P<{group}>[+-]?\d{{{max(count, 1)},9}})" if count >= 4 else rf"(?P<{group}>[+-]?\d{{1,9}})"
    if letter in "ML":
        if count == 1:
            return rf"(?P<{group}>\d{{1,2}})"
        if count == 2:
            return rf"(?P<{group}>\d{{2}})"
        if count == 3:
            return rf"(?P<{group}>[A-Za-z]{{3}})"
        if count == 4:
            return rf"(?P<{group}>[A-Za-z]+)"
    if letter in "dHmskKhD":
        if count == 1:
            return rf"(?P<{group}>\d{{1,{3 if letter == 'D' else 2}}})"
        return rf"(?P<{group}>\d{{{count}}})"
    if letter == "S" and count <= 9:
        return rf"(?P<{group}>\d{{{count}}})"
    if letter == "a" and count == 1:
        return rf"(?P<{group}>AM|PM|am|pm)"
    if letter == "E" and count <= 4:
        return rf"(?:{_DAY_NAMES})"
    if letter == "G" and count <= 3:
        return r"(?:AD|BC)"
    if letter in "XxZ" and count <= 5:
        return rf"(?P<{group}>{_OFFSET_RE}|GMT{_OFFSET_RE}|GMT)"
    if letter == "V" and count == 2:
        return rf"(?P<{group}>[A-Za-z_+\-/0-9]+)"
    if letter == "z":
        # Java resolves zone names (PST, CEST, ...) through its own locale data: not reproduced
        raise PatternError(f"pattern letter '{letter * count}' (time-zone names) for parsing")
    raise PatternError(f"unsupported pattern letter '{letter * count}' for parsing")


class Parser:
    """A compiled pattern for parsing text into epoch milliseconds."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        regex = []
        self._fields: list[tuple[str, str, int]] = []
        for index, (kind, value, count) in enumerate(_tokens(pattern)):
            if kind == "text":
                regex.append(re.escape(value))
            else:
                group = f"g{index}"
                regex.append(_field_regex(value, count, group))
                self._fields.append((group, value, count))
        self._regex = re.compile("".join(regex), re.IGNORECASE)  # ksqlDB parses case-insensitively

    def parse_millis(self, text: str, default_zone: tzinfo) -> int:
        match = self._regex.fullmatch(text)
        if match is None:
            raise ValueError(f"Text '{text}' could not be parsed with pattern '{self.pattern}'")
        year, month, day, hour, minute, second, nanos = 1970, 1, 1, 0, 0, 0, 0
        day_of_year = None
        pm = None
        hour12 = None
        tz = default_zone
        for group, letter, count in self._fields:
            raw = match.group(group)
            if raw is None:
                continue
            if letter in "uy":
                year = int(raw) + (2000 if count == 2 else 0)
            elif letter in "ML":
                month = int(raw) if count <= 2 else _MONTH_INDEX.get(raw.lower(), 0)
                if not 1 <= month <= 12:
                    raise ValueError(f"Text '{text}' has an invalid month")
            elif letter == "d":
                day = int(raw)
            elif letter == "D":
                day_of_year = int(raw)
            elif letter == "H":
                hour = int(raw)
            elif letter == "k":
                hour = int(raw) % 24
            elif letter in "Kh":
                hour12 = int(raw) % 12
            elif letter == "m":
                minute = int(raw)
            elif letter == "s":
                second = int(raw)
            elif letter == "S":
                nanos = int(raw.ljust(9, "0"))
            elif letter == "a":
                pm = raw.upper() == "PM"
            elif letter in "XxZ":
                tz = _parse_offset(raw)
            elif letter == "V":
                tz = zone(raw)
        if hour12 is not None:
            hour = hour12 + (12 if pm else 0)
        try:
            if day_of_year is not None:
                local = datetime(year, 1, 1) + timedelta(days=day_of_year - 1)
                local = local.replace(hour=hour, minute=minute, second=second)
            else:
                local = datetime(year, month, day, hour, minute, second)
        except ValueError as error:
            raise ValueError(f"Text '{text}' could not be parsed: {error}") from None
        aware = local.replace(tzinfo=tz)
        delta = aware - EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1000 + nanos // 1_000_000


def _parse_offset(raw: str) -> tzinfo:
    raw = raw.upper()
    text = raw[3:] if raw.startswith("GMT") else raw
    if text in ("", "Z"):
        return timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours = int(digits[:2])
    minutes = int(digits[2:4] or 0)
    seconds = int(digits[4:6] or 0)
    return timezone(sign * timedelta(hours=hours, minutes=minutes, seconds=seconds))


@functools.lru_cache(maxsize=256)
def parser(pattern: str) -> Parser:
    return Parser(pattern)
