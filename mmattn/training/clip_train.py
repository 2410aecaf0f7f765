"""Train the CLIP backend's fusion on top of frozen CLIP towers: ``mmattn train --clip FOLDER``.

Only the fusion layers and the score scales train (they start from the zero-shot
initialisation of :mod:`mmattn.clip`); CLIP's towers stay frozen. Two sources of data:

- the **shapes world** (default): English captions, each with a counterfactual negative and
  the objects' masks. Losses: match (true vs counterfactual caption), both attention
  directions of every fusion layer towards the masks (as ``mmattn train``), grounded flags;
- ``--jsonl FILE``: lines ``{"image": path, "caption": text}`` (paths relative to the file).
  Images are resized and centre-cropped to a square, as CLIP was trained. Loss: match only,
  each caption against its own image vs the next pair's caption; the maps learn through the
  match score's local term (weak supervision).

Checkpoints go to ``OUT/last`` (:func:`mmattn.clip_grounding.save_clip_checkpoint`): a
self-contained folder that ``Grounder.from_pretrained`` and ``MMATTN_MODEL`` load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from mmattn.api.grounder import Grounder
from mmattn.api.image import load_image
from mmattn.backends.clip.grounder import ClipGrounder, save_clip_checkpoint
from mmattn.scenes import TRAIN, make_sample
from mmattn.training.batches import build_batch
from mmattn.training.state import check_writable
from mmattn.training.train import _at_least, attention_ce, lr_at

log = logging.getLogger(__name__)


@dataclass
class ClipTrainConfig:
    clip: str = ""  # the CLIP checkpoint (folder or hub id) whose towers are used, frozen
    out: str = "runs/clip"  # checkpoints go to OUT/last
    jsonl: str | None = None  # image/caption pairs; None = the shapes world
    steps: int = 300
    batch_size: int = 16  # images per step (each with a true and a negative caption)
    lr: float = 1e-4  # small: training starts from a working zero-shot model
    warmup: int = 20
    seed: int = 0
    grounding: bool = True  # pull the attention towards the object masks (shapes world)
    ckpt_every: int = 100
    minutes: float | None = None  # stop (and save) after this much training time

    def __post_init__(self):
        for name, least in (("steps", 1), ("batch_size", 1), ("ckpt_every", 1), ("warmup", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{name} must be a whole number >= {least} (got {value!r})")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0 (got {self.lr!r})")


# ---- batches ----------------------------------------------------------------------------
def shapes_batch(g: ClipGrounder, cfg: ClipTrainConfig, step: int) -> dict:
    """A shapes-world batch at the model's input size: square or 4:3 either way (sides >= 32 px)."""
    s, p = g.model.config.image_size, g.model.config.patch_size
    r = max(p, round(s * 0.75 / p) * p)
    sizes = [(s, s)] + ([(s, r), (r, s)] if r >= 32 else [])
    w, h = sizes[step % len(sizes)]
    base = (cfg.seed * 1_000_003 + step) * cfg.batch_size
    samples = [make_sample(base + k, w, h, TRAIN, lang="en") for k in range(cfg.batch_size)]
    batch = build_batch(samples, g.tokenizer, p, np.random.default_rng(base))
    batch["pixels"] = g.processor.pixels([smp.image for smp in samples])  # CLIP's normalisation
    return batch


def read_jsonl(path: str | Path) -> list[tuple[Path, str]]:
    """[(image path, caption)] from a JSONL file; image paths are relative to the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no JSONL file at {str(path)!r}: check the path")
    pairs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            image, caption = Path(d["image"]), str(d["caption"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f'{path}:{n}: expected {{"image": path, "caption": text}} ({e})') from e
        pairs.append((image if image.is_absolute() else path.parent / image, caption))
    if len(pairs) < 2:
        raise ValueError(f"{path} has {len(pairs)} pairs: need at least 2 (the other pairs' captions are the negatives)")
    return pairs


def _square(im: Image.Image, side: int) -> Image.Image:
    """Resize the shorter side to ``side`` and crop the centre square (CLIP's training crop)."""
    s = side / min(im.size)
    im = im.resize((max(side, round(im.width * s)), max(side, round(im.height * s))), Image.Resampling.BICUBIC)
    x, y = (im.width - side) // 2, (im.height - side) // 2
    return im.crop((x, y, x + side, y + side))


def jsonl_batch(g: ClipGrounder, pairs: list, cfg: ClipTrainConfig, step: int) -> dict:
    """B pairs; captions [true (B), the next pair's (B)] with match targets 1 and 0."""
    rng = np.random.default_rng(cfg.seed * 1_000_003 + step)
    idx = rng.choice(len(pairs), size=min(cfg.batch_size, len(pairs)), replace=False)
    side = g.model.config.image_size
    images = [_square(load_image(pairs[i][0]), side) for i in idx]
    true = [pairs[i][1] for i in idx]
    neg = true[1:] + true[:1]
    enc = g.processor.encode(true + neg)
    B = len(idx)
    return {
        "pixels": g.processor.pixels(images),
        "ids": enc.ids,
        "attention_mask": enc.attention_mask,
        "match": torch.tensor([1.0] * B + [0.0] * B),
        "match_w": torch.tensor([1.0] * B + [float(n != t) for n, t in zip(neg, true)]),
    }


# ---- losses -------------------------------------------------------------------------------
def compute_losses(model, batch: dict, cfg: ClipTrainConfig) -> tuple[torch.Tensor, dict]:
    B = batch["pixels"].size(0)
    out = model(batch["ids"], batch["pixels"], batch["attention_mask"], output_fusion_attentions=True)
    bce = F.binary_cross_entropy_with_logits(out.match_logits, batch["match"], reduction="none")
    losses = {"match": (bce * batch["match_w"]).sum() / batch["match_w"].sum()}
    if "t2i" in batch and cfg.grounding:
        losses["t2i"] = attention_ce([w[:B] for w in out.text_to_image], batch["t2i"], batch["t2i_w"])
        losses["i2t"] = attention_ce([w[:B] for w in out.image_to_text], batch["i2t"])
    if "grounded" in batch:
        bce = F.binary_cross_entropy_with_logits(out.grounded_logits, batch["grounded"], reduction="none")
        losses["grounded"] = (bce * batch["grounded_w"]).sum() / batch["grounded_w"].sum().clamp(min=1)
    with torch.no_grad():
        hit = ((out.match_logits > 0).float() == batch["match"]).float()
        stats = {"match_acc": float((hit * batch["match_w"]).sum() / batch["match_w"].sum())}
    return sum(losses.values()), {**{k: float(v.detach()) for k, v in losses.items()}, **stats}


def train(cfg: ClipTrainConfig) -> ClipGrounder:
    """Train the fusion of ``cfg.clip``'s CLIP backend; returns the grounder (in eval mode)."""
    if not cfg.clip:
        raise ValueError("pass the CLIP checkpoint to train on: --clip FOLDER (or a hub id)")
    check_writable(cfg.out)  # before the towers are loaded and any step is spent
    torch.manual_seed(cfg.seed)
    g = Grounder.from_pretrained(cfg.clip)
    if not isinstance(g, ClipGrounder):
        raise ValueError(f"{cfg.clip} is not a CLIP or Chinese-CLIP checkpoint: --clip trains the CLIP backend's fusion")
    model = g.model
    pairs = read_jsonl(cfg.jsonl) if cfg.jsonl else None
    params = [p for p in model.parameters() if p.requires_grad]  # fusion layers and score scales
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)  # decay would pull q/k away from CLIP's similarity
    last = Path(cfg.out) / "last"
    info = {"base": cfg.clip, "data": cfg.jsonl or "shapes world (English)", "train_config": dataclasses.asdict(cfg)}
    bar = tqdm(total=cfg.steps, desc="train (CLIP fusion)", dynamic_ncols=True)
    t0, ema = time.time(), {}
    model.train()
    for step in range(cfg.steps):
        batch = jsonl_batch(g, pairs, cfg, step) if pairs else shapes_batch(g, cfg, step)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss, stats = compute_losses(model, batch, cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        for k, v in {"loss": float(loss.detach()), **stats}.items():
            ema[k] = v if k not in ema else 0.9 * ema[k] + 0.1 * v
        bar.update(1)
        bar.set_postfix({k: f"{ema[k]:.3f}" for k in ("loss", "match_acc")})
        minutes = (time.time() - t0) / 60
        done = step + 1 == cfg.steps or (cfg.minutes is not None and minutes >= cfg.minutes)
        if (step + 1) % cfg.ckpt_every == 0 or done:
            model.eval()
            save_clip_checkpoint(g, last, {**info, "step": step + 1, "minutes": round(minutes, 2), "last": ema})
            model.train()
        if done:
            break
    bar.close()
    model.eval()
    return g


def parser() -> argparse.ArgumentParser:
    d = ClipTrainConfig()
    p = argparse.ArgumentParser(prog="mmattn train --clip",
                                description="Train the CLIP backend's fusion layers on frozen CLIP towers.")  # fmt: skip
    p.add_argument("--clip", required=True, help="CLIP checkpoint folder (or hub id) whose towers are used")
    p.add_argument("--jsonl", default=None, help='image/caption pairs, one {"image": path, "caption": text} per line '
                   "(default: the shapes world)")  # fmt: skip
    p.add_argument("--out", default=d.out, help="output folder (the checkpoint goes to OUT/last)")
    p.add_argument("--steps", type=_at_least(1), default=d.steps)
    p.add_argument("--batch-size", type=_at_least(1), default=d.batch_size, help="images per step")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--grounding", action=argparse.BooleanOptionalAction, default=d.grounding, help="mask loss (shapes world)")
    p.add_argument("--ckpt-every", type=_at_least(1), default=d.ckpt_every)
    p.add_argument("--minutes", type=float, default=None, help="stop after this much training time")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    train(ClipTrainConfig(**{k.replace("-", "_"): v for k, v in vars(args).items()}))


if __name__ == "__main__":
    main()
