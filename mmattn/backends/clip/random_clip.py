"""Random-weight CLIP checkpoints in transformers' standard layout, made offline.

For tests and benchmarks on machines that cannot download a real CLIP: the folder has
``config.json`` + ``model.safetensors`` (random weights), a CLIP BPE tokenizer whose
vocabulary is the 256 byte-level symbols, their word-final forms and the given words, and
a ``CLIPImageProcessor`` config. It loads exactly like a real checkpoint, so it exercises
the real loading and grounding code; its maps mean nothing.

    folder = save_random_clip("tiny-clip")              # 2 layers of width 32: tests
    folder = save_random_clip("b16", "vit-b16")         # openai/clip-vit-base-patch16's sizes: timing
    folder = save_random_chinese_clip("tiny-cn-clip")   # Chinese-CLIP: a BERT text tower and vocab.txt
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

WORDS = (
    "a", "an", "the", "photo", "of", "and", "on", "in", "left", "right", "above", "below", "is", "there",
    "red", "green", "blue", "yellow", "white", "black", "small", "big", "large",
    "circle", "square", "triangle", "star", "dog", "cat", "grass", "sky", "tree", "car", "person", "man", "woman", "ball",
)  # fmt: skip


def write_tokenizer_files(folder: str | os.PathLike, words=WORDS) -> Path:
    """``vocab.json`` + ``merges.txt`` of a small CLIP BPE: every byte-level symbol alone and
    word-final (so any text tokenizes, unknown words as letter pieces), and each of ``words``
    as one token, built by merging left to right."""
    from tokenizers.pre_tokenizers import ByteLevel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    symbols = sorted(ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for tok in [*symbols, *(s + "</w>" for s in symbols)]:
        vocab.setdefault(tok, len(vocab))
    merges: list[str] = []
    for w in words:
        parts = [*w[:-1], w[-1] + "</w>"]
        while len(parts) > 1:
            merge = f"{parts[0]} {parts[1]}"
            if merge not in merges:
                merges.append(merge)
            parts = [parts[0] + parts[1], *parts[2:]]
            vocab.setdefault(parts[0], len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab.setdefault(special, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return folder


def clip_config(size: str = "tiny", *, special_ids: tuple[int, int, int] = (49406, 49407, 49407), vocab_size: int | None = None):
    """A CLIPConfig with eager attention: ``"tiny"`` (2 layers of width 32, 32 px images in
    8 px patches, about 75k parameters) or ``"vit-b16"`` (the sizes of
    openai/clip-vit-base-patch16: text 12 x 512, vision 12 x 768, 224 px in 16 px patches,
    E = 512). ``special_ids`` are the tokenizer's (bos, eos, pad) ids."""
    from transformers import CLIPConfig

    bos, eos, pad = special_ids
    ids = dict(bos_token_id=bos, eos_token_id=eos, pad_token_id=pad, max_position_embeddings=77)
    if size == "tiny":
        text = dict(vocab_size=vocab_size or 1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
        vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8)
        dim = 16
    elif size == "vit-b16":
        text = dict(vocab_size=vocab_size or 49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8)
        vision = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, image_size=224, patch_size=16)
        dim = 512
    else:
        raise ValueError(f"size must be 'tiny' or 'vit-b16' (got {size!r})")
    return CLIPConfig(text_config={**text, **ids}, vision_config=vision, projection_dim=dim, attn_implementation="eager")


def save_random_clip(folder: str | os.PathLike, size: str = "tiny", *, words=WORDS, seed: int = 0) -> Path:
    """Save a random CLIPModel (:func:`clip_config` ``size``), a small CLIP tokenizer and a
    CLIPImageProcessor to ``folder``; returns the folder."""
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer
    from transformers.utils import logging as hf_logging

    folder = Path(folder)
    files = write_tokenizer_files(folder / "_tokenizer_src", words)
    tok = CLIPTokenizer(vocab=str(files / "vocab.json"), merges=str(files / "merges.txt"))
    config = clip_config(size, special_ids=(tok.bos_token_id, tok.eos_token_id, tok.pad_token_id))
    if config.text_config.vocab_size < len(tok):
        raise ValueError(f"the text config's vocab_size {config.text_config.vocab_size} is smaller than the tokenizer ({len(tok)})")
    torch.manual_seed(seed)
    hf_logging.disable_progress_bar()
    CLIPModel._from_config(config, attn_implementation="eager").save_pretrained(folder)
    tok.save_pretrained(folder)
    px = config.vision_config.image_size
    CLIPImageProcessor(size={"shortest_edge": px}, crop_size={"height": px, "width": px}).save_pretrained(folder)
    for f in files.iterdir():
        f.replace(folder / f.name)  # vocab.json + merges.txt next to tokenizer.json, as on the hub
    files.rmdir()
    return folder


#: the vocabulary of the tiny random Chinese-CLIP: specials, the prompt's characters, a few
#: Chinese characters and English words, a WordPiece continuation and punctuation
ZH_VOCAB = (
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "一", "张", "的", "照", "片", "。", "，", "！", ",", "!", ".",
    "红", "绿", "蓝", "色", "狗", "猫", "草", "地", "天", "空", "树", "车", "人", "球", "在", "上", "下", "左", "右", "和",
    "a", "an", "the", "photo", "of", "on", "in", "and", "red", "green", "blue", "dog", "cat", "grass", "sky", "tree", "car", "ball",
    "##s",
)  # fmt: skip


def save_random_chinese_clip(folder: str | os.PathLike, *, vocab=ZH_VOCAB, seed: int = 0) -> Path:
    """Save a random ChineseCLIPModel (text: a 2-layer BERT of width 32; vision as
    :func:`clip_config` ``"tiny"``), a BERT tokenizer over ``vocab`` and a
    ChineseCLIPImageProcessor to ``folder``; returns the folder."""
    from transformers import BertTokenizer, ChineseCLIPConfig, ChineseCLIPImageProcessor, ChineseCLIPModel
    from transformers.utils import logging as hf_logging

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertTokenizer(vocab=str(folder / "vocab.txt"))  # vocab=, not vocab_file= (ignored by the fast backend)
    # initializer_range 0.5: with BERT's 0.02 a random tower gives every text almost the same [CLS] state
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=64, pad_token_id=tok.pad_token_id, initializer_range=0.5)  # fmt: skip
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8)
    config = ChineseCLIPConfig(text_config=text, vision_config=vision, projection_dim=16, attn_implementation="eager")
    torch.manual_seed(seed)
    hf_logging.disable_progress_bar()
    ChineseCLIPModel._from_config(config, attn_implementation="eager").save_pretrained(folder)
    tok.save_pretrained(folder)
    ChineseCLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder
