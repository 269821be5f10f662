"""The decode seam: what ``loads`` accepts, and the nesting depth it bounds."""

from __future__ import annotations

import pytest

from gqlchannels.json import MalformedJSON, dumps, loads


def nested_arrays(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_a_text_nested_exactly_max_depth_deep_decodes():
    assert loads(nested_arrays(5), max_depth=5) == [[[[[]]]]]


def test_a_text_nested_one_level_deeper_than_max_depth_is_malformed():
    with pytest.raises(MalformedJSON, match="nested more than 5 levels"):
        loads(nested_arrays(6), max_depth=5)


def test_objects_and_arrays_count_alike_towards_the_depth():
    with pytest.raises(MalformedJSON):
        loads('{"a": [{"b": [1]}]}', max_depth=3)


def test_depth_is_the_deepest_branch_not_the_number_of_containers():
    wide = dumps({"a": [[1], [2]], "b": {"c": [3]}, "d": [{"e": 4}]})
    assert loads(wide, max_depth=3)["d"] == [{"e": 4}]


def test_brackets_inside_strings_do_not_count():
    text = dumps({"query": "{ a { b { c { d } } } }", "list": "[[[["})
    assert loads(text, max_depth=1)["list"] == "[[[["


def test_bytes_are_bounded_like_text():
    with pytest.raises(MalformedJSON):
        loads(nested_arrays(3).encode(), max_depth=2)


def test_scalars_have_no_depth():
    assert loads('"[[[["', max_depth=1) == "[[[["


def test_without_max_depth_nesting_is_bounded_only_by_the_decoder():
    assert loads(nested_arrays(200)) is not None


def test_nesting_the_decoder_refuses_is_malformed():
    with pytest.raises(MalformedJSON):
        loads(nested_arrays(100_000))


def test_max_depth_zero_refuses_any_object_or_array():
    with pytest.raises(MalformedJSON):
        loads("{}", max_depth=0)
