"""Malformed XML (#30 item 6): the detail says where, then what is wrong: the element expected to
close, the one left open, the character that cannot stand there."""

from __future__ import annotations

import pytest

from patron.api.xml import XmlBodyError, parse


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"<root><customer><mobile>1</mobile></root>", "</customer> expected (open: <root><customer>)"),
        (b"<root><customer><mobile>1</mobile>", "the body ends before </customer>: unclosed <root><customer>"),
        (b"<root><customer><mobile>1 & 2</mobile></customer></root>", "not well-formed inside <mobile>"),
        (b"<root/><root/>", "a body holds one root element"),
        (b"", "no element found"),
    ],
)
def test_malformed_xml_says_what_is_wrong_after_where(body: bytes, said: str):
    with pytest.raises(XmlBodyError) as refused:
        parse(body)
    assert str(refused.value).startswith("malformed XML at line 1, column ") and said in str(refused.value)
