"""Lenient readers for single field values: each returns the normalised value or None if invalid."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Any, overload
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, PhoneNumber, PhoneNumberDesc, region_code_for_country_code

from patron import limits

_MOBILE_NOISE = re.compile(r"[+\s\-().\[\]]")
_EMAIL = re.compile(r"^[A-Za-z0-9_+\-]+(?:\.[A-Za-z0-9_+\-]+)*@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+$")
_NAME_PUNCTUATION = frozenset(" -'\u2019")
# A name in ASCII: its letters and digits, and the name punctuation that ASCII has.
_ASCII_PUNCTUATION = "".join(sorted(char for char in _NAME_PUNCTUATION if char.isascii()))
_ASCII_NAME = re.compile(f"[A-Za-z0-9{re.escape(_ASCII_PUNCTUATION)}]*")
_DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d")
# The instants Patron keeps: each can be written in any timezone (offsets stay within a day), so
# an answer, an audit record or a local date never runs off the calendar's ends.
EARLIEST_TIME = datetime(1, 1, 2)
LATEST_TIME = datetime(9999, 12, 30, 23, 59, 59)

# What no identifier may hold, even after NFKC: controls, format characters (zero-width spaces and
# joiners, bidi controls), surrogates, private use, unassigned code points, line and paragraph
# separators. Two identifiers that differ only by these look alike to every person who reads them.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

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


def holds_nul(value: Any) -> bool:
    """Whether any text in `value` holds NUL: a string, or any key or string inside its objects
    and lists, however deep (looked through without recursion: a JSON body may nest far deeper
    than Python's stack allows). NUL is the one character PostgreSQL cannot keep in text or jsonb;
    the other control characters are kept as sent on every backend (XML answers replace them)."""
    waiting = [value]
    while waiting:
        item = waiting.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            waiting.extend(item.keys())
            waiting.extend(item.values())
        elif isinstance(item, list):
            waiting.extend(item)
    return False


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


def identifier_text(value: Any) -> str | None:
    """An identifier as text in Unicode's NFKC form, trimmed; None when it holds a character that
    cannot be seen (see _INVISIBLE). NFKC makes one value of the spellings a person cannot tell
    apart: composed and decomposed accents, fullwidth and halfwidth forms, ligatures."""
    raw = text(value)
    if raw is None:
        return None
    if raw.isascii():
        raw = raw.strip()
        return None if _ASCII_CONTROL.search(raw) else raw
    raw = unicodedata.normalize("NFKC", raw).strip()
    if any(unicodedata.category(char) in _INVISIBLE for char in raw):
        return None
    return raw


def case_folded(text: str) -> str:
    """Text as it compares ignoring case: Unicode's NFKC_Casefold (`ABC-1`, `abc-1` and `ＡＢＣ-1`
    are one, and so are `STRASSE` and `straße`); ASCII, most of what tills send, by lower() alone."""
    return text.lower() if text.isascii() else unicodedata.normalize("NFKC", text.casefold())


def identity_key(name: str, value: Any) -> str | None:
    """A key that every spelling of one identifier shares, at the cost of reading a row: the
    identifier's text as the readers see it (NFKC, trimmed, case-folded as an org that matches
    external ids ignoring case folds them); for a mobile, the last eight of its digits in any
    script, since a country code and a national prefix may be written or not. Two identifiers may
    share a key; one identifier never has two. None when the value cannot be an identifier at all.
    Parsing the mobile fully would cost tens of µs a row."""
    raw = identifier_text(value)
    if not raw:
        return None
    if name != "mobile":
        return case_folded(raw)
    digits = "".join(str(unicodedata.decimal(char)) for char in raw if char.isdecimal())
    return digits[-8:] or None


def mobile_digits(raw: str) -> str:
    """A mobile as written, without the noise people write in one (+, spaces, dashes, brackets,
    dots), digits of other scripts read as ASCII ones; what is left may still hold other characters."""
    digits = _MOBILE_NOISE.sub("", raw)
    if not digits.isascii():
        # Digits of other scripts (Arabic-Indic, Devanagari, ...) name the same number.
        digits = "".join(str(unicodedata.decimal(char, "x")) for char in digits)
    return digits


def mobile(value: Any, base_country: str, supported: list[str], default_country_code: bool) -> str | None:
    """E.164 digits without '+', if the value is a real mobile of an allowed country."""
    raw = identifier_text(value)
    if raw is None:
        return None
    digits = mobile_digits(raw)
    if not digits.isdigit() or not 6 <= len(digits) <= 17:
        return None
    candidates: list[tuple[str, str | None]] = [("+" + digits, None)]
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
    tests/unit/test_phone_numbers.py holds this to the parser's answer across every region.
    """
    if digits[0] == "0":
        return None
    # Country codes are prefix-free: the first that matches is the only one, as in the parser.
    for size in (1, 2, 3):
        country_code = _COUNTRY_CODES.get(digits[:size])
        if country_code is not None:
            break
    else:
        return None
    national = digits[size:]
    if len(national) < 2 or national[0] == "0" or _national_prefix(country_code).match(national):
        return None
    return PhoneNumber(country_code=country_code, national_number=int(national))


_COUNTRY_CODES = {str(country_code): country_code for country_code in COUNTRY_CODE_TO_REGION_CODE}
# Matches every number: a country without metadata is left to the parser.
_UNKNOWN_PLAN = re.compile("")


