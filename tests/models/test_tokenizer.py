"""Specification of mmattn.tokenizer.

- A tokenizer built from a corpus saves with save_pretrained and reloads identically with
  load_tokenizer and with transformers.AutoTokenizer.
- encode() keeps the word of every token: Chinese characters are one word each, an unknown
  English word becomes letter pieces of one word, odd characters never crash.
- Captions longer than MAX_TOKENS are cut at a word boundary and flagged; padding is masked
  out and belongs to no word.
"""

import pytest
import torch
from transformers import AutoTokenizer

from mmattn.models.tokenizer import (
    CLS_ID,
    MAX_TOKENS,
    PAD_ID,
    SEP_ID,
    UNK_ID,
    build_tokenizer,
    encode,
    load_tokenizer,
    split_words,
)

CORPUS = [
    "a small red circle left of the blue square",
    "a large green triangle above a yellow star",
    "the purple square is right of the orange circle",
    "红色的圆形在蓝色正方形的左边",
    "绿色的三角形在黄色星形的上面",
]

CAPTIONS = [
    "a small red circle left of the blue square",
    "A zebra, above the square!",
    "红色的圆形在蓝色正方形的左边",
    "the red 猫 is left of 3 squares",
    "",
]


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(CORPUS)


def tokens(tokenizer, ids) -> list[str]:
    return tokenizer.convert_ids_to_tokens(ids.tolist() if isinstance(ids, torch.Tensor) else ids)


def check_word_alignment(enc, b: int) -> None:
    """Every real token belongs to a word of enc.words[b]; words appear in order, each with >= 1 token."""
    n = int(enc.attention_mask[b].sum())
    wid = enc.word_ids[b]
    assert enc.ids[b, 0] == CLS_ID and enc.ids[b, n - 1] == SEP_ID
    assert wid[0] is None and wid[n - 1] is None
    inner = wid[1 : n - 1]
    assert all(w is not None for w in inner)
    assert inner == sorted(inner)  # non-decreasing
    assert sorted(set(inner)) == list(range(len(enc.words[b])))  # every word has a token


# ---- save / reload ------------------------------------------------------------------------


