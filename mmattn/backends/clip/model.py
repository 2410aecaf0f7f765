"""CLIP as the backbone of a grounding model: CLIP's two towers, mmattn's fusion on top.

Index letters: B batch, T text tokens, P patches (= gh * gw), E CLIP's joint (projection)
width, Dv the vision tower's width, H fusion heads, U distinct words of a batch.

    ids (B, T) ──CLIP text tower──► token features (B, T, E) ──────────────────┐
                                                                               ├─ FusionLayer × N ─► maps, both directions
    pixels (B, 3, h, w) ──CLIP vision tower, NACLIP last block──► (B, P, E) ───┘
    CLIP's caption, image and neutral-prompt embeddings ─► match logit (B,), grounded logits (B, T)

**Text.** In ``"prompt"`` mode (the default) each word of the caption is read alone in a
prompt, ``"a photo of {word}."``, and all its tokens get that prompt's CLIP embedding (the
embedding CLIP was trained to align with images); ``<|startoftext|>`` gets the neutral
prompt's embedding (``"a photo."``: "nothing in particular") and ``<|endoftext|>`` the whole
caption's. Words are runs of tokens ending in a ``</w>`` token (CLIP's BPE marks word ends).
In ``"token"`` mode every token gets the caption's own final hidden state, projected.

**Image.** CLIP's vision tower mixes all patches in its last block, so its patch outputs
are not local. The last block is replaced (:mod:`mmattn.clip_dense`, ``config.dense``): by
default as in NACLIP (Hajimiri et al., 2025: key-key attention plus a Gaussian
neighbourhood bias, no residual and no MLP), or as in MaskCLIP (Zhou et al., 2022: no
query-key mixing, each patch reads its own value); then CLIP's post-layernorm and visual
projection put each patch in the joint space. The image embedding is CLIP's own ([CLS]
through the normal last block). Position embeddings are interpolated to the grid.

**Zero-shot fusion.** Each :class:`~mmattn.fusion.FusionLayer` starts so that its
attention is CLIP's similarity: q_proj = α·I, k_proj = I with α = τ·√(H/E) (τ = CLIP's
``logit_scale.exp()``), so that with the layer's LayerNorms (unit vectors become ≈ √E-norm
vectors) every head's logits are τ × (its share of) the cosine similarity, as in CLIP's own
logits. v_proj = I; out_proj and the MLPs' last layers start at zero, so the streams leave a
layer unchanged and every layer starts with the same maps. Training moves all of it.

**Scores.** With cos(·, ·) between unit vectors and n the neutral prompt's embedding:
- match logit = s_m · (cos(caption, image) − cos(n, image) + λ · local) + b_m, CLIP's
  two-way zero-shot choice "the caption" vs "a photo." (s_m = τ, b_m = 0, λ = 0.1 at the
  start). ``local`` is how much more similar to each word the patches it attends to are
  than the average patch (mean over words and fusion layers), so the match score depends
  on the maps and Grad-CAM has a gradient to show.
- grounded logit of a token = s_g · (cos(its word's prompt, image) − cos(n, image)) + b_g:
  "a photo of {word}." beats "a photo." (s_g = τ, b_g = 0), so p > 0.5 means CLIP prefers
  the word's prompt. Function words (:data:`FUNCTION_WORDS`) are never grounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmattn.backends.clip.dense import DENSE, GAUSSIAN_STD, maskclip_block, naclip_block
from mmattn.backends.clip.legrad import START_LAYER, legrad
from mmattn.models.encoders import patch_coordinates
from mmattn.models.grounding_model import GroundingOutput
from mmattn.nn.fusion import FusionLayer

#: words that name no region: never grounded (articles, prepositions, relations, pronouns, auxiliaries)
FUNCTION_WORDS = frozenset(
    "a an the this that these those some any each every no not and or but of in on at to from by with without for "
    "into onto over under above below beside besides behind between near next left right front top bottom middle "
    "center centre up down out off is are was were be been being am has have had do does did it its it's there "
    "here they them their he she his her him we us our you your i me my as than then".split()
)
NOT_GROUNDED = -20.0  #: grounded logit of function words and special tokens (p ≈ 2e-9)


@dataclass
class ClipGroundingConfig:
    dim: int = 512  # E: CLIP's projection_dim (read from the checkpoint)
    num_heads: int = 1  # H: heads of each fusion attention; 1 gives exactly CLIP's similarity at the start
    fusion_layers: int = 1
    mlp_ratio: float = 2.0
    image_size: int = 224  # longer image side fed to the vision tower, px (default: CLIP's own input size)
    patch_size: int = 16  # CLIP's patch size (read from the checkpoint)
    temperature: float = 100.0  # τ = CLIP's logit_scale.exp() (read from the checkpoint)
    text_queries: str = "prompt"  # "prompt": each word alone in `prompt`; "token": the caption's own token states
    prompt: str = "a photo of {}."  # the template a word is read in ("prompt" mode)
    neutral: str = "a photo."  # the reference of every score; also the features of <|startoftext|>
    image_positions: str = "learned (CLIP, interpolated)"  # shown by the demo's positions view
    dense: str = "naclip"  # the last vision block for patch features: "naclip" or "maskclip" (mmattn.clip_dense)
    gaussian_std: float = GAUSSIAN_STD  # NACLIP's neighbourhood width, in patches

    def __post_init__(self):
        if self.dim % self.num_heads:
            raise ValueError(f"dim must be divisible by num_heads (got dim={self.dim}, num_heads={self.num_heads})")
        if self.fusion_layers < 1:
            raise ValueError(f"need at least one fusion layer (got fusion_layers={self.fusion_layers})")
        if self.text_queries not in ("prompt", "token"):
            raise ValueError(f"text_queries must be 'prompt' or 'token' (got {self.text_queries!r})")
        if self.prompt.count("{}") != 1:
            raise ValueError(f"prompt must contain '{{}}' exactly once, where the word goes (got {self.prompt!r})")
        if self.dense not in DENSE:
            raise ValueError(f"dense must be one of {', '.join(map(repr, DENSE))} (got {self.dense!r})")
        if not self.gaussian_std > 0:
            raise ValueError(f"gaussian_std must be > 0 patches (got {self.gaussian_std})")
        if self.image_size < self.patch_size:
            raise ValueError(f"image_size must be at least one patch ({self.patch_size} px), got {self.image_size}")


@dataclass
class TextFeatures:
    tokens: Tensor  #: (B, T, E) unit-norm features of every token
    caption: Tensor  #: (B, E) unit-norm CLIP embedding of each caption
    neutral: Tensor  #: (E,) unit-norm CLIP embedding of the neutral prompt
    content: Tensor  #: (B, T) bool: real tokens of the caption's words (not specials, not padding)
    function: Tensor  #: (B, T) bool: tokens of function words (never grounded)
    attentions: tuple[Tensor, ...] = ()  #: per CLIP text layer, (B, heads, T, T), when asked for


class ClipTextEncoder(nn.Module):
    """CLIP's text tower -> unit-norm features of every token in the joint space."""

    def __init__(self, text_model: nn.Module, text_projection: nn.Linear, tokenizer, config: ClipGroundingConfig):
        super().__init__()
        self.text_model, self.text_projection = text_model, text_projection
        self.mode = config.text_queries
        self.bos_id, self.eos_id = int(tokenizer.bos_token_id), int(tokenizer.eos_token_id)
        self.pad_id = self.eos_id  # prompts are padded with <|endoftext|>, as CLIP's tokenizer pads
        vocab = tokenizer.get_vocab()
        size = max(len(tokenizer), text_model.config.vocab_size)
        word_end, function = torch.zeros(size, dtype=torch.bool), torch.zeros(size, dtype=torch.bool)
        for tok, i in vocab.items():
            word_end[i] = tok.endswith("</w>")
            function[i] = tok.removesuffix("</w>") in FUNCTION_WORDS and tok.endswith("</w>")
        self.register_buffer("word_end", word_end, persistent=False)  # (V,) the token ends a word
        self.register_buffer("function", function, persistent=False)  # (V,) the token is a whole function word
        self._set_prompts(tokenizer, config)

    def _set_prompts(self, tokenizer, config: ClipGroundingConfig) -> None:
        """The token ids around a word in ``config.prompt`` and of the neutral prompt (with the
        tower's own start and end tokens)."""
        before, after = config.prompt.split("{}")

        def ids(text: str) -> list[int]:
            return tokenizer(text.strip(), add_special_tokens=False)["input_ids"] if text.strip() else []

        self.prefix, self.suffix = ids(before), ids(after)
        self.neutral_ids = [self.bos_id, *ids(config.neutral), self.eos_id]

    def _embed(self, seqs: list[list[int]], device) -> Tensor:
        """Token-id lists (each [BOS] ... [EOS]) -> (N, E) unit-norm CLIP text embeddings."""
        L = max(map(len, seqs))
        ids = torch.full((len(seqs), L), self.pad_id, dtype=torch.long, device=device)
        mask = torch.zeros(len(seqs), L, dtype=torch.long, device=device)
        for i, s in enumerate(seqs):
            ids[i, : len(s)], mask[i, : len(s)] = torch.tensor(s, device=device), 1
        pooled = self._pooled(self.text_model(input_ids=ids, attention_mask=mask))  # (N, Dt)
        return F.normalize(self.text_projection(pooled), dim=-1)

    def _pooled(self, out) -> Tensor:
        """The text tower's output -> (N, Dt) the states CLIP projects: at the first <|endoftext|>."""
        return out.pooler_output

    def _pool_index(self, ids: Tensor, real: Tensor) -> Tensor:
        """(B,) where each caption is pooled: its first <|endoftext|>."""
        return (real & (ids == self.eos_id)).int().argmax(-1)

    def forward(self, ids: Tensor, mask: Tensor, need_weights: bool = False) -> TextFeatures:
        """ids (B, T), mask (B, T) bool (True = real token) -> :class:`TextFeatures`."""
        B, T = ids.shape
        out = self.text_model(input_ids=ids, attention_mask=mask.long(), output_attentions=need_weights)
        hidden = F.normalize(self.text_projection(out.last_hidden_state), dim=-1)  # (B, T, E)
        real = mask.bool()
        pool_at = self._pool_index(ids, real)  # (B,) CLIP's pooling position
        caption = hidden[torch.arange(B, device=ids.device), pool_at]  # (B, E)
        content = real & (ids != self.bos_id) & (ids != self.eos_id)
        spans = self._words(ids, content)
        function = torch.zeros_like(content)
        for b, run, key in spans:
            if len(key) == 1 and bool(self.function[key[0]]):
                function[b, run] = True
        if self.mode == "token":
            tokens, neutral = hidden, self._embed([self.neutral_ids], ids.device)[0]
        else:  # every word's tokens get the word's prompt embedding (one pass for the batch's distinct words)
            keys = list(dict.fromkeys(key for _, _, key in spans))
            seqs = [[self.bos_id, *self.prefix, *key, *self.suffix, self.eos_id] for key in keys] + [self.neutral_ids]
            emb = self._embed(seqs, ids.device)  # (U + 1, E)
            neutral, row = emb[-1], {key: u for u, key in enumerate(keys)}
            tokens = neutral.expand(B, T, -1).clone()  # (B, T, E): <|startoftext|> and padding read as "a photo."
            for b, run, key in spans:
                tokens[b, run] = emb[row[key]]
            tokens[torch.arange(B, device=ids.device), pool_at] = caption  # <|endoftext|> reads the whole caption
        attentions = tuple(out.attentions) if need_weights and out.attentions else ()
        return TextFeatures(tokens, caption, neutral, content, function, attentions)

    def _words(self, ids: Tensor, content: Tensor) -> list[tuple[int, list[int], tuple[int, ...]]]:
        """The words of each caption as (b, token positions, token ids): runs of content
        tokens, each ending at a token that ends in ``</w>``."""
        B, T = ids.shape
        ids_l, content_l, end_l = ids.tolist(), content.tolist(), self.word_end[ids].tolist()
        spans, run = [], []
        for b in range(B):
            for t in range(T):
                if content_l[b][t]:
                    run.append(t)
                if run and (not content_l[b][t] or end_l[b][t] or t == T - 1):
                    spans.append((b, run, tuple(ids_l[b][i] for i in run)))
                    run = []
        return spans


