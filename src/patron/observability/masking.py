"""What a log line may show of a customer or a secret: masked mobiles and e-mails, redacted secrets."""

from __future__ import annotations

import re


def mask_mobile(value: str) -> str:
    """9198******89: enough to tell two customers apart in a log, not enough to call one."""
    size = len(value)
    if size <= 6:
        return "*" * size
    return value[:4] + "*" * (size - 6) + value[-2:]


def mask_email(value: str) -> str:
    local, at, domain = value.partition("@")
    if not at:
        return mask_mobile(value)
    return local[:1] + "***@" + domain


_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
# 10 to 15 digits standing alone: a mobile in any error text, E.164 or national.
_MOBILE = re.compile(r"(?<![\w.])(\+?\d{4})(\d{4,9})(\d{2})(?![\w])")
_SECRET_PAIR = re.compile(
    r"(?i)\b(authorization|password(?:_md5)?|passwd|secret(?:_key)?|token|access_?token|md5|api[-_]?key)"
    r"(['\"]?\s*[:=]\s*['\"]?)(?:(?:basic|bearer)\s+)?[^\s'\",;}&)\]]+"
)
_SECRET_SHAPES = re.compile(
    r"(?i)\b(?:basic|bearer)\s+[A-Za-z0-9+/=._-]{8,}"  # an Authorization header's value
    r"|\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"  # a JWT
    r"|\$argon2\w*\$[^\s'\",)]+"  # a stored hash
)
CONTROL = {code: f"\\x{code:02x}" for code in (*range(32), 127)}


def redact_secrets(text: str) -> str:
    """Secrets go whatever the PII setting: nothing may ever put one in a log line."""
    return _SECRET_SHAPES.sub("[redacted]", _SECRET_PAIR.sub(r"\1\2[redacted]", text))


def mask_text(text: str) -> str:
    """Free text (an error, a traceback, a path): every e-mail and mobile-like number masked."""
    text = _EMAIL.sub(r"\1***@\2", text)
    return _MOBILE.sub(lambda m: m[1] + "*" * len(m[2]) + m[3], text)


