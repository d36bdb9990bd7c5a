"""XML bodies read safely (no DTD, no entities) into the same shapes as JSON, and written back."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from xml.etree.ElementTree import Element, ParseError, SubElement, TreeBuilder, tostring
from xml.parsers import expat

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

# Far deeper than any customer shape, and well inside Python's recursion limit.
MAX_DEPTH = 100
# Characters XML 1.0 cannot carry at all; JSON requests may store them in free-text fields.
_NOT_XML_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class XmlBodyError(ValueError):
    """The body is not well-formed XML, nests too deeply, or tries DTDs or entities."""


class TooManyItems(XmlBodyError):
    """The root element holds more children than a request may carry."""


class _Builder(TreeBuilder):
    """Builds the tree, refusing as soon as the root's children pass `most`: the parser stops
    there, so a body of a million items costs no more than one of `most`."""

    def __init__(self, most: int | None) -> None:
        super().__init__()
        self.most = most
        self.depth = 0
        self.children = 0
        # The elements open where the parser stands: what a malformed body left unclosed.
        self.open: list[str] = []

    def start(self, tag: str, attrs: dict[str, str]) -> Element:
        self.depth += 1
        self.open.append(tag)
        if self.depth == 2:
            self.children += 1
            if self.most is not None and self.children > self.most:
                raise TooManyItems(self.most)
        return super().start(tag, attrs)

    def end(self, tag: str) -> Element:
        self.depth -= 1
        self.open.pop()
        return super().end(tag)


def parse(body: bytes, most_items: int | None = None) -> dict[str, Any]:
    """`<root><customer>..</customer></root>` → `{"root": {"customer": ...}}`.

    Repeated elements become lists, leaves become text, so that the lenient item reader sees the
    same shapes it sees from JSON (a list or a single object wherever a list is allowed).
    `most_items`: how many children the root may have.
    """
    builder = _Builder(most_items)
    parser = DefusedXMLParser(target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    try:
        parser.feed(body)
        element = parser.close()
    except DefusedXmlException as exc:
        raise XmlBodyError(f"forbidden XML construct: {type(exc).__name__}") from exc
    except ParseError as exc:
        line, column = exc.position
        raise XmlBodyError(f"malformed XML at line {line}, column {column + 1}: {_what_is_wrong(exc, builder.open)}") from exc
    return {element.tag: _value(element, 1)}


_EXPAT = expat.errors.codes
# Element names as the detail quotes them: the caller's own, cut short.
_SHOWN_NAME = 50


def _what_is_wrong(exc: ParseError, open_elements: list[str]) -> str:
    """Expat's reason in words a sender can act on, with the element the parser expected to close."""
    shown = [f"<{name[:_SHOWN_NAME]}>" for name in open_elements]
    innermost = open_elements[-1][:_SHOWN_NAME] if open_elements else None
    if exc.code == _EXPAT[expat.errors.XML_ERROR_TAG_MISMATCH] and innermost:
        return f"a closing tag does not match the open element: </{innermost}> expected (open: {''.join(shown)})"
    if exc.code == _EXPAT[expat.errors.XML_ERROR_UNCLOSED_TOKEN]:
        return "the body ends inside a tag" + (f" (open: {''.join(shown)})" if shown else "")
    if exc.code == _EXPAT[expat.errors.XML_ERROR_NO_ELEMENTS]:
        if innermost:
            return f"the body ends before </{innermost}>: unclosed {''.join(shown)}"
        return "no element found: the body is empty or not XML"
    if exc.code == _EXPAT[expat.errors.XML_ERROR_JUNK_AFTER_DOC_ELEMENT]:
        return "something follows the root element's end: a body holds one root element"
    if exc.code == _EXPAT[expat.errors.XML_ERROR_INVALID_TOKEN]:
        where = f" inside <{innermost}>" if innermost else ""
        return f"not well-formed{where}: a character that cannot stand there (an unescaped & or <, a tag without its name or quotes)"
    if exc.code == _EXPAT[expat.errors.XML_ERROR_SYNTAX] and not open_elements:
        return "syntax error: an XML body starts with its root element (<root>)"
    return expat.ErrorString(exc.code) or "not well-formed"


def _value(element: Element, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise XmlBodyError(f"XML nested deeper than {MAX_DEPTH} elements")
    children = list(element)
    if not children:
        return (element.text or "").strip()
    result: dict[str, Any] = {}
    for child in children:
        value = _value(child, depth + 1)
        if child.tag in result:
            existing = result[child.tag]
            if isinstance(existing, list):
                existing.append(value)
            else:
                result[child.tag] = [existing, value]
        else:
            result[child.tag] = value
    return result


def render(document: Mapping[str, Any]) -> bytes:
    """A JSON-shaped response as XML: a list is its key's element repeated, None an empty element.

    An empty list is written as XML clients count it. Inside a wrapper, where the list is the
    wrapper's only child (`{"warnings": {"warning": []}}`), it is no element at all: an empty
    wrapper, `<warnings/>`, so that counting `warning` elements counts the warnings. A list that is
    a field among others (`"commChannels": []`) is still there, as in JSON: one empty element.
    """
    ((tag, value),) = document.items()
    root = Element(tag)
    _fill(root, value)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(root, encoding="utf-8")


def _fill(element: Element, value: Any) -> None:
    if isinstance(value, dict):
        wrapper = len(value) == 1
        for key, child in value.items():
            if isinstance(child, list) and not child and not wrapper:
                SubElement(element, key)
            for item in child if isinstance(child, list) else [child]:
                _fill(SubElement(element, key), item)
    elif value is None:
        return
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    else:
        element.text = _NOT_XML_CHARACTERS.sub("\ufffd", str(value))
