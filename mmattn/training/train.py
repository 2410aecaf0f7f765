"""Train a GroundingModel on the shapes world: ``mmattn train`` / ``python -m mmattn.train``.

Losses (each switchable):
- match: binary cross-entropy, true caption vs. a counterfactual one (hard negative);
- contrastive: optional in-batch InfoNCE on the pooled unimodal embeddings;
- grounding: both attention directions of every fusion layer (mean over heads) pulled
  towards the object masks, text->image and image->text;
- aux: every patch predicts the colour, shape and size of the object it shows;
- grounded: is each word located in the image (content words yes, function words and
  counterfactual words naming nothing in the scene no).

Speed and stability: ``--precision bfloat16`` runs forward and backward under bfloat16
autocast (on the 2-core development CPU, which has AVX-512 BF16, a training step alone takes
about 0.73x the time, and a whole run makes about 1.2x the steps; the losses are computed in
float32), and ``--ema 0.998`` publishes an exponential moving average of the weights
(torch's ``AveragedModel``, with a warm-up of the decay): the averaged model is what is
evaluated and saved, so that a checkpoint taken while the learning rate is still high is
not the noisy last step.

Checkpoints (``OUT/last``, the ``--snapshots``) are written, checked and read back by
:mod:`mmattn.train_state`; ``--resume`` continues the step, the clock and the evaluation
history, and logs where it started.

Multi-process: ``torchrun --nproc_per_node N -m mmattn.train ...`` (gloo on CPU, NCCL on
GPUs); every process draws its own scenes, rank 0 evaluates and saves.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, IterableDataset
from tqdm.auto import tqdm

from mmattn.api.precision import ARITHMETICS
from mmattn.models.grounding_model import PATCH_CLASSES, GroundingConfig, GroundingModel
from mmattn.models.tokenizer import build_tokenizer, load_tokenizer
from mmattn.scenes import TRAIN, caption_corpus, make_sample
from mmattn.scenes.relational import make_relational_sample
from mmattn.training.batches import build_batch
from mmattn.training.config import MAX_SIDE, MIN_SIDE, TRAIN_SIZES, TrainConfig  # noqa: F401 -- TrainConfig's home was this module
from mmattn.training.state import (
    check_resumable,
    check_writable,
    checkpoint_dir,
    copy_checkpoint,
    load_train_state,
    save_checkpoint,
    snapshot_dir,
    taken_snapshots,
)

log = logging.getLogger(__name__)

class BatchStream(IterableDataset):
    """Training batches ``start, start+1, ...``: batch j of process r is made of the scenes
    with seeds from (seed, j, r), so a run is reproducible and resumable at any step."""

    def __init__(self, cfg: TrainConfig, tokenizer, patch_size: int, start: int, rank: int = 0, world: int = 1):
        self.cfg, self.tokenizer, self.patch_size = cfg, tokenizer, patch_size
        self.start, self.rank, self.world = start, rank, world

    def batch(self, j: int) -> dict:
        base = ((self.cfg.seed * 1_000_003 + j) * self.world + self.rank) * self.cfg.batch_size
        n = len(self.cfg.sizes)
        w, h = self.cfg.sizes[j % n]
        scale = self.cfg.render_scales[(j // n) % len(self.cfg.render_scales)]
        rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
        rng = np.random.default_rng(base)
        relational = rng.random(self.cfg.batch_size) < self.cfg.relational
        samples = [(make_relational_sample if rel else make_sample)(base + k, rw, rh, TRAIN) for k, rel in enumerate(relational)]
        return build_batch(samples, self.tokenizer, self.patch_size, rng, self.cfg.relation_negatives, image_size=max(w, h))

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        j = self.start + wid
        while j < self.cfg.steps:
            yield self.batch(j)
            j += nw


def attention_ce(weights: list[torch.Tensor], target: torch.Tensor, row_w: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy between target rows and the head-mean attention rows, averaged over layers.
    weights: per layer (B, H, Lq, Lk); target (B, Lq, Lk) rows summing to 1; row_w (B, Lq)."""
    losses = []
    for w in weights:
        ce = -(target * torch.log(w.float().mean(1) + 1e-6)).sum(-1)  # (B, Lq), float32 under autocast too
        losses.append((ce * row_w).sum() / row_w.sum().clamp(min=1) if row_w is not None else ce.mean())
    return torch.stack(losses).mean()