class ClipImageEncoder(nn.Module):
    """CLIP's vision tower -> unit-norm local patch features (NACLIP or MaskCLIP last block,
    ``dense``) and the image embedding."""

    def __init__(self, vision_model: nn.Module, visual_projection: nn.Linear, *, dense: str = "naclip", gaussian_std: float = GAUSSIAN_STD):
        super().__init__()
        if dense not in DENSE:
            raise ValueError(f"dense must be one of {', '.join(map(repr, DENSE))} (got {dense!r})")
        self.vision_model, self.visual_projection = vision_model, visual_projection
        self.patch_size = vision_model.config.patch_size
        self.dense, self.gaussian_std = dense, gaussian_std

    def forward(self, pixels: Tensor, need_weights: bool = False) -> tuple[Tensor, tuple[int, int], Tensor, tuple]:
        """pixels (B, 3, h, w), h and w multiples of the patch size -> patches (B, P, E),
        grid (gh, gw), image embedding (B, E), CLIP's self-attentions per layer (B, heads, 1+P, 1+P)."""
        vm = self.vision_model
        gh, gw = pixels.shape[-2] // self.patch_size, pixels.shape[-1] // self.patch_size
        layers = vm.encoder.layers
        weights: list[Tensor] = []
        hooks = [layer.self_attn.register_forward_hook(lambda m, a, o: weights.append(o[1])) for layer in layers] if need_weights else []
        try:
            x = vm.pre_layrnorm(vm.embeddings(pixels, interpolate_pos_encoding=True))  # (B, 1+P, Dv)
            for layer in layers[:-1]:
                x = layer(x, None)
            last = layers[-1]
            image = vm.post_layernorm(last(x, None)[:, 0])  # (B, Dv): [CLS] through the normal last block
        finally:
            for h in hooks:
                h.remove()
        if self.dense == "naclip":  # key-key attention + neighbourhood bias; no residual, no MLP
            y = naclip_block(last, x, (gh, gw), self.gaussian_std)
        else:  # MaskCLIP: no query-key mixing, each patch reads only itself
            y = maskclip_block(last, x)
        patches = self.visual_projection(vm.post_layernorm(y[:, 1:]))  # (B, P, E)
        image = self.visual_projection(image)  # (B, E)
        return F.normalize(patches, dim=-1), (gh, gw), F.normalize(image, dim=-1), tuple(w for w in weights if w is not None)

    def pos(self, gh: int, gw: int) -> Tensor:
        """CLIP's learned patch position embeddings, interpolated to a (gh, gw) grid: (P, Dv), row-major."""
        emb = self.vision_model.embeddings
        dummy = torch.zeros(1, 1 + gh * gw, emb.embed_dim, device=emb.position_embedding.weight.device)
        return emb.interpolate_pos_encoding(dummy, gh * self.patch_size, gw * self.patch_size)[0, 1:]


