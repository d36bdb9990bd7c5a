"""Lenient readers for single field values: each returns the normalised value or None if invalid."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, PhoneNumber, region_code_for_country_code

_MOBILE_NOISE = re.compile(r"[+\s\-().\[\]]")
_EMAIL = re.compile(r"^[A-Za-z0-9_+\-]+(?:\.[A-Za-z0-9_+\-]+)*@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+$")
_NAME_PUNCTUATION = frozenset(" -'\u2019")
# A name in ASCII: its letters and digits, and the name punctuation that ASCII has.
_ASCII_PUNCTUATION = "".join(sorted(char for char in _NAME_PUNCTUATION if char.isascii()))
_ASCII_NAME = re.compile(f"[A-Za-z0-9{re.escape(_ASCII_PUNCTUATION)}]*")
_DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d")

# Beyond 2**53 a double no longer holds every integer exactly.
_EXACT_FLOAT_INTEGERS = 2**53

TRUE_WORDS = frozenset({"true", "1", "yes", "y", "t"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "f"})


def text(value: Any) -> str | None:
    """A scalar as text: numbers become their digits, booleans and containers are not text.

    A string holding NUL is not text either: PostgreSQL cannot store it (in text nor in jsonb),
    and no real value carries one, so it is refused like any other invalid value.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return None if "\x00" in value else value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if abs(value) >= _EXACT_FLOAT_INTEGERS:
            # A JSON integer too large for 64 bits arrives as a double: its digits are no
            # longer the ones sent, so it is no value at all.
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    word = text(value)
    if word is None:
        return None
    word = word.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def mobile(value: Any, base_country: str, supported: list[str], default_country_code: bool) -> str | None:
    """E.164 digits without '+', if the value is a real mobile of an allowed country."""
    raw = text(value)
    if raw is None:
        return None
    digits = _MOBILE_NOISE.sub("", raw)
    if not digits.isdigit() or not 6 <= len(digits) <= 17:
        return None
    candidates = [("+" + digits, None)]
    if default_country_code:
        candidates.append((digits, base_country))
    for number_text, region in candidates:
        number = _as_sent(digits) if region is None else None
        as_sent = number is not None
        if number is None:
            try:
                number = phonenumbers.parse(number_text, region)
            except phonenumbers.NumberParseException:
                continue
        country = phonenumbers.region_code_for_number(number)
        if not _is_mobile(number, country):
            continue
        if country == base_country or "*" in supported or country in supported:
            # Digits read as sent are the number's E.164 form already.
            return digits if as_sent else phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    return None


def _as_sent(digits: str) -> PhoneNumber | None:
    """The number phonenumbers.parse("+" + digits) reads, in the case where it reads the digits as
    sent: a country code, then a national number without a leading zero or a national prefix to
    strip. None in every other case, which is left to the parser.

    The parser's general text handling (extensions, IDD prefixes, letters, punctuation) costs
    two thirds of a registration's phone-number check, and the digits have none of it left.
    tests/test_phone_numbers.py holds this to the parser's answer across every region.
    """
    if digits[0] == "0":
        return None
    # Country codes are prefix-free: the first that matches is the only one, as in the parser.
    for size in (1, 2, 3):
        country_code = int(digits[:size])
        if country_code in COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    national = digits[size:]
    if len(national) < 2 or national[0] == "0":
        return None
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region_code_for_country_code(country_code))
    if metadata is None:
        return None
    prefix = metadata.national_prefix_for_parsing
    if prefix and _pattern(prefix).match(national):
        return None
    return PhoneNumber(country_code=country_code, national_number=int(national))


@lru_cache(maxsize=512)
def _pattern(regex: str) -> re.Pattern[str]:
    return re.compile(regex)


def _is_mobile(number: PhoneNumber, region: str | None) -> bool:
    """Whether phonenumbers.number_type(number) is MOBILE or FIXED_LINE_OR_MOBILE (where a country's
    numbering plan cannot tell mobiles from landlines, as the US's, either may be one; `region`: the
    number's, from region_code_for_number), deciding as number_type does, over the same
    metadata, with each pattern compiled once: number_type looks every pattern up in the re
    module's cache and runs most twice (match, then fullmatch), which cost two thirds of a mobile's
    check. tests/test_phone_numbers.py holds it to number_type for every region's numbers."""
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(number.country_code, region)
    return metadata is not None and _is_mobile_national(phonenumbers.national_significant_number(number), metadata)


def _is_mobile_national(national: str, metadata: PhoneMetadata) -> bool:
    types = _number_types(metadata)
    if not types.general.matches(national) or any(other.matches(national) for other in types.others):
        return False
    # number_type then answers FIXED_LINE_OR_MOBILE for a fixed line when the region's mobiles and
    # fixed lines share a pattern, and otherwise MOBILE or FIXED_LINE_OR_MOBILE exactly for a mobile.
    if types.same_mobile_and_fixed_line:
        return types.fixed_line.matches(national)
    return types.mobile.matches(national)


