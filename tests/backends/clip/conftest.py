"""Fixtures of the CLIP backend's tests: one tiny random CLIP (2 layers of width 32, saved in
transformers' standard layout) for the whole session, transformers' own model over it, and
the grounders built from it offline."""

from __future__ import annotations

from pathlib import Path

import pytest
from clip_helpers import offline

from mmattn import Grounder
from mmattn.backends.clip.grounder import ClipGrounder
from mmattn.backends.clip.random_clip import save_random_clip


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory) -> Path:
    return save_random_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="session")
def clip_model(clip_dir):
    from transformers import CLIPModel

    return CLIPModel.from_pretrained(clip_dir, attn_implementation="eager").eval()


@pytest.fixture(scope="session")
def grounder(clip_dir) -> ClipGrounder:
    with offline():
        return Grounder.from_pretrained(clip_dir)


@pytest.fixture(scope="session")
def maskclip(clip_dir) -> ClipGrounder:
    with offline():
        return ClipGrounder.from_pretrained(clip_dir, dense="maskclip")
