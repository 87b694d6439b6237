"""Cross-jurisdiction substance keys for ``watch = "all"``.

Each jurisdiction spells some substances its own way: Australia uses international
non-proprietary names (AMFETAMINE, LYSERGIDE), the United States its adopted names
(Amphetamine, Lysergic acid diethylamide), Canada sometimes chemical names. ``substance_key``
maps a listed name to one key per substance where a known synonym links the spellings, so the
status matrix and the history line up across jurisdictions; a name with no known synonym keeps
its own normalised name and shows as unmatched where no other jurisdiction lists it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from functools import cache

from jurisdictions.substances import KNOWN
from scrapers.records import name_key

#: canonical key → other spellings (INN / USAN / BAN / common names). Curated, not exhaustive:
#: what is not here stays unmatched, and the reports say so.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "amphetamine": ("amfetamine", "amfetamine (amphetamine)"),
    "dexamphetamine": ("dexamfetamine", "dextroamphetamine"),
    "methamphetamine": ("metamfetamine", "methylamphetamine", "metamphetamine",
                        "desoxyephedrine"),
    "lysergic acid diethylamide": ("lysergide", "lsd", "lysergic acid diethylamide (lsd)"),
    "cannabis": ("marihuana", "marijuana", "cannabis (marihuana)"),
    "tetrahydrocannabinols": ("tetrahydrocannabinol", "thc"),
    "gamma-hydroxybutyric acid": ("sodium oxybate", "ghb", "4-hydroxybutanoic acid",
                                  "gamma hydroxybutyrate", "4-hydroxybutyric acid"),
    "methylenedioxymethamphetamine": ("mdma", "3,4-methylenedioxymethamphetamine",
                                      "3,4-methylenedioxy-n-methylamphetamine"),
    "pethidine": ("meperidine",),
    "dextropropoxyphene": ("propoxyphene",),
    "phenobarbital": ("phenobarbitone",),
    "amobarbital": ("amylobarbitone",),
    "pentobarbital": ("pentobarbitone",),
    "secobarbital": ("quinalbarbitone",),
    "butobarbital": ("butobarbitone",),
    "cathine": ("norpseudoephedrine", "(+)-norpseudoephedrine"),
    "diamorphine": ("heroin",),
    "methylphenidate": ("methylphenidate hydrochloride",),
    "phencyclidine": ("pcp",),
    "psilocybin": ("psilocybine",),
    "psilocin": ("psilocine",),
    "mescaline": ("mescalin",),
    "flunitrazepam": ("rohypnol",),
    "fentanyl": ("fentanil",),
    "sufentanil": ("sufentanyl",),
    "alfentanil": ("alfentanyl",),
    "remifentanil": ("remifentanyl",),
    "dronabinol": ("delta-9-tetrahydrocannabinol", "delta-9-thc"),
    "nabilone": ("cesamet",),
    "benzphetamine": ("benzfetamine",),
    "phentermine": ("phentermin",),
    "phenmetrazine": ("fenmetrazine",),
    "cocaine": ("coca leaf extract cocaine",),
    # Trivial names the Poisons Standard gives after a mid-entry * ("BENZYLPIPERAZINE *(BZP).").
    "benzylpiperazine": ("bzp", "n-benzylpiperazine", "1-benzylpiperazine"),
    "alpha-pyrrolidinovalerophenone": ("alpha-pvp", "\u03b1-pvp", "a-pvp"),
    "2,5-dimethoxy-4-methylamphetamine": ("dom", "stp"),
}


@cache
def _index() -> dict[str, str]:
    index: dict[str, str] = {}
    for substance in KNOWN:
        for name in substance.names():
            index.setdefault(name_key(name), substance.key)
    for canonical, spellings in SYNONYMS.items():
        index.setdefault(name_key(canonical), canonical)
        for spelling in spellings:
            index.setdefault(name_key(spelling), canonical)
    return index


def substance_key(name: str) -> str:
    """The cross-jurisdiction key of a listed name: its canonical substance when a known
    synonym links it, else its own normalised name (``name_key``)."""
    key = name_key(name)
    return _index().get(key, key)


def known_names() -> frozenset[str]:
    """Every name schedwatch knows a substance by, normalised (``name_key``): the names,
    synonyms and chemical names of ``KNOWN`` and the curated synonym table of
    table above."""
    names = {name_key(name) for substance in KNOWN for name in substance.names()}
    names.update(name_key(name) for canonical, spellings in SYNONYMS.items()
                 for name in (canonical, *spellings))
    return frozenset(names)


def not_known_message(name: str, known: frozenset[str]) -> str:
    """"'ketamin' is not a known substance; did you mean 'ketamine'?": the nearest known
    names (difflib), only those about as near as the nearest."""
    wanted = name_key(name)
    scored = sorted(((difflib.SequenceMatcher(None, wanted, other).ratio(), other)
                     for other in difflib.get_close_matches(wanted, sorted(known), n=3,
                                                            cutoff=0.75)), reverse=True)
    near = [other for score, other in scored if score >= scored[0][0] - 0.05] if scored else []
    if near:
        hint = "did you mean " + " or ".join(repr(other) for other in near) + "?"
    else:
        hint = (f"known substances are {', '.join(repr(s.key) for s in KNOWN)} and the "
                "synonyms in jurisdictions/matching.py; watch = \"all\" follows every entry")
    return f"{name.strip()!r} is not a known substance; {hint}"


def check_watch_names(names: Iterable[str]) -> None:
    """ValueError naming the first watch-list entry that is neither a name of ``KNOWN`` nor
    in the synonym table, with the nearest known names: a parser would report a typo as
    "not controlled"."""
    known = known_names()
    for name in names:
        if name_key(name) not in known:
            raise ValueError(not_known_message(name, known))
