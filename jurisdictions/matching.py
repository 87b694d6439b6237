"""Cross-jurisdiction substance keys for ``watch = "all"``.

Each jurisdiction spells some substances its own way: Australia uses international
non-proprietary names (AMFETAMINE, LYSERGIDE), the United States its adopted names
(Amphetamine, Lysergic acid diethylamide), Canada sometimes chemical names. ``substance_key``
maps a listed name to one key per substance where a known synonym links the spellings, so the
status matrix and the history line up across jurisdictions; a name with no known synonym keeps
its own normalised name and shows as unmatched where no other jurisdiction lists it.
"""

from __future__ import annotations

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