# The types number_type tests before fixed lines and mobiles, in its order: a number of any of them is neither.
_OTHER_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail")


@dataclass(frozen=True, slots=True)
class _Description:
    """One PhoneNumberDesc, ready to test a national number against."""

    lengths: frozenset[int]
    pattern: re.Pattern[str] | None

    @classmethod
    def of(cls, description: Any) -> _Description:
        if description is None or not description.national_number_pattern:
            return cls(frozenset(), None)
        return cls(frozenset(description.possible_length), re.compile(description.national_number_pattern))

    def matches(self, national: str) -> bool:
        # As phonenumbers' _is_number_matching_desc: no lengths listed means any length.
        if self.lengths and len(national) not in self.lengths:
            return False
        return self.pattern is not None and self.pattern.fullmatch(national) is not None


@dataclass(frozen=True, slots=True)
class _NumberTypes:
    general: _Description
    others: tuple[_Description, ...]
    fixed_line: _Description
    mobile: _Description
    same_mobile_and_fixed_line: bool


# By region (or, for non-geographic numbers, "001" and the country code): metadata is not hashable.
_number_types_of: dict[tuple[str | None, int | None], _NumberTypes] = {}


def _number_types(metadata: PhoneMetadata) -> _NumberTypes:
    key = (metadata.id, metadata.country_code)
    types = _number_types_of.get(key)
    if types is None:
        types = _number_types_of[key] = _NumberTypes(
            general=_Description.of(metadata.general_desc),
            # A type the region does not describe matches no number.
            others=tuple(
                description
                for description in (_Description.of(getattr(metadata, name)) for name in _OTHER_TYPES)
                if description.pattern is not None
            ),
            fixed_line=_Description.of(metadata.fixed_line),
            mobile=_Description.of(metadata.mobile),
            same_mobile_and_fixed_line=bool(metadata.same_mobile_and_fixed_line_pattern),
        )
    return types


def email(value: Any) -> str | None:
    raw = text(value)
    if raw is None:
        return None
    raw = raw.strip()
    if len(raw) > 255 or not _EMAIL.match(raw):
        return None
    return raw.lower()


def external_id(value: Any, min_length: int, max_length: int) -> str | None:
    raw = text(value)
    if raw is None:
        return None
    raw = raw.strip()
    limit = min(max_length, 250) if max_length > 0 else 250
    if not raw or len(raw) > limit or len(raw) < min_length:
        return None
    return raw


def person_name(value: Any) -> str | None:
    """Letters of any script, digits, spaces, hyphens and apostrophes; at most 100."""
    raw = text(value)
    if raw is None:
        return None
    raw = raw.strip()
    if len(raw) > 100:
        return None
    if raw.isascii():
        # ASCII's letters and digits are all of categories L and N, and it has no marks.
        return raw if _ASCII_NAME.fullmatch(raw) else None
    for char in raw:
        if char in _NAME_PUNCTUATION:
            continue
        if unicodedata.category(char)[0] not in "LMN":
            return None
    return raw


def timestamp(value: Any, tz: ZoneInfo) -> datetime | None:
    """A date or date-time as naive UTC; times without an offset are in the org's timezone."""
    raw = text(value)
    if raw is None:
        return None
    raw = raw.strip()
    parsed: datetime | None = None
    for fmt in _DATETIME_FORMATS:
        try:
            parsed = datetime.strptime(raw, fmt)
            break
        except ValueError:
            continue
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(timezone.utc).replace(tzinfo=None)


def calendar_date(value: Any) -> date | None:
    raw = text(value)
    if raw is None:
        return None
    raw = raw.strip()
    for fmt in ("%Y-%m-%d", "%Y/%m/%d"):
        try:
            return datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
    return None


def choice(value: Any, options: dict[str, str]) -> str | None:
    """One of `options` (keys lower-cased), any case; returns the canonical spelling."""
    raw = text(value)
    if raw is None:
        return None
    return options.get(raw.strip().lower())


# A request's items share their times (registered and updated "now"), each shown several times:
# in the answer, the audit record and the memberships. Cached, they convert once per request.
@lru_cache(maxsize=1024)
def local_text(moment: datetime | None, tz: ZoneInfo) -> str | None:
    """Naive UTC → 'YYYY-MM-DD HH:MM:SS' in the org's timezone."""
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def local_midnight_utc(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(timezone.utc).replace(tzinfo=None)




@lru_cache(maxsize=1024)
def local_date(moment: datetime, tz: ZoneInfo) -> date:
    """The calendar day a naive-UTC moment falls on in the org's timezone."""
    return moment.replace(tzinfo=timezone.utc).astimezone(tz).date()
