"""Cross-jurisdiction keys: the same substance under another spelling gets one key where a
known synonym links the spellings, and keeps its own name (unmatched) where none does."""

from __future__ import annotations

from jurisdictions.matching import substance_key


def test_spellings_of_one_substance_share_a_key() -> None:
    assert substance_key("AMFETAMINE") == substance_key("Amphetamine") == "amphetamine"
    assert substance_key("LYSERGIDE") == substance_key("Lysergic acid diethylamide")
    assert substance_key("Heroin") == substance_key("DIAMORPHINE") == "diamorphine"
    assert substance_key("KETAMINE.") == substance_key("Kétamine") == "ketamine"
    assert substance_key("Spravato") == "esketamine"


def test_unknown_names_stay_unmatched_under_their_own_name() -> None:
    assert substance_key("N-ETHYLPENTYLONE") == "n-ethylpentylone"
    assert substance_key("Tiletamine") == "tiletamine"
    assert substance_key("Tiletamine") != substance_key("Zolazepam")