class ClipScores(nn.Module):
    """Scales and biases of the match and grounded logits (see the module doc)."""

    def __init__(self, temperature: float):
        super().__init__()
        self.match_scale = nn.Parameter(torch.tensor(float(temperature)))
        self.match_bias = nn.Parameter(torch.tensor(0.0))
        self.local_weight = nn.Parameter(torch.tensor(0.1))
        self.grounded_scale = nn.Parameter(torch.tensor(float(temperature)))
        self.grounded_bias = nn.Parameter(torch.tensor(0.0))


class ClipGroundingModel(nn.Module):
    """CLIP towers (frozen) + mmattn fusion layers: the forward and outputs of
    :class:`~mmattn.model.GroundingModel`, so :class:`~mmattn.grounding.Grounder` runs it as is."""

    def __init__(self, clip: nn.Module, tokenizer, config: ClipGroundingConfig, text_encoder: type[ClipTextEncoder] | None = None):
        """``text_encoder``: the class that reads the text tower (:class:`ClipTextEncoder`,
        or Chinese-CLIP's BERT reader, :class:`mmattn.backends.clip.chinese.ChineseClipTextEncoder`)."""
        super().__init__()
        self.config = c = config
        if clip.config.projection_dim != c.dim or clip.config.vision_config.patch_size != c.patch_size:
            raise ValueError(
                f"config (dim={c.dim}, patch_size={c.patch_size}) does not fit the CLIP checkpoint "
                f"(projection_dim={clip.config.projection_dim}, patch_size={clip.config.vision_config.patch_size})"
            )
        self.clip_config = clip.config
        text_encoder = text_encoder or ClipTextEncoder
        self.text_encoder = text_encoder(clip.text_model, clip.text_projection, tokenizer, c)
        self.image_encoder = ClipImageEncoder(clip.vision_model, clip.visual_projection, dense=c.dense, gaussian_std=c.gaussian_std)
        self.fusion = nn.ModuleList(FusionLayer(c.dim, c.num_heads, mlp_ratio=c.mlp_ratio) for _ in range(c.fusion_layers))
        self.scores = ClipScores(c.temperature)
        for p in [*self.text_encoder.parameters(), *self.image_encoder.parameters()]:
            p.requires_grad_(False)
        self.zero_shot_init()

    @torch.no_grad()
    def zero_shot_init(self) -> None:
        """Fusion attention = CLIP similarity at CLIP's temperature; residual branches off."""
        c = self.config
        alpha = c.temperature * math.sqrt(c.num_heads / c.dim)
        eye = torch.eye(c.dim)
        for layer in self.fusion:
            for mha in (layer.text_to_image, layer.image_to_text):
                for proj, w in ((mha.q_proj, alpha * eye), (mha.k_proj, eye), (mha.v_proj, eye), (mha.out_proj, 0 * eye)):
                    proj.weight.copy_(w)
                    proj.bias.zero_()
            for mlp in (layer.mlp_t, layer.mlp_i):
                mlp.fc2.weight.zero_()
                mlp.fc2.bias.zero_()

    def fusion_state_dict(self) -> dict[str, Tensor]:
        """The trainable part (fusion layers and scores): what a trained checkpoint adds to CLIP."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(("text_encoder.", "image_encoder."))}

    def clip_state_dict(self) -> dict[str, Tensor]:
        """The towers under ``CLIPModel``'s own names (to save a checkpoint CLIP can load)."""
        sd = {f"text_model.{k}": v for k, v in self.text_encoder.text_model.state_dict().items()}
        sd |= {f"vision_model.{k}": v for k, v in self.image_encoder.vision_model.state_dict().items()}
        sd["text_projection.weight"] = self.text_encoder.text_projection.weight
        sd["visual_projection.weight"] = self.image_encoder.visual_projection.weight
        sd["logit_scale"] = torch.tensor(math.log(self.config.temperature))
        return sd

    def encode_image(self, pixels: Tensor, need_weights: bool = False):
        """pixels (B, 3, h, w) -> (patches (B, P, E), grid, image embedding (B, E), self-attentions)."""
        return self.image_encoder(pixels, need_weights)

    def legrad(self, ids: Tensor, pixels: Tensor, attention_mask: Tensor | None = None, *, start_layer: int = START_LAYER) -> Tensor:
        """LeGrad (:mod:`mmattn.legrad`) of every caption token's text feature in CLIP's vision
        tower (the normal one, not the dense last block): ids (B, T), pixels (B, 3, h, w),
        attention_mask (B, T) bool -> (B, T, P) relevance >= 0, not normalised; 0 for special
        tokens and padding. In ``"prompt"`` mode a word's tokens share its prompt's embedding,
        so they share one map."""
        if ids.size(0) != pixels.size(0):
            raise ValueError(f"LeGrad reads one caption per image (got {ids.size(0)} captions, {pixels.size(0)} images)")
        mask = torch.ones_like(ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        with torch.no_grad():
            text = self.text_encoder(ids, mask)
        enc = self.image_encoder
        maps = legrad(enc.vision_model, enc.visual_projection, pixels, text.tokens, start_layer=start_layer)  # (B, T, P)
        return maps * text.content[..., None]

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
        """As :meth:`GroundingModel.forward <mmattn.model.GroundingModel.forward>`: ids (B, T),
        pixels (Bi, 3, h, w), attention_mask (B, T) bool; B may be a multiple k of Bi (caption
        j * Bi + b is read against image b). CLIP's self-attentions include [CLS]: the image
        ones are (Bi, heads, 1+P, 1+P). ``patch_logits`` is empty (B, P, 0): CLIP has no
        shapes-world patch classes."""
        if attention_mask is None:
            attention_mask = torch.ones_like(ids, dtype=torch.bool)
        attention_mask = attention_mask.bool()
        text = self.text_encoder(ids, attention_mask, output_attentions)
        if image is None:
            if pixels is None:
                raise TypeError("forward() needs pixels (B, 3, h, w) or a precomputed image=encode_image(pixels)")
            image = self.encode_image(pixels, output_attentions)
        patches, grid, image_embeds, image_w = image  # (Bi, P, E), (gh, gw), (Bi, E)
        Bi = patches.size(0)
        patch_logits = patches.new_zeros(Bi, patches.size(1), 0)
        img = image_embeds
        if Bi != ids.size(0):  # k captions per image: captions [all k=0, all k=1, ...]
            if ids.size(0) % Bi:
                raise ValueError(f"{ids.size(0)} captions do not divide evenly over {Bi} images")
            k = ids.size(0) // Bi
            patches, img = patches.repeat(k, 1, 1), img.repeat(k, 1)  # (B, P, E), (B, E)

        t, i, t2i, i2t = text.tokens, patches, [], []
        for layer in self.fusion:
            out = layer(t, i, attention_mask, need_weights=True)  # the scores read every layer's maps
            t, i = out.text, out.image
            t2i.append(out.text_to_image)
            i2t.append(out.image_to_text)

        s = self.scores
        cos_neutral = img @ text.neutral  # (B,)
        sim = torch.einsum("bte,bpe->btp", text.tokens, patches)  # (B, T, P) cosine of every token and patch
        attn = torch.stack([w.mean(1) for w in t2i]).mean(0)  # (B, T, P) mean over heads and layers
        local_t = (attn * sim).sum(-1) - sim.mean(-1)  # (B, T) attended patches vs the average patch
        weight = text.content.float()
        local = (local_t * weight).sum(-1) / weight.sum(-1).clamp(min=1)  # (B,)
        match = s.match_scale * ((text.caption * img).sum(-1) - cos_neutral + s.local_weight * local) + s.match_bias
        cos_tokens = torch.einsum("bte,be->bt", text.tokens, img)  # (B, T)
        grounded = s.grounded_scale * (cos_tokens - cos_neutral[:, None]) + s.grounded_bias
        grounded = grounded.masked_fill(~text.content | text.function, NOT_GROUNDED)

        coords = patch_coordinates(*grid, device=ids.device).to(t.dtype)  # (P, 2)
        fusion_w = output_attentions or output_fusion_attentions
        return GroundingOutput(
            text_features=t,
            image_features=i,
            match_logits=match,
            grounded_logits=grounded,
            patch_logits=patch_logits,
            text_embeds=text.caption,
            image_embeds=image_embeds,
            grid=grid,
            text_to_image=tuple(t2i) if fusion_w else (),
            image_to_text=tuple(i2t) if fusion_w else (),
            text_self_attentions=text.attentions,
            image_self_attentions=tuple(image_w),
            centroids=t2i[-1].mean(1) @ coords,  # (B, T, 2)
            relation_logits=torch.zeros_like(match),  # no relation probes on CLIP
        )
