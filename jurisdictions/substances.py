"""The watch list: which substances schedwatch follows, with their names, synonyms and
chemical names, and how an unnamed substance can be covered by another's entry."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from scrapers.records import name_key


@dataclass(frozen=True)
class Substance:
    key: str  # stable key, lower case: "ketamine"
    name: str  # display name: "Ketamine"
    synonyms: tuple[str, ...] = ()
    chemical_names: tuple[str, ...] = ()
    #: For a substance usually covered through another's entry: the other's key and how.
    covered_by: str | None = None
    relation: str | None = None  # "isomer": esketamine is the (S)-isomer of ketamine
    codes: tuple[tuple[str, str], ...] = ()  # (("DEA", "7285"),)

    def names(self) -> tuple[str, ...]:
        return (self.name, *self.synonyms, *self.chemical_names)


KETAMINE = Substance(
    key="ketamine",
    name="Ketamine",
    synonyms=("Ketalar", "Ketaset", "CI-581"),
    chemical_names=(
        "2-(2-chlorophenyl)-2-(methylamino)cyclohexanone",
        "(±)-2-(2-chlorophenyl)-2-(methylamino)-cyclohexanone",
        "2-(2-chlorophényl)-2-(méthylamino)cyclohexanone",
        "kétamine",
    ),
    codes=(("DEA", "7285"),),
)
ESKETAMINE = Substance(
    key="esketamine",
    name="Esketamine",
    synonyms=("(S)-ketamine", "S-ketamine", "Spravato", "Ketanest S", "eskétamine"),
    chemical_names=("(S)-2-(2-chlorophenyl)-2-(methylamino)cyclohexanone",),
    covered_by="ketamine",
    relation="isomer",
)
ARKETAMINE = Substance(
    key="arketamine",
    name="Arketamine",
    synonyms=("(R)-ketamine", "R-ketamine", "arkétamine"),
    chemical_names=("(R)-2-(2-chlorophenyl)-2-(methylamino)cyclohexanone",),
    covered_by="ketamine",
    relation="isomer",
)

#: Everything schedwatch knows by name. The default watch list is all of these.
KNOWN: tuple[Substance, ...] = (KETAMINE, ESKETAMINE, ARKETAMINE)
DEFAULT_WATCH: tuple[str, ...] = tuple(s.key for s in KNOWN)


# --- generic entries: which schedule items cover a substance without naming it ----------------

@dataclass(frozen=True)
class GenericCoverage:
    """A schedule item that covers a substance without naming it ("Phencyclidine ..., its
    salts, derivatives and analogues ..."), with the authority for that reading. When the
    substance's explicit listing disappears from a healthy document while this item still
    stands with these words, the substance stays controlled under the item, flagged for
    review (issue 13): a removed sub-item is never by itself "descheduled"."""

    substance: str  # the covered substance's key: "ketamine"
    jurisdiction: str  # "ca"
    instrument: str  # citation of the instrument holding the item: "S.C. 1996, c. 19"
    schedule: str  # the schedule label the parser gives: "I", "1", "NCR Schedule"
    item: str  # "14"
    entry_name: str  # the item's listed name, ``name_key``-folded: "phencyclidine"
    relation: str  # what the substance is to the listed one: "analogue"
    #: The words of the item that must still be there for the reading to hold (folded).
    clause: str  # "analogue"
    citation: str


_HC_2005 = ("Health Canada, Office of Controlled Substances, 2005-05-02: ketamine is "
            "\"captured as item 14 in Schedule I of the CDSA and item 14 in the NCR\" as an "
            "analogue of phencyclidine")
_RIAS_2005 = ("SOR/2005-270 RIAS (Canada Gazette Part II, 2005-09-21): \"explicitly list it "
              "under item 14 of Schedule I to the CDSA, and item 14 of the Schedule to the "
              "NCR\"")

#: Cited in SOURCES.md §2.4 ([checked]: the cscb.ca copy of the Health Canada notice and the
#: Canada Gazette archive excerpt). The CSR row is schedwatch's reading: SOR/2025-242
#: Schedule 1 item 14 carries the NCR's item 14 forward in the same words.
GENERIC_COVERAGE: tuple[GenericCoverage, ...] = (
    GenericCoverage(
        substance="ketamine", jurisdiction="ca", instrument="S.C. 1996, c. 19", schedule="I",
        item="14", entry_name="phencyclidine", relation="analogue", clause="analogue",
        citation=f"{_HC_2005}; {_RIAS_2005}"),
    GenericCoverage(
        substance="ketamine", jurisdiction="ca", instrument="C.R.C., c. 1041",
        schedule="NCR Schedule", item="14", entry_name="phencyclidine", relation="analogue",
        clause="analogue", citation=f"{_HC_2005}; {_RIAS_2005}"),
    GenericCoverage(
        substance="ketamine", jurisdiction="ca", instrument="SOR/2025-242", schedule="1",
        item="14", entry_name="phencyclidine", relation="analogue", clause="analogue",
        citation=(f"{_HC_2005} (said of the NCR's item 14, which SOR/2025-242 Schedule 1 "
                  f"item 14 carries forward in the same words); {_RIAS_2005}")),
)


def generic_coverage(substance: str, instrument: str) -> tuple[GenericCoverage, ...]:
    """The generic entries of ``instrument`` (a citation) known to cover ``substance``."""
    return tuple(c for c in GENERIC_COVERAGE
                 if c.substance == substance and c.instrument == instrument)


@dataclass(frozen=True)
class WatchList:
    """The substances to report. ``all_entries`` adds every entry of every schedule
    (``watch = "all"``): those get keys from ``name_key`` of their listed name."""

    substances: tuple[Substance, ...]
    all_entries: bool = False

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(s.key for s in self.substances)

    def get(self, key: str) -> Substance | None:
        for substance in self.substances:
            if substance.key == key:
                return substance
        return None

    def match(self, text: str) -> Substance | None:
        """The watched substance a listed name denotes exactly (after normalisation), if any."""
        wanted = name_key(text)
        for substance in self.substances:
            if any(name_key(n) == wanted for n in substance.names()):
                return substance
        return None


def build_watch_list(names: Iterable[str] | str) -> WatchList:
    """``"all"`` or a list of names/synonyms → a ``WatchList``. A name of the curated synonym
    table (say "fentanyl") is followed as written: matched by its normalised name. The
    configuration refuses names schedwatch does not know first
    (``jurisdictions.matching.check_watch_names``); parser tests use any name."""
    if isinstance(names, str):
        if names.strip().lower() != "all":
            raise ValueError(f"watch must be \"all\" or a list of names, not {names!r}")
        return WatchList(substances=KNOWN, all_entries=True)
    chosen: list[Substance] = []
    everything = WatchList(substances=KNOWN)
    for name in names:
        if not name.strip():
            raise ValueError("watch contains an empty name")
        substance = everything.match(name) or Substance(key=name_key(name), name=name.strip())
        if substance not in chosen:
            chosen.append(substance)
    if not chosen:
        raise ValueError("watch is empty; name at least one substance or use \"all\"")
    return WatchList(substances=tuple(chosen))
