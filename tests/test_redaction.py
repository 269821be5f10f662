"""What the registry stores of a client's text: cut to a number of bytes, between characters."""

from __future__ import annotations

from gqlchannels.redaction import CUT_MARKER, cut_text, is_cut, stored_variables


def test_text_within_the_cap_is_kept_whole():
    assert cut_text("é" * 50, 100) == "é" * 50


def test_text_over_the_cap_is_cut_to_it_and_marked():
    cut = cut_text("x" * 1000, 100)
    assert len(cut.encode()) == 100 and is_cut(cut)
    assert cut == "x" * (100 - len(CUT_MARKER)) + CUT_MARKER


def test_a_cut_never_splits_a_character():
    # Two bytes per character, and an odd number of bytes of room before the marker.
    cut = cut_text("é" * 1000, 101 + len(CUT_MARKER))
    assert cut == "é" * 50 + CUT_MARKER


def test_variables_within_the_cap_are_stored_as_an_object():
    assert stored_variables({"room": "lobby"}, 100) == {"room": "lobby"}


def test_variables_over_the_cap_are_stored_as_their_cut_json_text_with_secrets_redacted():
    stored = stored_variables({"token": "t" * 500, "note": "n" * 500}, 100)
    assert is_cut(stored) and len(stored.encode()) <= 100
    assert stored.startswith('{"token":"[redacted]","note":"nnn')
