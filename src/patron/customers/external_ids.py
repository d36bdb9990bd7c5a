"""How external ids are matched (docs/identity.md): the key the org's unique index holds, and look-alikes across scripts."""

from __future__ import annotations

from collections.abc import Iterable

from confusable_homoglyphs import categories, confusables

from patron.customers import fields

# Characters that belong to no one script: digits, punctuation, combining marks. A look-alike
# between one of them and a letter (0 and O, 1 and l) is not one of another script.
_NO_SCRIPT = frozenset({"COMMON", "INHERITED", "Unknown"})


def key(external_id: str | None, ignore_case: bool) -> str | None:
    """The external id as the org's unique index compares it: the external id itself, or, where the
    org matches external ids ignoring case (CONF_EXTERNAL_ID_CASE_INSENSITIVE), its case-folded NFKC
    form (Unicode's NFKC_Casefold: `ABC-1`, `abc-1` and `ＡＢＣ-1` are one key, and so are `STRASSE`
    and `straße`). The external id is in NFKC already (fields.identifier_text)."""
    if external_id is None or not ignore_case:
        return external_id
    return fields.case_folded(external_id)


def _prototypes() -> dict[int, str]:
    """Each character that looks like others, mapped to one of them (the least code point), so
    that look-alikes share a skeleton. The classes are Unicode's confusables (UTS #39) as the
    confusable_homoglyphs package ships them: each character with the characters it is listed as
    confusable with. A character listed as confusable with a sequence (`m` and `rn`) keeps its own
    class: a skeleton has one character for each of the key's."""
    parent: dict[str, str] = {}

    def root(char: str) -> str:
        while parent.get(char, char) != char:
            char = parent[char] = parent.get(parent[char], parent[char])
        return char

    for char, homoglyphs in confusables.confusables_data.items():
        for homoglyph in homoglyphs:
            # The package writes right-to-left characters between left-to-right marks.
            other = homoglyph["c"].strip("\u200e")
            if len(char) == 1 and len(other) == 1:
                first, second = sorted((root(char), root(other)))
                if first != second:
                    parent[second] = first
    return {ord(char): root(char) for char in list(parent) if root(char) != char}


_PROTOTYPES = _prototypes()


def skeleton(external_id_key: str | None) -> str | None:
    """What an external id key looks like: each character replaced by its confusable class's
    prototype, so that `САRD-1` (Cyrillic С and А) and `CARD-1` share one. Kept beside the key,
    indexed, so that the look-alikes of a new external id are found without a scan."""
    if external_id_key is None:
        return None
    return external_id_key.translate(_PROTOTYPES)


def across_scripts(first: str, second: str) -> bool:
    """Whether two keys of one skeleton differ by a letter of another script: at some position
    where they differ, the two characters are of two scripts (Latin A and Cyrillic А, Latin o and
    Greek ο). Digits, punctuation and marks have no script, so 0 and O, 1 and l are not such a pair."""
    if first == second or len(first) != len(second):
        return False
    for one, other in zip(first, second, strict=True):
        if one != other:
            scripts = {categories.alias(one), categories.alias(other)}
            if len(scripts) == 2 and not scripts & _NO_SCRIPT:
                return True
    return False


def rekeyed(
    held: Iterable[tuple[int, str, str | None]], ignore_case: bool
) -> tuple[list[tuple[int, str, str | None]], list[list[tuple[int, str]]]]:
    """An org's external ids (customer id, external id, key as stored) under a matching rule: the
    keys that change (customer id, new key, new skeleton), and the groups of customers whose
    external ids become one key under it (customer id, external id), which no rule may merge."""
    changed: list[tuple[int, str, str | None]] = []
    by_key: dict[str, list[tuple[int, str]]] = {}
    for customer_id, external_id, stored in held:
        new = key(external_id, ignore_case)
        assert new is not None
        by_key.setdefault(new, []).append((customer_id, external_id))
        if new != stored:
            changed.append((customer_id, new, skeleton(new)))
    return changed, [holders for holders in by_key.values() if len(holders) > 1]
