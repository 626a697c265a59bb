"""How translation pieces join: with spaces, or with nothing for unspaced scripts."""

import pytest

from simulpo.stream.units import join_pieces, piece_separator


@pytest.mark.parametrize(
    "lang, expected",
    [
        ("es", "hola mundo"),
        (None, "hola mundo"),
        ("zh", "holamundo"),
        ("zh-Hans", "holamundo"),
        ("JA", "holamundo"),
        ("th", "holamundo"),
    ],
)
def test_pieces_join_with_spaces_or_nothing(lang, expected):
    # empty pieces are waits; pieces' own edge spaces never double up
    assert join_pieces(["hola", "", " mundo "], lang) == expected


def test_chinese_pieces_join_without_spaces():
    assert join_pieces(["我", "", "爱", "你们"], "zh") == "我爱你们"
    assert piece_separator("zh") == "" and piece_separator("de") == " "
