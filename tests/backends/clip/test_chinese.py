"""Chinese-CLIP behind the CLIP backend, offline, on a tiny random ChineseCLIPModel saved in
transformers' standard layout (a 2-layer BERT text tower over a small vocab.txt).

It must load through ``Grounder.from_pretrained``, read one word per Chinese character (and
English words), say which languages it reads, embed texts as Chinese-CLIP does, and keep the
grounding contract of the other backends. Maps of random weights mean nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from clip_helpers import offline, photo

from mmattn import CheckpointError, Grounder
from mmattn.backends.clip.chinese import ChineseClipGrounder, split_words
from mmattn.backends.clip.grounder import ClipGrounder, is_clip_checkpoint
from mmattn.backends.clip.random_clip import save_random_chinese_clip

CAPTION = "红色的狗在草地上，a red dogs!"
WORDS = ["红色", "的", "狗", "在", "草地", "上", "a", "red", "dogs"]  # jieba's words, punctuation dropped


@pytest.fixture(scope="module")
def cn_dir(tmp_path_factory):
    return save_random_chinese_clip(tmp_path_factory.mktemp("cn") / "tiny-chinese-clip")


@pytest.fixture(scope="module")
def grounder(cn_dir) -> ChineseClipGrounder:
    with offline():
        return Grounder.from_pretrained(cn_dir)


@pytest.fixture(scope="module")
def cn_model(cn_dir):
    from transformers import ChineseCLIPModel

    return ChineseCLIPModel.from_pretrained(cn_dir, attn_implementation="eager").eval()


def test_a_chinese_clip_folder_loads_as_the_clip_backend(cn_dir, grounder):
    assert is_clip_checkpoint(cn_dir)
    assert isinstance(grounder, ChineseClipGrounder) and isinstance(grounder, ClipGrounder)
    assert grounder.backend == "Chinese-CLIP backend, zero-shot fusion"
    assert grounder.processor.languages == ("zh", "en")
    c = grounder.model.config
    assert (c.dim, c.patch_size, c.image_size, c.dense) == (16, 8, 32, "naclip")
    assert (c.prompt, c.neutral) == ("一张{}的照片。", "一张照片。")
    with offline():
        assert ChineseClipGrounder.from_pretrained(cn_dir, prompt="{}的照片。").model.config.prompt == "{}的照片。"
        with pytest.raises(CheckpointError, match="chinese_clip checkpoint, which ClipGrounder does not load"):
            ClipGrounder.from_pretrained(cn_dir)  # a backend loads its own kind; Grounder.from_pretrained picks it


def test_english_clip_reads_english_only(tmp_path):
    from mmattn.backends.clip.random_clip import save_random_clip

    with offline():
        g = Grounder.from_pretrained(save_random_clip(tmp_path / "clip"))
    assert type(g) is ClipGrounder and g.processor.languages == ("en",)


def test_words_are_jieba_words_and_english_words(grounder):
    assert split_words("红色的狗, A dog's 2 balls！") == ["红色", "的", "狗", ",", "a", "dog's", "2", "balls", "！"]
    r = grounder.ground(photo(80, 50), CAPTION, raw=True)
    assert r.words == WORDS
    assert r.raw.tokens[0] == "[CLS]" and r.raw.tokens[-1] == "[SEP]"
    dogs = [t for t, w in zip(r.raw.tokens, r.raw.word_ids) if w == 9]  # word 9 of all words (the "，" is 6)
    assert dogs == ["dog", "##s"]  # WordPiece pieces merged back through word_ids
    red = [t for t, w in zip(r.raw.tokens, r.raw.word_ids) if w == 0]
    assert red == ["红", "色"]  # a Chinese word's characters too
    assert r.unknown_words == []
    r = grounder.ground(photo(32, 32), "一只紫色的猫")  # 只 and 紫 are not in the tiny vocabulary
    assert r.words == ["一只", "紫色", "的", "猫"] and r.unknown_words == ["一只", "紫色"]
    assert not r.grounded[0] and not r.grounded[1]
    t = grounder.trace(photo(32, 32), "a red dgo")  # "did you mean" draws on the vocabulary's whole words
    assert t.unknown_words == ["dgo"] and t.suggestions == {"dgo": "dog"}


def test_caption_and_image_embeddings_are_chinese_clips(grounder, cn_model):
    captions = ["红色的狗在草地上", "a red dog"]
    enc = grounder.processor.encode(captions)
    px = grounder.processor.pixels([photo(32, 32)])
    with torch.no_grad():
        text = grounder.model.text_encoder(enc.ids, enc.attention_mask)
        _, _, image, _ = grounder.model.image_encoder(px)
        ref = grounder.tokenizer(captions, padding=True, return_tensors="pt")
        ref_t = cn_model.get_text_features(**ref).pooler_output
        ref_i = cn_model.get_image_features(pixel_values=px).pooler_output
    assert enc.ids.tolist() == ref["input_ids"].tolist()  # character by character = BERT's own split
    torch.testing.assert_close(text.caption, F.normalize(ref_t, dim=-1), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(image, F.normalize(ref_i, dim=-1), atol=1e-5, rtol=1e-4)


def test_each_word_reads_as_its_prompt(grounder, cn_model):
    enc = grounder.processor.encode(["红狗 dogs"])
    with torch.no_grad():
        text = grounder.model.text_encoder(enc.ids, enc.attention_mask)
        prompts = grounder.tokenizer(
            ["一张红的照片。", "一张狗的照片。", "一张dogs的照片。", "一张照片。"], padding=True, return_tensors="pt"
        )
        ref = F.normalize(cn_model.get_text_features(**prompts).pooler_output, dim=-1)
    tokens = grounder.tokenizer.convert_ids_to_tokens(enc.ids[0])
    assert tokens == ["[CLS]", "红", "狗", "dog", "##s", "[SEP]"]
    torch.testing.assert_close(text.tokens[0, 1], ref[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(text.tokens[0, 2], ref[1], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(text.tokens[0, 3], ref[2], atol=1e-5, rtol=1e-4)  # both pieces of "dogs": one word
    torch.testing.assert_close(text.tokens[0, 4], ref[2], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(text.neutral, ref[3], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(text.tokens[0, 0], text.caption[0])  # [CLS] (the pooling position) reads the caption
    torch.testing.assert_close(text.tokens[0, 5], text.neutral)  # [SEP] reads "a photo."
    assert text.content[0].tolist() == [False, True, True, True, True, False]


@pytest.mark.parametrize("method", ["attention", "rollout", "gradcam", "legrad"])
def test_grounding_contract(grounder, method):
    r = grounder.ground(photo(80, 50), CAPTION, method=method)
    assert r.method == method and r.words == WORDS and r.grid == (2, 4)
    assert r.word_maps.shape == (len(WORDS), 50, 80) and np.isfinite(r.word_maps).all()
    assert r.word_maps.max() == pytest.approx(1.0)
    for word, g, box in zip(r.words, r.grounded, r.boxes):
        assert (box is not None) == g
        if word in ("的", "在", "上", "a"):
            assert not g  # function words are never grounded


def test_batch_equals_single(grounder):
    images, captions = [photo(80, 50, 1), photo(40, 40, 2)], [CAPTION, "蓝色的天空和绿色的树"]
    for im, cap, b in zip(images, captions, grounder.ground_batch(images, captions)):
        s = grounder.ground(im, cap)
        assert b.words == s.words and b.grounded == s.grounded
        np.testing.assert_allclose(b.patch_maps, s.patch_maps, atol=1e-5)


def test_long_captions_are_cut_by_whole_words(grounder):
    r = grounder.ground(photo(32, 32), "红 " * 40)  # 40 one-character words (jieba pairs 红红 when unspaced)
    assert r.truncated and r.notice and len(r.words) == 30
