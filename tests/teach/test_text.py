"""The page's words: one module per language with the same keys and placeholders, read through
``t(key, lang, **values)``."""

import re

import pytest

from mmattn.teach import text
from mmattn.teach.text_en import TEXT as EN
from mmattn.teach.text_zh import TEXT as ZH


def test_both_languages_have_the_same_keys():
    assert set(EN) == set(ZH), sorted(set(EN) ^ set(ZH))


@pytest.mark.parametrize("key", sorted(EN))
def test_both_languages_fill_the_same_placeholders(key):
    en, zh = EN[key], ZH[key]
    assert type(en) is type(zh), key
    if isinstance(en, list):
        assert len(en) == len(zh), key
    assert text.placeholders(en) == text.placeholders(zh), key


@pytest.mark.parametrize("key", sorted(EN))
def test_every_template_formats(key):
    """Every value is a valid format template (a stray brace would fail only when shown)."""
    for lang in text.LANGS:
        names = text.placeholders(text.TEXTS[lang][key])
        values = {n: 0.5 for n in names}
        out = text.t(key, lang, **values)
        assert out, (key, lang)


FORMULAS = {"fig_sqrt_d", "jump_name", "jump_named"}  #: the same in both languages: a formula, or a template of placeholders and CJK punctuation


def test_chinese_text_is_chinese():
    """A Chinese value long enough to be a sentence has Chinese in it (it is not a copy of the English)."""
    copied = [k for k, v in ZH.items() if isinstance(v, str) and len(v) > 12 and not re.search(r"[\u4e00-\u9fff]", v)]
    assert sorted(copied) == sorted(FORMULAS)


def test_t_fills_values_and_names_bad_keys_and_languages():
    assert text.t("note_unknown", "en", word="sqare") == '"sqare" is not in the model\'s vocabulary.'
    assert "sqare" in text.t("note_unknown", "zh", word="sqare")
    assert text.t("fig_hover_v", "en") == "what %{y} hands over when it is chosen"  # literal braces kept for Plotly
    with pytest.raises(KeyError, match="no_such_key"):
        text.t("no_such_key")
    with pytest.raises(ValueError, match="'fr'"):
        text.t("title", "fr")


def test_page_table_has_no_placeholders_and_numbers_the_stages_once():
    for lang in text.LANGS:
        table = text.page_table(lang)
        assert all("{" not in v or "%{" in v for v in table.values())
        labels = [table[f"stage_label_{n}"] for n in text.STAGE_NAMES]
        assert [int(label.split(" · ")[0]) for label in labels] == list(range(1, len(text.STAGE_NAMES) + 1))
    assert text.STAGE_NAMES[:3] == ("q", "k", "v")  # Q, Kᵀ and V come first
    tr = text.translations()
    assert tr["zh-CN"] is tr["zh"] and tr["en"]["ground_button"] == "Ground" and tr["zh"]["ground_button"] == "定位"
