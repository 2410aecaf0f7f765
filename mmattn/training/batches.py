"""Shapes-world samples -> training tensors with their supervision targets.

Index letters: B images, T tokens, P patches (= gh * gw).

Every image comes with its true caption and one counterfactual ("negative") caption, so a
batch has B images and 2B captions: rows [0, B) are the true captions, [B, 2B) the negatives.
"""

from __future__ import annotations

import numpy as np
import torch

from mmattn.api.image import target_size, to_tensor
from mmattn.api.maps import patch_coverage
from mmattn.models.tokenizer import encode
from mmattn.scenes import COLOURS, SHAPES, ZH_COLOURS, ZH_SHAPES

CONTENT = ("colour", "shape", "size")
SIZES = ("small", "large")
SIZE_WORDS = {"small": ("small", "小"), "large": ("large", "big", "大")}


def _attribute_present(word: str, objects) -> bool:
    """Does any object in the scene have the colour / shape / size that ``word`` names?"""
    for o in objects:
        if word in (o.colour, o.shape) or word in SIZE_WORDS[o.size]:
            return True
        if word in ZH_COLOURS[o.colour] or word in ZH_SHAPES[o.shape]:
            return True
    return False


#: where a relation puts the landmark's bonus side, in image coordinates (x right, y down):
#: "left" favours patches left of the landmark
RELATION_DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "above": (0.0, -1.0), "below": (0.0, 1.0)}
RELATION_NEGATIVES = 0.5  #: share of relational captions trained against their relation swap


def build_batch(samples, tokenizer, patch_size: int, rng: np.random.Generator, relation_negatives: float = RELATION_NEGATIVES,
                image_size: int | None = None) -> dict:  # fmt: skip
    """Collate samples (all of one image size) into tensors; ``relation_negatives`` is the
    share of relational captions whose counterfactual is their relation swap (the others
    draw one of their counterfactuals at random). The images are resized to ``image_size``
    by :mod:`mmattn.image`'s policy (default: their own longer side, which must then be a
    multiple of ``patch_size``), masks to the same patch grid."""
    W, H = samples[0].image.size
    if any(s.image.size != (W, H) for s in samples):
        raise ValueError("all images of a batch must have the same size")
    image_size = max(W, H) if image_size is None else image_size
    tw, th = target_size(W, H, image_size, patch_size)
    gh, gw = th // patch_size, tw // patch_size
    P, B = gh * gw, len(samples)
    negs = []
    for s in samples:
        # the relation swap is the hardest counterfactual (every word still names a real
        # object) and one of up to four: draw it for a share ``relation_negatives`` of them
        rel = [n for n in s.negatives if n.neg_kind == "relation"]
        if rel and rng.random() < relation_negatives:
            negs.append(rel[0])
        else:
            negs.append(s.negatives[rng.integers(len(s.negatives))] if s.negatives else None)
    captions = [s.caption for s in samples] + [n if n is not None else s.caption for n, s in zip(negs, samples)]
    enc = encode(tokenizer, [c.text for c in captions])
    T = enc.ids.size(1)

    match = torch.tensor([1.0] * B + [0.0] * B)
    match_w = torch.tensor([1.0] * B + [0.0 if n is None else 1.0 for n in negs])
    t2i = torch.zeros(B, T, P)
    t2i_w = torch.zeros(B, T)
    i2t = torch.zeros(B, P, T)
    grounded = torch.zeros(2 * B, T)
    grounded_w = torch.zeros(2 * B, T)
    patch_labels = torch.zeros(B, P, 3, dtype=torch.long)
    word_kind = torch.full((2 * B, T), -1, dtype=torch.long)  # index in CONTENT, -1 otherwise
    # the roles of a true relational caption's tokens, for an AnchorBias (mmattn.nn.anchor):
    # landmark (object 1's words), relation words, referent (object 0's words); its direction
    anchor_roles = torch.zeros(B, T, 3)
    anchor_dir = torch.zeros(B, 2)
    anchor_has = torch.zeros(B)
    for b, s in enumerate(samples):
        cov = np.stack([patch_coverage(o.mask, (gh, gw)).reshape(P) for o in s.objects])  # (K, P)
        attrs = np.array([[COLOURS.index(o.colour) + 1, SHAPES.index(o.shape) + 1, SIZES.index(o.size) + 1] for o in s.objects])
        # a patch shows the object covering most of it, if it covers at least a quarter; each
        # object also labels its best-covered patch, so that small objects are never unlabelled
        labels = np.where((cov.max(0) >= 0.25)[:, None], attrs[cov.argmax(0)], 0)  # (P, 3), 0 = background
        for k in range(len(s.objects)):
            labels[cov[k].argmax()] = attrs[k]
        patch_labels[b] = torch.from_numpy(labels)
        cov_t = torch.from_numpy(cov)
        for row, cap in ((b, captions[b]), (B + b, captions[B + b])):
            wids = enc.word_ids[row]
            if len(enc.words[row]) != len(cap.words):
                raise ValueError(f"tokenizer words {enc.words[row]} do not match caption words of {cap.text!r}")
            refs = {}  # object -> its content tokens
            for t, w in enumerate(wids):
                if w is None:
                    continue
                word = cap.words[w]
                is_content = word.kind in CONTENT and word.ref is not None
                if row < B and cap.relation is not None:
                    role = 1 if word.kind == "relation" else {1: 0, 0: 2}.get(word.ref) if is_content else None
                    if role is not None:
                        anchor_roles[b, t, role] = 1.0
                grounded_w[row, t] = 1.0
                if is_content:
                    word_kind[row, t] = CONTENT.index(word.kind)
                    grounded[row, t] = 1.0
                    if w in cap.changed:  # a counterfactual word: not grounded if nothing in the scene has it
                        grounded[row, t] = 0.0
                        grounded_w[row, t] = 0.0 if _attribute_present(word.text, s.objects) else 1.0
                    elif row < B:
                        refs.setdefault(word.ref, []).append(t)
                        t2i[b, t] = cov_t[word.ref] / cov_t[word.ref].sum().clamp(min=1e-6)
                        t2i_w[b, t] = 1.0
            if row < B and cap.relation is not None:
                anchor_dir[b] = torch.tensor(RELATION_DIRECTIONS[cap.relation])
                anchor_has[b] = 1.0
            if row < B:
                # image -> text: a patch's mass goes to the words of the object it shows,
                # in proportion to coverage; the rest ("nothing described here") to [CLS].
                rest = torch.ones(P)
                for k, toks in refs.items():
                    i2t[b][:, toks] += (cov_t[k] / len(toks))[:, None]
                    rest -= cov_t[k]
                i2t[b, :, 0] += rest.clamp(min=0)
    pixels = torch.stack([to_tensor(s.image, image_size, patch_size) for s in samples])
    return {
        "pixels": pixels,
        "ids": enc.ids,
        "attention_mask": enc.attention_mask,
        "match": match,
        "match_w": match_w,
        "t2i": t2i,
        "t2i_w": t2i_w,
        "i2t": i2t,
        "grounded": grounded,
        "grounded_w": grounded_w,
        "patch_labels": patch_labels,
        "word_kind": word_kind,
        "anchor_roles": anchor_roles,
        "anchor_dir": anchor_dir,
        "anchor_has": anchor_has,
        "ambiguous": torch.tensor([s.ambiguous for s in samples]),
    }
