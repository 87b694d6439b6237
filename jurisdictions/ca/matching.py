"""Matching entry texts to watched substances: listed names, chemical names in parentheses,
and whole-word mentions in amendment texts."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from jurisdictions.substances import KNOWN, Substance, WatchList
from scrapers.records import name_key, normalise_text

_NAME_END = re.compile(r"\s\(|,\s")
_COMBINING = re.compile("[\u0300-\u036f]")


def fold(text: str) -> str:
    """``name_key`` for long texts: the same folding (normalised, accents dropped, lower case)
    with one regex over the Latin combining marks instead of a per-character loop; an
    amendment replacing a whole Part of the CDSA runs to ~20,000 characters."""
    decomposed = unicodedata.normalize("NFKD", normalise_text(text))
    return _COMBINING.sub("", decomposed).lower()


def listed_name(text: str) -> str:
    """The substance name of an entry: the text before the first " (" or ", ". A comma
    followed by a space ends the name; one inside a chemical name ("3,4-methylenedioxy",
    "N,N-dimethyl") does not."""
    return name_part(normalise_text(text))


def name_part(text: str) -> str:
    """``listed_name`` of text already normalised (entry texts are)."""
    match = _NAME_END.search(text)
    return (text[: match.start()] if match else text).strip()


def _parenthetical(text: str) -> str | None:
    """The first balanced parenthesis group: the chemical name in "Ketamine (2-(2-...)...)"."""
    start = text.find("(")
    if start < 0:
        return None
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return text[start + 1: index]
    return None


@dataclass(frozen=True)
class Matcher:
    """The watched substances plus those they are covered by (esketamine -> ketamine), so that
    watching esketamine alone still finds the ketamine entry that covers it.

    Matching is ``WatchList.match``'s rule (equal ``name_key``), with the keys computed once
    per parse: calling ``match`` for each of the ~500 entries of the CDSA cost ~200 ms."""

    substances: tuple[Substance, ...]
    index: dict[str, Substance]
    mentions: dict[str, re.Pattern[str]]  # substance key -> its names as whole words

    @classmethod
    def of(cls, watch: WatchList) -> Matcher:
        chosen = list(watch.substances)
        keys = {s.key for s in chosen}
        for substance in watch.substances:
            if substance.covered_by and substance.covered_by not in keys:
                cover = next((k for k in KNOWN if k.key == substance.covered_by), None)
                if cover is not None:
                    chosen.append(cover)
                    keys.add(cover.key)
        index: dict[str, Substance] = {}
        mentions: dict[str, re.Pattern[str]] = {}
        for substance in chosen:
            names = [key for key in dict.fromkeys(name_key(n) for n in substance.names()) if key]
            for key in names:
                index.setdefault(key, substance)
            alternatives = "|".join(re.escape(key) for key in names)
            mentions[substance.key] = re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])")
        return cls(substances=tuple(chosen), index=index, mentions=mentions)

    def get(self, key: str) -> Substance | None:
        return next((s for s in self.substances if s.key == key), None)

    def match(self, text: str) -> Substance | None:
        """The substance an entry names: by its name ("Ketamine", "kétamine") or, failing
        that, by the chemical name in parentheses."""
        found = self.index.get(name_key(name_part(text)))
        if found is None:
            chemical = _parenthetical(text)
            if chemical:
                found = self.index.get(name_key(chemical))
        return found

    def mentioned(self, substance: Substance, folded: str) -> bool:
        """Whether name_key-folded text names the substance as a whole word ("ketamine" but
        not inside "esketamine")."""
        pattern = self.mentions.get(substance.key)
        return bool(pattern and pattern.search(folded))

