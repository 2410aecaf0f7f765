"""GroundingModel: text encoder + image encoder + N bidirectional fusion layers + heads.

Index letters: B batch, T text tokens, P patches (= gh * gw), D width, H heads, E embedding.

    ids (B, T) ──TextEncoder──► text (B, T, D) ─┐
                                                 ├─ FusionLayer × N ─► grounded text, labelled patches
    pixels (B, 3, h, w) ─ImageEncoder─► (B, P, D)┘
                                                   └─► match logit (B,), grounded logits (B, T)

The match head reads the fused text together with *where each word looks* (the centroid
of its last-layer map); with ``relation_heads`` a :class:`RelationProbe` adds a dot product
between the direction a relation word names and the positions of the two objects' words,
so that "left of" is checked against the image.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from safetensors.torch import load_file
from torch import Tensor, nn

from mmattn.io.checkpoint import (
    CheckpointError,
    check_dtypes,
    check_finite,
    check_tensors,
    check_tokenizer,
    meta_state,
    read_json,
    tensor_dtypes,
    tensor_shapes,
)
from mmattn.models.encoders import ImageEncoder, TextEncoder, patch_coordinates
from mmattn.models.tokenizer import MAX_TOKENS
from mmattn.nn.fusion import FusionLayer
from mmattn.nn.layers import Block

#: auxiliary per-patch classes: background + 8 colours, background + 8 shapes, background + 2 sizes
PATCH_CLASSES = (9, 9, 3)


#: the range of each number in a GroundingConfig, inclusive (mlp_ratio > 0, dropout < 1): far
#: above any model this project trains, so that a tampered config.json is refused before a
#: model is built from it
CONFIG_BOUNDS = {
    "vocab_size": (1, 1_000_000), "dim": (2, 8192), "num_heads": (1, 256),
    "text_layers": (0, 128), "image_layers": (0, 128), "fusion_layers": (1, 128), "match_layers": (1, 128),
    "mlp_ratio": (0.0, 16.0), "patch_size": (1, 256), "image_size": (1, 8192), "max_text_len": (1, 65536),
    "embed_dim": (1, 8192), "dropout": (0.0, 1.0), "relation_heads": (0, 256),
}  # fmt: skip
POSITIONS = ("sinusoidal", "learned", "none")
CONFIG_CHOICES = {"stem": ("conv", "linear"), "text_positions": POSITIONS, "image_positions": POSITIONS}
LEARNED_GRID = 64  #: the learned image position table is LEARNED_GRID x LEARNED_GRID patches (ImageEncoder's max_grid)


@dataclass
class GroundingConfig:
    vocab_size: int = 256
    dim: int = 128  # model width D
    num_heads: int = 4  # heads H in every attention layer
    text_layers: int = 2
    image_layers: int = 2
    fusion_layers: int = 2
    mlp_ratio: float = 2.0
    patch_size: int = 8  # pixels per patch side (the conv stem's stride)
    image_size: int = 128  # longer image side fed to the model (see mmattn.image)
    stem: str = "conv"  # "conv" (small CNN) or "linear" (ViT patch embedding)
    text_positions: str = "sinusoidal"  # "sinusoidal", "learned" or "none"
    image_positions: str = "sinusoidal"
    max_text_len: int = 64  # only bounds learned text positions
    embed_dim: int = 64  # E: joint space of the optional contrastive loss
    dropout: float = 0.0
    match_layers: int = 1  # self-attention blocks over the located words in the match head
    match_spread: bool = False  # also tell the match head how spread out each word's map is
    relation_heads: int = 0  # geometric probes in the match head: (object - subject location) . direction
    #: the last fusion layer also updates the image stream, which no head reads (a wasted
    #: V, out_proj and MLP over every patch); True in checkpoints saved before this option
    update_image_last: bool = False
    #: every fusion layer starts with self-attention (words read words; from the second
    #: layer on, patches read patches too, once they have read the words) before the
    #: cross-attention, so that a relation can pick the referent ("the circle left of the
    #: square"); False in checkpoints saved before it
    fusion_self_attention: bool = False
    #: the last fusion layer adds an AnchorBias (mmattn.nn.anchor) to its text->image scores:
    #: the relation's side of the landmark, for the words naming the referent; False in
    #: checkpoints saved before it
    anchor_bias: bool = False

    def __post_init__(self):
        for name, (lo, hi) in CONFIG_BOUNDS.items():
            v = getattr(self, name)
            kind = float if isinstance(lo, float) else int
            ok = isinstance(v, (int, float) if kind is float else int) and not isinstance(v, bool) and lo <= v <= hi
            if not ok or (name == "mlp_ratio" and v <= 0) or (name == "dropout" and v >= 1):
                what = "a number" if kind is float else "an integer"
                raise ValueError(f"{name}={v!r} is out of bounds: it must be {what} in {_range(name, lo, hi)}")
        for name, options in CONFIG_CHOICES.items():
            if getattr(self, name) not in options:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, options))} (got {getattr(self, name)!r})")
        for name in ("match_spread", "update_image_last", "fusion_self_attention", "anchor_bias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false (got {getattr(self, name)!r})")
        if self.dim % self.num_heads:
            raise ValueError(f"dim must be divisible by num_heads (got dim={self.dim}, num_heads={self.num_heads})")
        if self.dim % 2 or (self.image_positions == "sinusoidal" and self.dim % 4):
            raise ValueError(f"dim must be even, and a multiple of 4 with sinusoidal image positions (got dim={self.dim})")
        if self.stem == "conv" and (self.patch_size < 2 or self.patch_size & (self.patch_size - 1)):
            raise ValueError(f"patch_size must be a power of two >= 2 for the conv stem (got patch_size={self.patch_size})")
        if self.image_size < self.patch_size:
            raise ValueError(f"image_size must be at least patch_size (got image_size={self.image_size}, patch_size={self.patch_size})")
        if self.image_positions == "learned" and round(self.image_size / self.patch_size) > LEARNED_GRID:
            raise ValueError(f"image_size / patch_size must be at most {LEARNED_GRID} with learned image positions "
                             f"(got image_size={self.image_size}, patch_size={self.patch_size})")  # fmt: skip
        if self.text_positions == "learned" and self.max_text_len < MAX_TOKENS:
            raise ValueError(f"max_text_len must be at least {MAX_TOKENS} (the longest caption) with learned text positions "
                             f"(got max_text_len={self.max_text_len})")  # fmt: skip
        if int(self.dim * self.mlp_ratio) < 1:
            raise ValueError(f"dim * mlp_ratio must be at least 1 (got dim={self.dim}, mlp_ratio={self.mlp_ratio})")


def _range(name: str, lo, hi) -> str:
    if name == "mlp_ratio":
        return f"(0, {hi}]"
    if name == "dropout":
        return "[0, 1)"
    return f"{lo:,}..{hi:,}"


@dataclass
class GroundingOutput:
    """What :meth:`GroundingModel.forward` returns. Fields never depend on flags; the
    attention tuples are empty unless ``output_attentions=True``."""

    text_features: Tensor  #: (B, T, D) text after fusion
    image_features: Tensor  #: (B, P, D) patches after the fusion layers that update them (see update_image_last)
    match_logits: Tensor  #: (B,) does the caption describe the image (logit)
    grounded_logits: Tensor  #: (B, T) is each token located in the image (logit)
    patch_logits: Tensor  #: (Bi, P, 21) auxiliary colour / shape / size class of each patch
    text_embeds: Tensor  #: (B, E) unit-norm pooled text, before fusion (contrastive loss)
    image_embeds: Tensor  #: (Bi, E) unit-norm pooled image, before fusion
    grid: tuple[int, int]  #: (gh, gw) patch grid; patch (r, c) is index r * gw + c
    text_to_image: tuple[Tensor, ...] = ()  #: per fusion layer, (B, H, T, P): each word's map over patches
    image_to_text: tuple[Tensor, ...] = ()  #: per fusion layer, (B, H, P, T): each patch's distribution over words
    text_self_attentions: tuple[Tensor, ...] = ()  #: per text layer, (B, H, T, T)
    image_self_attentions: tuple[Tensor, ...] = ()  #: per image layer, (B, H, P, P)
    centroids: Tensor = field(default=None)  #: (B, T, 2) where each token looks, (x, y) in [-1, 1]
    relation_logits: Tensor = field(default=None)  #: (B,) the relation probes' part of match_logits (zeros without probes)


class RelationProbe(nn.Module):
    """Does "A left of B" hold? A dot product between where the caption says B is from A and
    where the maps say it is.

    Each of K probes pools, with a softmax over the caption's tokens, a subject location
    ``a`` and an object location ``b`` from the tokens' map centroids, and reads an expected
    direction ``u`` from the relation words ("left" -> +x: the object is to the right of
    the subject). It adds ``(b - a) . u`` to the match logit. Comparing two positions with a
    relation word is a product that a transformer's MLP finds hard to learn (the match head
    alone accepted swapped relations at chance); here the product is given, and what is
    learned is only which tokens play which role. (B, T, D) text, (B, T, 2) centroids,
    (B, T) mask -> (B,) logit.
    """

    def __init__(self, dim: int, num_probes: int):
        super().__init__()
        self.k = num_probes
        self.norm = nn.LayerNorm(dim)
        self.roles = nn.Linear(dim, 3 * num_probes)  # token scores: subject, object, relation word
        self.direction = nn.Linear(dim, 2 * num_probes)  # each token's expected direction (x, y)

    def forward(self, text: Tensor, centroids: Tensor, mask: Tensor) -> Tensor:
        B, T, _ = text.shape
        x = self.norm(text)
        scores = self.roles(x).masked_fill(~mask[..., None], float("-inf"))  # (B, T, 3K)
        roles = scores.view(B, T, 3, self.k).softmax(dim=1)  # (B, T, 3, K): each role's weights sum to 1 over T
        roles = roles.masked_fill(~mask[:, :, None, None], 0.0)  # padding gets 0 (and an all-padding row 0, not NaN)
        subject = torch.einsum("btk,btx->bkx", roles[:, :, 0], centroids)  # (B, K, 2)
        obj = torch.einsum("btk,btx->bkx", roles[:, :, 1], centroids)  # (B, K, 2)
        u = torch.einsum("btk,btkx->bkx", roles[:, :, 2], self.direction(x).view(B, T, self.k, 2))  # (B, K, 2)
        return ((obj - subject) * u).sum((-1, -2))  # (B,)


class GroundingModel(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="mmattn",
    tags=["grounding", "cross-attention"],
    license="mit",
):
    def __init__(self, config: GroundingConfig | dict | None = None):
        super().__init__()
        config = GroundingConfig(**config) if isinstance(config, dict) else (config or GroundingConfig())
        self.config = c = config
        self.text_encoder = TextEncoder(
            c.vocab_size, c.dim, c.num_heads, c.text_layers,
            max_len=c.max_text_len, positions=c.text_positions, mlp_ratio=c.mlp_ratio, dropout=c.dropout,
        )  # fmt: skip
        self.image_encoder = ImageEncoder(
            c.dim, c.num_heads, c.image_layers,
            patch_size=c.patch_size, stem=c.stem, positions=c.image_positions, mlp_ratio=c.mlp_ratio, dropout=c.dropout,
        )  # fmt: skip
        self.fusion = nn.ModuleList(
            FusionLayer(c.dim, c.num_heads, mlp_ratio=c.mlp_ratio, dropout=c.dropout,
                        update_image=n < c.fusion_layers - 1 or c.update_image_last,
                        self_attention=("both" if n else "text") if c.fusion_self_attention else "none",
                        anchor=c.anchor_bias and n == c.fusion_layers - 1 and n > 0)  # fmt: skip
            for n in range(c.fusion_layers)
        )
        self.patch_head = nn.Linear(c.dim, sum(PATCH_CLASSES))
        self.text_proj, self.image_proj = nn.Linear(c.dim, c.embed_dim), nn.Linear(c.dim, c.embed_dim)
        self.where = nn.Linear(4 if c.match_spread else 2, c.dim)  # where a word looks: centroid (x, y) [+ spread] -> features
        self.match_block = Block(c.dim, c.num_heads, mlp_ratio=c.mlp_ratio)
        self.match_blocks = nn.ModuleList(Block(c.dim, c.num_heads, mlp_ratio=c.mlp_ratio) for _ in range(c.match_layers - 1))
        self.match_norm = nn.LayerNorm(c.dim)
        self.match_head = nn.Linear(c.dim, 1)
        self.grounded_head = nn.Linear(c.dim, 1)
        self.relation = RelationProbe(c.dim, c.relation_heads) if c.relation_heads else None

    def encode_image(self, pixels: Tensor, need_weights: bool = False):
        """pixels (B, 3, h, w) -> patches (B, P, D), grid, self-attention weights."""
        return self.image_encoder(pixels, need_weights)

    def forward(
        self,
        ids: Tensor,
        pixels: Tensor | None = None,
        attention_mask: Tensor | None = None,
        *,
        output_attentions: bool = False,
        output_fusion_attentions: bool = False,
        image: tuple | None = None,
    ) -> GroundingOutput:
        """ids (B, T), pixels (Bi, 3, h, w) with h, w multiples of patch_size, attention_mask
        (B, T) bool (True = real token). B may be a multiple k of Bi: then caption
        j * Bi + b is read against image b. ``image`` may pass a precomputed
        :meth:`encode_image` result instead of ``pixels``. ``output_attentions`` returns every
        attention map; ``output_fusion_attentions`` only the fusion layers' (cheaper)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(ids, dtype=torch.bool)
        text, text_w = self.text_encoder(ids, attention_mask, output_attentions)  # (B, T, D)
        if image is None:
            if pixels is None:
                raise TypeError("forward() needs pixels (B, 3, h, w) or a precomputed image=encode_image(pixels)")
            image = self.encode_image(pixels, output_attentions)
        patches, grid, image_w = image  # (Bi, P, D)
        patch_logits = self.patch_head(patches)  # (Bi, P, 21)
        text_embeds = F.normalize(self.text_proj(text[:, 0]), dim=-1)  # (B, E) from [CLS]
        image_embeds = F.normalize(self.image_proj(patches.mean(1)), dim=-1)  # (Bi, E)
        if patches.size(0) != ids.size(0):  # k captions per image: captions [all k=0, all k=1, ...]
            if ids.size(0) % patches.size(0):
                raise ValueError(f"{ids.size(0)} captions do not divide evenly over {patches.size(0)} images")
            patches = patches.repeat(ids.size(0) // patches.size(0), 1, 1)  # (B, P, D)

        fusion_w = output_attentions or output_fusion_attentions
        t, i, t2i, i2t = text, patches, [], []
        coords = patch_coordinates(*grid, device=ids.device).to(t.dtype)  # (P, 2)
        centroids = None  # where each token looked in the previous layer, for a layer with an anchor
        square = patch_coordinates(*grid, device=ids.device, isotropic=True).to(t.dtype)  # (P, 2), for an anchor's wedge
        for n, layer in enumerate(self.fusion):
            last = n == len(self.fusion) - 1
            anchored = n + 1 < len(self.fusion) and self.fusion[n + 1].anchor is not None
            out = layer(t, i, attention_mask, need_weights=fusion_w or last or anchored, centroids=centroids, coords=square)
            t, i = out.text, out.image
            if anchored:
                centroids = out.text_to_image.mean(1) @ square  # (B, T, P) @ (P, 2) -> (B, T, 2)
            if fusion_w:
                t2i.append(out.text_to_image)
                i2t.append(out.image_to_text)
        a = out.text_to_image.mean(1)  # (B, T, P)
        centroids = a @ coords  # (B, T, P) @ (P, 2) -> (B, T, 2)
        where = centroids
        if self.config.match_spread:  # standard deviation of the map along x and y: small = located
            spread = (a @ coords.square() - centroids.square()).clamp(min=0).add(1e-6).sqrt()  # (B, T, 2)
            where = torch.cat([centroids, spread], dim=-1)  # (B, T, 4)
        key_mask = attention_mask[:, None, None, :]
        h, _ = self.match_block(t + self.where(where), key_mask)
        for block in self.match_blocks:
            h, _ = block(h, key_mask)
        h = self.match_norm(h)  # (B, T, D)
        match_logits = self.match_head(h[:, 0]).squeeze(-1)  # from [CLS]
        relation = self.relation(t, centroids, attention_mask) if self.relation is not None else torch.zeros_like(match_logits)
        match_logits = match_logits + relation
        return GroundingOutput(
            text_features=t,
            image_features=i,
            match_logits=match_logits,
            grounded_logits=self.grounded_head(h).squeeze(-1),
            patch_logits=patch_logits,
            text_embeds=text_embeds,
            image_embeds=image_embeds,
            grid=grid,
            text_to_image=tuple(t2i),
            image_to_text=tuple(i2t),
            text_self_attentions=tuple(text_w),
            image_self_attentions=tuple(image_w),
            centroids=centroids,
            relation_logits=relation,
        )

    # ---- loading: strict, safetensors only, every file checked before the model is built ----
    @classmethod
    def _from_pretrained(
        cls, *, model_id, revision, cache_dir, force_download, local_files_only, token,
        map_location="cpu", strict=True, **model_kwargs,
    ):  # fmt: skip
        if os.path.isdir(model_id):
            file = os.path.join(model_id, "model.safetensors")
        else:
            file = hf_hub_download(
                repo_id=model_id, filename="model.safetensors", revision=revision, cache_dir=cache_dir,
                force_download=force_download, token=token, local_files_only=local_files_only,
            )  # fmt: skip
        if not os.path.isfile(file):
            raise CheckpointError(f"no model.safetensors in {model_id}: is this an mmattn checkpoint folder?")
        config_file = os.path.join(os.path.dirname(file), "config.json")
        config = model_kwargs.get("config")
        config = dataclasses.asdict(config) if isinstance(config, GroundingConfig) else _legacy(config or {})
        model_kwargs["config"] = checked_config(config, config_file)
        # 1. the header's names and shapes against the model the config describes, built on
        #    the meta device (no memory): a tampered size is refused before anything is allocated
        meta = meta_state(lambda: cls(**model_kwargs))
        check_tensors(file, tensor_shapes(file), {k: tuple(v.shape) for k, v in meta.items()}, config, config_file)
        check_dtypes(file, tensor_dtypes(file), {k: v.dtype for k, v in meta.items()})
        tokenizer_file = os.path.join(os.path.dirname(file), "tokenizer.json")
        if os.path.isfile(tokenizer_file):
            check_tokenizer(tokenizer_file, model_kwargs["config"].vocab_size, config_file)
        # 2. the weights, which must be finite
        try:
            state = load_file(file, device=str(map_location))
        except Exception as e:  # safetensors raises its own error types on corrupt files
            raise CheckpointError(f"{file} is not a readable safetensors file ({e}); re-save or re-download it") from e
        check_finite(file, state)
        model = cls(**model_kwargs)
        model.load_state_dict(state, strict=True)
        return model.eval()

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs) -> GroundingModel:
        """``from_pretrained`` with clear errors (:class:`CheckpointError` naming the file) for
        missing folders, corrupt or out-of-bounds configs, weights that do not fit them or are
        not finite, and a tokenizer beside them that does not fit the vocabulary."""
        path = os.fspath(path)
        if os.path.isdir(path):
            cfg = os.path.join(path, "config.json")
            if not os.path.isfile(cfg):
                raise CheckpointError(f"no config.json in {path}: is this an mmattn checkpoint folder?")
            checked_config(_legacy(read_json(cfg)), cfg)
        elif os.sep in path or path.startswith("."):
            raise CheckpointError(f"no checkpoint folder at {path!r}: check the path")
        return cls.from_pretrained(path, **kwargs)


def checked_config(config: dict, file: str) -> GroundingConfig:
    """A GroundingConfig from a checkpoint's config dict, or a CheckpointError naming ``file``
    and the field at fault (unknown keys, wrong types, values out of CONFIG_BOUNDS)."""
    try:
        return GroundingConfig(**config)
    except (TypeError, ValueError) as e:  # unknown keys, dim=30 with 4 heads, num_heads=0, ...
        raise CheckpointError(f"{file} is not a valid mmattn config ({e})") from e


def _legacy(config: dict) -> dict:
    """A saved config as this version reads it: options added since default to what the
    checkpoint was built with."""
    return {"update_image_last": True, **config}
