"""The CLI's table lines up in a terminal whatever the caption's language."""

from mmattn.cli.ground import pad


def test_pad_counts_a_chinese_character_as_two_columns():
    assert pad("red", 6) == "red   "
    assert pad("红色", 6) == "红色  "  # 4 columns of text, 2 of padding
    assert pad("六边形的左边", 6) == "六边形的左边"  # wider than the column: never cut