@lru_cache(maxsize=None)
def _national_prefix(country_code: int) -> re.Pattern[str]:
    """What the parser strips from the front of a national number as a national prefix; a
    pattern that matches nothing where there is none."""
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region_code_for_country_code(country_code))
    if metadata is None:
        return _UNKNOWN_PLAN
    return re.compile(metadata.national_prefix_for_parsing or "(?!)")


def _is_mobile(number: PhoneNumber, region: str | None) -> bool:
    """Whether phonenumbers.number_type(number) is MOBILE or FIXED_LINE_OR_MOBILE (where a country's
    numbering plan cannot tell mobiles from landlines, as the US's, either may be one; `region`: the
    number's, from region_code_for_number), deciding as number_type does, over the same
    metadata, with each pattern compiled once: number_type looks every pattern up in the re
    module's cache and runs most twice (match, then fullmatch), which cost two thirds of a mobile's
    check. tests/unit/test_phone_numbers.py holds it to number_type for every region's numbers."""
    if number.country_code is None or region is None:
        return False  # no region of its own: no region's plan makes it a mobile
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(number.country_code, region)
    return metadata is not None and _is_mobile_national(phonenumbers.national_significant_number(number), metadata)


def _is_mobile_national(national: str, metadata: PhoneMetadata) -> bool:
    key = (metadata.id, metadata.country_code, len(national))
    rule = _mobile_rules.get(key)
    if rule is None:
        rule = _mobile_rules[key] = _MobileRule.of(metadata, len(national))
    return rule.admits(national)


# The types number_type tests before fixed lines and mobiles, in its order: a number of any of them is neither.
_OTHER_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail")


@dataclass(frozen=True, slots=True)
class _MobileRule:
    """How number_type tells a mobile among a region's national numbers of one length: each
    description's pattern if it allows that length (as _is_number_matching_desc, where no lengths
    listed means any length), the other types' joined in one pattern, so that a number costs
    three matches however many types its region describes."""

    general: re.Pattern[str] | None
    others: re.Pattern[str] | None
    mobile: re.Pattern[str] | None

    @classmethod
    def of(cls, metadata: Any, length: int) -> _MobileRule:
        def pattern(description: PhoneNumberDesc | None) -> str | None:
            if description is None or not description.national_number_pattern:
                return None
            if description.possible_length and length not in description.possible_length:
                return None
            return description.national_number_pattern

        general = pattern(metadata.general_desc)
        others = [found for name in _OTHER_TYPES if (found := pattern(getattr(metadata, name))) is not None]
        # number_type answers FIXED_LINE_OR_MOBILE for a fixed line when the region's mobiles and
        # fixed lines share a pattern, and otherwise MOBILE or FIXED_LINE_OR_MOBILE exactly for a mobile.
        mobile = pattern(metadata.fixed_line if metadata.same_mobile_and_fixed_line_pattern else metadata.mobile)
        return cls(
            general=re.compile(general) if general else None,
            others=re.compile("|".join(f"(?:{other})" for other in others)) if others else None,
            mobile=re.compile(mobile) if mobile else None,
        )

    def admits(self, national: str) -> bool:
        return (
            self.general is not None
            and self.mobile is not None
            and self.general.fullmatch(national) is not None
            and (self.others is None or self.others.fullmatch(national) is None)
            and self.mobile.fullmatch(national) is not None
        )


# By region (or, for non-geographic numbers, "001" and the country code) and length: metadata is not hashable.
_mobile_rules: dict[tuple[str | None, int | None, int], _MobileRule] = {}


def email(value: Any) -> str | None:
    raw = identifier_text(value)
    if raw is None:
        return None
    if len(raw) > limits.EMAIL or not _EMAIL.match(raw):
        return None
    return raw.lower()


def external_id(value: Any, min_length: int, max_length: int) -> str | None:
    raw = identifier_text(value)
    if raw is None:
        return None
    limit = min(max_length, limits.EXTERNAL_ID) if max_length > 0 else limits.EXTERNAL_ID
    if not raw or len(raw) > limit or len(raw) < min_length:
        return None
    return raw


def person_name(value: Any) -> str | None:
    """Letters of any script, digits, spaces, hyphens and apostrophes; at most 100."""
    raw = text(value)
    if raw is None:
        return None
    raw = raw.strip()
    if len(raw) > limits.NAME:
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
    try:
        moment = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    except OverflowError:
        return None
    return moment if EARLIEST_TIME <= moment <= LATEST_TIME else None


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
@overload
def local_text(moment: datetime, tz: ZoneInfo) -> str: ...
@overload
def local_text(moment: datetime | None, tz: ZoneInfo) -> str | None: ...
def local_text(moment: datetime | None, tz: ZoneInfo) -> str | None:
    """Naive UTC → 'YYYY-MM-DD HH:MM:SS' in the org's timezone."""
    return None if moment is None else _local_text(moment, tz)


@lru_cache(maxsize=1024)
def _local_text(moment: datetime, tz: ZoneInfo) -> str:
    # isoformat, not strftime, which writes the years before 1000 without their leading zeros.
    return moment.replace(tzinfo=timezone.utc).astimezone(tz).replace(tzinfo=None).isoformat(" ", "seconds")


def local_midnight_utc(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(timezone.utc).replace(tzinfo=None)




@lru_cache(maxsize=1024)
def local_date(moment: datetime, tz: ZoneInfo) -> date:
    """The calendar day a naive-UTC moment falls on in the org's timezone."""
    return moment.replace(tzinfo=timezone.utc).astimezone(tz).date()