def compute_losses(model: GroundingModel, batch: dict, cfg: TrainConfig) -> tuple[torch.Tensor, dict]:
    B = batch["pixels"].size(0)
    with torch.autocast(batch["pixels"].device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bfloat16"):
        out = model(batch["ids"], batch["pixels"], batch["attention_mask"], output_fusion_attentions=True)
    losses, stats = {}, {}  # every loss in float32, whatever the arithmetic of the model
    if cfg.match:
        bce = F.binary_cross_entropy_with_logits(out.match_logits.float(), batch["match"], reduction="none")
        losses["match"] = (bce * batch["match_w"]).sum() / batch["match_w"].sum()
    if cfg.contrastive:
        logits = out.text_embeds[:B].float() @ out.image_embeds.float().T / 0.07  # (B, B)
        labels = torch.arange(B, device=logits.device)
        losses["contrastive"] = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    if cfg.grounding:
        losses["t2i"] = attention_ce([w[:B] for w in out.text_to_image], batch["t2i"], batch["t2i_w"])
        losses["i2t"] = attention_ce([w[:B] for w in out.image_to_text], batch["i2t"])
    if cfg.aux:
        logits = out.patch_logits.float().split(PATCH_CLASSES, dim=-1)
        labels = batch["patch_labels"]  # (B, P, 3), 0 = background
        obj = labels[..., 0] > 0  # (B, P): object patches are few, so they weigh as much as all background together
        ce = torch.stack([F.cross_entropy(lg.transpose(1, 2), labels[..., k], reduction="none") for k, lg in enumerate(logits)], -1)
        losses["aux"] = (ce[obj].mean() if obj.any() else ce.sum() * 0) + ce[~obj].mean() * 0.5
        with torch.no_grad():
            stats["shape_acc"] = float((logits[1].argmax(-1) == labels[..., 1])[obj].float().mean()) if obj.any() else 0.0
    if cfg.grounded:
        bce = F.binary_cross_entropy_with_logits(out.grounded_logits.float(), batch["grounded"], reduction="none")
        losses["grounded"] = (bce * batch["grounded_w"]).sum() / batch["grounded_w"].sum().clamp(min=1)
    anchor = getattr(getattr(model, "module", model).fusion[-1], "anchor", None)
    if cfg.anchor and anchor is not None and getattr(anchor, "parts", None) is not None:
        losses["anchor"] = anchor_loss(anchor.parts, batch, B)
    with torch.no_grad():
        stats["match_acc"] = float(((out.match_logits > 0).float() == batch["match"]).float().mul(batch["match_w"]).sum() / batch["match_w"].sum())
        t2i = out.text_to_image[-1][:B].mean(1)  # (B, T, P)
        hit = batch["t2i"].gather(-1, t2i.argmax(-1, keepdim=True)).squeeze(-1) > 0  # peak inside the object
        stats["point"] = float((hit.float() * batch["t2i_w"]).sum() / batch["t2i_w"].sum().clamp(min=1))
    # every output joins the graph (with weight 0), so that DDP sees a gradient for every
    # parameter even when a loss is switched off or an output feeds no loss
    keep = (out.image_features, out.text_embeds, out.image_embeds, out.patch_logits, out.grounded_logits, out.match_logits)
    total = sum(losses.values()) + 0.0 * sum(t.mean() for t in keep)
    return total, {**{k: float(v.detach()) for k, v in losses.items()}, **stats}


#: The gate's supervision against the attention loss. With a wedge that gave a bonus fading
#: towards its edges, the attention loss pulled the gate down (d loss/d gate > 0 on 98% of
#: referent tokens; weighed 1x, the gate settled at 0.3-0.5 of its target 1 and the referent
#: was found in 0.77 of scenes, 0.94 with the true gate). Weighed 10x it settles near 1, and
#: near 0 on every other word, which the penalty-only wedge needs (mmattn.nn.anchor).
GATE_WEIGHT = 10.0


def anchor_loss(parts: dict, batch: dict, B: int) -> torch.Tensor:
    """Supervise an AnchorBias's reading of the true captions (rows [0, B)): its landmark
    and relation-word roles (cross-entropy against the tokens of object 1 and of the relation
    word), its direction (squared error against the relation's unit vector) and its gate
    (binary cross-entropy: 1 on the referent's tokens of a relational caption, 0 on every
    other real token; the two groups weigh half each)."""
    has = batch["anchor_has"]  # (B,)
    roles, target = parts["roles"][:B].float(), batch["anchor_roles"]  # (B, T, 2), (B, T, 3)
    loss = roles.new_zeros(())
    if has.sum() > 0:
        for k in (0, 1):
            t = target[..., k] / target[..., k].sum(1, keepdim=True).clamp(min=1)
            ce = -(t * torch.log(roles[..., k] + 1e-6)).sum(1)  # (B,)
            loss = loss + (ce * has).sum() / has.sum()
        err = (parts["direction"][:B].float() - batch["anchor_dir"]).square().sum(-1)
        loss = loss + (err * has).sum() / has.sum()
    # the gate: referent tokens (few) and every other real token weigh half each, so that the
    # many zeros do not drown the few ones; GATE_WEIGHT: see there
    real = batch["attention_mask"][:B].float()  # (B, T)
    on = target[..., 2] * real
    off = real - on
    err = F.binary_cross_entropy_with_logits(parts["gate_logit"][:B].float(), target[..., 2], reduction="none")
    gate = (err * on).sum() / on.sum().clamp(min=1) / 2 + (err * off).sum() / off.sum().clamp(min=1) / 2
    return loss + GATE_WEIGHT * gate


def lr_at(step: int, cfg: TrainConfig, minutes: float | None = None) -> float:
    """Linear warm-up, then cosine decay to 5% of ``cfg.lr``. With a time budget
    (``cfg.minutes``) and the ``minutes`` trained so far, the decay follows whichever of
    steps and time runs out first, so a run cut short by the clock still ends annealed."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    if cfg.minutes and minutes is not None:
        progress = max(progress, minutes / cfg.minutes)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def ema_average(decay: float):
    """``multi_avg_fn`` for :class:`AveragedModel`: an exponential moving average whose decay
    warms up as (1 + n) / (10 + n) after n updates (as timm's ModelEma), so that the random
    initial weights do not linger in the average."""

    def average(averaged: list[torch.Tensor], current: list[torch.Tensor], n) -> None:
        d = min(decay, (1 + float(n)) / (10 + float(n)))
        floats = [(a, c) for a, c in zip(averaged, current) if a.is_floating_point()]
        if floats:  # what torch's get_ema_multi_avg_fn does
            torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], 1 - d)
        for a, c in zip(averaged, current):
            if not a.is_floating_point():  # integer buffers (indices) are copied, not averaged
                a.copy_(c)

    return average


def initial_model(folder: str, overrides: dict) -> tuple:
    """(tokenizer, model) to fine-tune from the checkpoint ``folder``: its config with
    ``overrides``, its weights; parameters the checkpoint lacks (sublayers added by an
    override, such as ``fusion_self_attention``) keep their initialisation."""
    import dataclasses

    from safetensors.torch import load_file

    base = GroundingModel.load(folder)
    model = GroundingModel(GroundingConfig(**{**dataclasses.asdict(base.config), **overrides}))
    state = load_file(os.path.join(folder, "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise ValueError(f"{folder} has weights the new model has no place for: {', '.join(unexpected[:5])}")
    if missing:
        log.info("initialised from %s; new parameters: %s", folder, ", ".join(missing))
    return load_tokenizer(folder), model


def freeze_parameters(model, freeze: tuple, unfreeze: tuple = ()) -> None:
    """Stop training the parameters whose names start with a ``freeze`` prefix, except those
    starting with an ``unfreeze`` prefix. A prefix that names no parameter is a ValueError."""
    names = [n for n, _ in model.named_parameters()]
    for prefix in (*freeze, *unfreeze):
        if not any(n == prefix or n.startswith(prefix + ".") for n in names):
            raise ValueError(f"no parameter of the model is named {prefix!r} or starts with {prefix + '.'!r}")
    under = lambda n, prefixes: any(n == p or n.startswith(p + ".") for p in prefixes)  # noqa: E731
    for n, p in model.named_parameters():
        if under(n, freeze) and not under(n, unfreeze):
            p.requires_grad_(False)


def make_optimizer(model: GroundingModel, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on biases, norms and position tables)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    fast = [p for n, p in named if ".anchor." in n] if cfg.anchor_lr != 1.0 else []
    params = [p for n, p in named if not (fast and ".anchor." in n)]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if fast:
        groups.append({"params": fast, "weight_decay": 0.0, "lr_scale": cfg.anchor_lr})
    return torch.optim.AdamW(groups, lr=cfg.lr)


def train(cfg: TrainConfig) -> GroundingModel:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    distributed = world > 1
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if distributed else 0
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    main_proc = rank == 0
    torch.manual_seed(cfg.seed)
    last = os.path.join(cfg.out, "last")
    if main_proc:  # before any work: a folder that cannot be written, or a checkpoint that cannot be resumed
        check_writable(cfg.out)
        if cfg.resume and os.path.isdir(checkpoint_dir(last)):
            check_resumable(checkpoint_dir(last))

    if cfg.init:
        tokenizer, model = initial_model(cfg.init, cfg.model)
        mcfg = model.config
        model = model.to(device)
    else:
        tokenizer = build_tokenizer(caption_corpus())
        mcfg = GroundingConfig(**{"vocab_size": len(tokenizer), "image_size": 96, "image_layers": 1, **cfg.model})
        model = GroundingModel(mcfg).to(device)
    freeze_parameters(model, cfg.freeze, cfg.unfreeze)
    optimizer = make_optimizer(model, cfg)
    # the published model: a moving average of the weights, or the weights themselves
    ema = AveragedModel(model, multi_avg_fn=ema_average(cfg.ema), use_buffers=True) if cfg.ema else None
    published = ema.module if ema is not None else model
    start, minutes_before, history = 0, 0.0, []
    if cfg.resume and os.path.isdir(checkpoint_dir(last)):
        state = load_train_state(last, model, optimizer, ema)
        start, minutes_before = int(state["step"]), float(state.get("minutes", 0.0))  # the clock goes on where it stopped
        history = list(state.get("history", []))  # every evaluation before every interruption
        tokenizer = load_tokenizer(checkpoint_dir(last))
        if main_proc:
            log.info("resumed from %s: step %d of %d, %.1f minutes trained, %d evaluations so far",
                     checkpoint_dir(last), start, cfg.steps, minutes_before, len(history))  # fmt: skip
    elif cfg.resume and main_proc:
        log.info("nothing to resume in %s: starting from step 0", last)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if distributed else model

    stream = BatchStream(cfg, tokenizer, mcfg.patch_size, start, rank, world)
    loader = DataLoader(stream, batch_size=None, num_workers=cfg.workers, persistent_workers=False,
                        multiprocessing_context="fork" if cfg.workers else None)  # fmt: skip
    from mmattn.training.evaluate import evaluate, held_out_samples  # late import: evaluate imports the API

    eval_set = held_out_samples(cfg.eval_scenes, seed=10_000_019) if main_proc and cfg.eval_every else []
    bar = tqdm(total=cfg.steps, initial=start, desc="train", disable=not main_proc, dynamic_ncols=True)
    t0, step = time.time() - 60 * minutes_before, start
    smooth: dict = {}
    snapshots = taken_snapshots(cfg, log_problems=main_proc)  # before a resume
    model.train()
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        # the clock only steers a single process: DDP ranks must agree on the learning rate
        clock = None if distributed else (time.time() - t0) / 60
        for g in optimizer.param_groups:
            g["lr"] = lr_at(step, cfg, clock) * g.get("lr_scale", 1.0)
        loss, stats = compute_losses(ddp, batch, cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if ema is not None:
            ema.update_parameters(model)
        step += 1
        for k, v in {"loss": float(loss.detach()), **stats}.items():
            smooth[k] = v if k not in smooth else 0.95 * smooth[k] + 0.05 * v
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in smooth.items() if k in ("loss", "match_acc", "point", "shape_acc")})
        elapsed = (time.time() - t0) / 60
        out_of_time = cfg.minutes is not None and elapsed >= cfg.minutes
        done = step >= cfg.steps or out_of_time
        if main_proc and cfg.eval_every and (step % cfg.eval_every == 0 or done):
            m = evaluate(published, tokenizer, eval_set, progress=False)
            model.train()
            history.append({"step": step, "minutes": round(elapsed, 2), "pointing": m["pointing"]["all"], "match": m["match"]["all"]})
            bar.write(f"step {step} ({elapsed:.1f} min): pointing {m['pointing']['all']:.3f}  match {m['match']['all']:.3f}")
        snap = [m for m in cfg.snapshots if m not in snapshots and elapsed >= m]  # due: saved at this step
        if main_proc and (step % cfg.ckpt_every == 0 or done or snap):
            published.eval()
            extra = {"minutes": elapsed, "history": history, "ema_updates": int(ema.n_averaged) if ema is not None else 0}
            save_checkpoint(last, published, tokenizer, optimizer, step, cfg, extra, raw=model if ema is not None else None)
            for m in snap:  # the step that crossed m minutes of training
                copy_checkpoint(last, snapshot_dir(cfg, m))
                snapshots.add(m)
            model.train()
        if done:
            break
    bar.close()
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return published.eval()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmattn train", description="Train a grounding model on generated shapes scenes.")
    d = TrainConfig()
    p.add_argument("--out", default=d.out, help="output folder (checkpoints in OUT/last)")
    p.add_argument("--steps", type=_at_least(1), default=d.steps)
    p.add_argument("--batch-size", type=_at_least(1), default=d.batch_size, help="images per process per step")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--seed", type=int, default=d.seed)
    for name in ("match", "contrastive", "grounding", "aux", "grounded", "anchor"):
        p.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=getattr(d, name), help=f"{name} loss")
    p.add_argument("--eval-every", type=_at_least(0), default=d.eval_every, help="steps between evaluations (0: never)")
    p.add_argument("--eval-scenes", type=_at_least(1), default=d.eval_scenes)
    p.add_argument("--ckpt-every", type=_at_least(1), default=d.ckpt_every)
    p.add_argument("--workers", type=_at_least(0), default=d.workers, help="data-generating worker processes")
    p.add_argument("--minutes", type=float, default=None, help="stop after this much training time")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last if it exists")
    p.add_argument("--sizes", type=_sizes, default=d.sizes, help="training image sizes, e.g. 96x96,96x72")
    p.add_argument("--model", type=json.loads, default={}, help='GroundingConfig overrides as JSON, e.g. \'{"dim": 96}\'')
    p.add_argument("--render-scales", type=_scales, default=d.render_scales,
                   help="draw scenes this many times the training size, then resize them (e.g. 0.75,1,2,2.5)")  # fmt: skip
    p.add_argument("--precision", choices=ARITHMETICS, default=d.precision, help="bfloat16: autocast, faster on CPUs with AVX-512 BF16 and on GPUs")
    p.add_argument("--ema", type=_decay, default=d.ema, help="publish a moving average of the weights with this decay (e.g. 0.998; 0: off)")
    p.add_argument("--snapshots", type=_minutes, default=d.snapshots,
                   help="also checkpoint when the clock passes these minutes, kept as OUT/at-{M}min (e.g. 15,30)")  # fmt: skip
    p.add_argument("--anchor-lr", type=float, default=d.anchor_lr, help="learning-rate multiple for an AnchorBias's parameters")
    p.add_argument("--relational", type=_share, default=d.relational,
                   help="share of the scenes drawn as relational scenes with a same-shape distractor (0..1)")  # fmt: skip
    p.add_argument("--freeze", type=_names, default=d.freeze, help="parts not trained: prefixes of parameter names, comma-separated (e.g. text_encoder,fusion.0)")
    p.add_argument("--unfreeze", type=_names, default=d.unfreeze, help="prefixes trained although --freeze covers them (e.g. fusion.1.anchor)")
    p.add_argument("--init", default=None, help="fine-tune from the weights of this checkpoint folder (e.g. assets/model)")
    p.add_argument("--relation-negatives", type=_share, default=d.relation_negatives,
                   help="share of relational captions trained against their relation swap (0..1)")  # fmt: skip
    return p


def _float_arg(ok, message: str, many: bool = False):
    """An argparse ``type``: a float (or with ``many``, comma-separated floats) for which
    ``ok`` holds; anything else is refused with ``message``."""

    def parse(text: str):
        try:
            values = tuple(float(v) for v in text.split(",")) if many else (float(text),)
        except ValueError:
            values = ()
        if not values or not all(ok(v) for v in values):
            raise argparse.ArgumentTypeError(f"{message} (got {text!r})")
        return values if many else values[0]

    return parse


_share = _float_arg(lambda v: 0.0 <= v <= 1.0, "expected a share between 0 and 1")
_decay = _float_arg(lambda v: 0.0 <= v < 1.0, "ema is a decay in [0, 1), e.g. 0.998")
_scales = _float_arg(lambda v: 0.25 <= v <= 8, "render scales look like 0.75,1,2 (each 0.25..8)", many=True)
_minutes = _float_arg(lambda v: v > 0, "snapshots are minutes like 15,30", many=True)


def _names(text: str) -> tuple:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _sizes(text: str) -> tuple:
    try:
        sizes = tuple(tuple(int(v) for v in part.lower().split("x")) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or any(len(s) != 2 for s in sizes):
        raise argparse.ArgumentTypeError(f"sizes look like 96x96,96x72 (got {text!r})")
    bad = [s for s in sizes if not all(MIN_SIDE <= v <= MAX_SIDE for v in s)]
    if bad:
        raise argparse.ArgumentTypeError(f"each side must be {MIN_SIDE}..{MAX_SIDE} pixels (got {'x'.join(map(str, bad[0]))})")
    return sizes


def _at_least(least: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < least:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {least} (got {text!r})")
        return value

    return parse


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = TrainConfig(**{k.replace("-", "_"): v for k, v in vars(args).items()})
    train(cfg)


if __name__ == "__main__":
    main()