def test_save_and_reload_gives_the_same_ids_and_word_ids(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer.json").is_file()
    reloaded = {"load_tokenizer": load_tokenizer(tmp_path), "AutoTokenizer": AutoTokenizer.from_pretrained(tmp_path)}
    ref = encode(tok, CAPTIONS)
    for name, other in reloaded.items():
        enc = encode(other, CAPTIONS)
        assert torch.equal(enc.ids, ref.ids), name
        assert torch.equal(enc.attention_mask, ref.attention_mask), name
        assert enc.word_ids == ref.word_ids, name
        assert enc.words == ref.words, name
        for caption in CAPTIONS:  # the plain __call__ API agrees too
            a, b = tok(caption), other(caption)
            assert a["input_ids"] == b["input_ids"] and a.word_ids() == b.word_ids(), (name, caption)
        assert (other.pad_token_id, other.unk_token_id, other.cls_token_id, other.sep_token_id) == (
            PAD_ID, UNK_ID, CLS_ID, SEP_ID,
        )  # fmt: skip


def test_load_tokenizer_from_a_folder_without_tokenizer_json_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        load_tokenizer(tmp_path)


# ---- words --------------------------------------------------------------------------------


def test_known_words_are_single_tokens(tok):
    enc = encode(tok, ["a small red circle"])
    assert tokens(tok, enc.ids[0]) == ["[CLS]", "a", "small", "red", "circle", "[SEP]"]
    assert enc.word_ids[0] == [None, 0, 1, 2, 3, None]
    assert enc.words[0] == ["a", "small", "red", "circle"]


def test_lowercases_and_splits_punctuation(tok):
    assert split_words(tok, "Red,红色") == ["red", ",", "红色"]
    enc = encode(tok, ["A RED Circle."])
    assert enc.words[0] == ["a", "red", "circle", "."]
    assert tokens(tok, enc.ids[0])[1:-1] == ["a", "red", "circle", "."]


def test_chinese_words_are_found_and_every_character_stays_a_token(tok):
    caption = "红色的圆形在蓝色正方形的左边"
    enc = encode(tok, [caption])
    assert enc.words[0] == ["红色", "的", "圆形", "在", "蓝色", "正方形", "的", "左边"]
    assert tokens(tok, enc.ids[0])[1:-1] == list(caption)  # the token ids the model was trained on
    assert enc.word_ids[0] == [None, 0, 0, 1, 2, 2, 3, 4, 4, 5, 5, 5, 6, 7, 7, None]
    assert UNK_ID not in enc.ids[0].tolist()  # all seen in the corpus
    char_ids = tok(list(caption), is_split_into_words=True)["input_ids"]
    assert enc.ids[0].tolist() == char_ids  # segmenting changes which word a token belongs to, never the token


def test_chinese_outside_the_lexicon_falls_back_to_jieba(tok):
    # 圆 alone is no word of the world (圆形 is), 方块 is not either: jieba splits what the lexicon does not cover
    assert split_words(tok, "红色的圆在蓝色方块的左边") == ["红色", "的", "圆", "在", "蓝色", "方块", "的", "左边"]
    assert split_words(tok, "一个小的红色圆形") == ["一个", "小", "的", "红色", "圆形"]  # the grammar's own words


def test_unseen_chinese_character_is_an_unknown_piece_of_its_word(tok):
    enc = encode(tok, ["红色的猫"])
    assert enc.words[0] == ["红色", "的", "猫"]
    assert tokens(tok, enc.ids[0]) == ["[CLS]", "红", "色", "的", "[UNK]", "[SEP]"]
    assert enc.word_ids[0] == [None, 0, 0, 1, 2, None]


def test_every_generated_chinese_caption_splits_into_its_grammar_words(tok):
    from mmattn.scenes import make_sample

    for seed in range(40):
        s = make_sample(seed, lang="zh")
        for cap in [s.caption, *s.negatives]:
            assert split_words(tok, cap.text) == [w.text for w in cap.words]


def test_unknown_english_word_becomes_letter_pieces_of_one_word(tok):
    enc = encode(tok, ["a zebra left"])
    toks = tokens(tok, enc.ids[0])
    assert toks == ["[CLS]", "a", "z", "##e", "##b", "##r", "##a", "left", "[SEP]"]
    assert enc.word_ids[0] == [None, 0, 1, 1, 1, 1, 1, 2, None]
    assert UNK_ID not in enc.ids[0].tolist()


@pytest.mark.parametrize(
    "caption",
    [
        "a red 😀 circle",  # emoji
        "🟥🟦🟩",
        "red\u200bcircle and blue\u200c\u200d square",  # zero-width space / non-joiner / joiner
        "a red\x07 circle\x00\x1b",  # control characters
        "\u200fthe red circle\u200e \u202eleft\u202c",  # RTL / LTR marks and overrides
        "cafe\u0301 re\u0301sume\u0301 naïve",  # combining and precomposed accents
        "\ufeffa red circle",  # byte-order mark
        "   \t\n  ",  # whitespace only
        "العربية עברית ελληνικά",  # other scripts
        "x" * 200,  # one word far longer than max_input_chars_per_word
    ],
)
def test_odd_characters_never_crash_and_keep_the_alignment(tok, caption):
    enc = encode(tok, [caption, "a red circle"])
    assert enc.ids.shape[1] <= MAX_TOKENS
    for b in range(2):
        check_word_alignment(enc, b)


def test_invisible_and_control_characters_are_dropped_and_accents_stripped(tok):
    plain = encode(tok, ["the red circle"])
    for noisy in ["the red\x07 circle", "the red\u200b circle", "\u200fthe red circle\u200e", "the re\u0301d circle"]:
        enc = encode(tok, [noisy])
        assert torch.equal(enc.ids, plain.ids), repr(noisy)
        assert enc.word_ids == plain.word_ids, repr(noisy)


def test_emoji_is_one_unknown_word(tok):
    enc = encode(tok, ["red 😀 circle"])
    assert enc.words[0] == ["red", "😀", "circle"]
    assert tokens(tok, enc.ids[0]) == ["[CLS]", "red", "[UNK]", "circle", "[SEP]"]


# ---- length, padding, empty -----------------------------------------------------------------


def test_long_caption_is_truncated_at_a_word_boundary_and_flagged(tok):
    # 27 one-token words, then "zebra" (5 pieces) would straddle the limit of 30 inner tokens
    caption = " ".join(["circle"] * 27 + ["zebra", "red", "square"])
    enc = encode(tok, [caption, "a red circle"])
    assert enc.truncated == [True, False]
    assert enc.ids.shape[1] <= MAX_TOKENS
    n = int(enc.attention_mask[0].sum())
    assert n <= MAX_TOKENS
    assert enc.ids[0, n - 1] == SEP_ID
    assert enc.words[0] == ["circle"] * 27  # "zebra" does not fit whole, so it and the rest go
    assert tokens(tok, enc.ids[0, 1 : n - 1]) == ["circle"] * 27
    check_word_alignment(enc, 0)


def test_truncation_never_splits_a_word(tok):
    caption = " ".join(["zebra"] * 10)  # 5 pieces each: 6 words fill the 30 inner tokens exactly
    enc = encode(tok, [caption])
    assert enc.truncated == [True]
    assert enc.words[0] == ["zebra"] * 6
    assert enc.ids.shape == (1, MAX_TOKENS) and enc.ids[0, -1] == SEP_ID
    check_word_alignment(enc, 0)
    # one piece short of the limit: the fifth word would not fit whole
    enc = encode(tok, [caption], max_tokens=28)
    assert enc.words[0] == ["zebra"] * 5 and enc.ids.shape[1] == 27


def test_caption_exactly_at_the_limit_is_not_truncated(tok):
    caption = " ".join(["circle"] * (MAX_TOKENS - 2))
    enc = encode(tok, [caption])
    assert enc.truncated == [False]
    assert enc.ids.shape == (1, MAX_TOKENS)
    enc = encode(tok, [caption + " circle"])
    assert enc.truncated == [True] and enc.ids.shape == (1, MAX_TOKENS)


def test_padding_is_masked_and_belongs_to_no_word(tok):
    enc = encode(tok, ["a red circle", "a small red circle left of the blue square", ""])
    B, T = enc.ids.shape
    assert enc.attention_mask.dtype == torch.bool and enc.attention_mask.shape == (B, T)
    lengths = enc.attention_mask.sum(1).tolist()
    assert lengths == [5, 11, 2] and T == 11
    for b in range(B):
        n = lengths[b]
        assert enc.attention_mask[b, :n].all() and not enc.attention_mask[b, n:].any()
        assert (enc.ids[b, n:] == PAD_ID).all()
        assert all(w is None for w in enc.word_ids[b][n:])
        assert len(enc.word_ids[b]) == T
        check_word_alignment(enc, b)


def test_empty_caption_is_just_cls_sep(tok):
    enc = encode(tok, [""])
    assert enc.ids.tolist() == [[CLS_ID, SEP_ID]]
    assert enc.attention_mask.tolist() == [[True, True]]
    assert enc.word_ids == [[None, None]]
    assert enc.words == [[]] and enc.truncated == [False]
