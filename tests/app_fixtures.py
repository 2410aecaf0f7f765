"""Shared helpers for the app / browser / explain tests: a tiny random checkpoint, test
images, and the app module loaded once (on the shipped model when it exists)."""

from __future__ import annotations

import importlib
import os
import socket
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "assets" / "model"

CAPTIONS = [
    "a red circle", "a blue square", "a green triangle", "a yellow star", "a small pink heart",
    "a large purple cross", "an orange diamond", "a cyan hexagon", "a red circle left of a blue square",
    "a green star above a yellow heart", "two small circles", "the large square is right of the triangle",
    "a blue circle below a red square", "there is no star", "一个红色的圆", "蓝色的方块", "绿色的三角形在左边",
    "一个黄色的星星", "粉色的心", "紫色的十字在蓝色方块的上面", "橙色的菱形", "青色的六边形",
]  # fmt: skip


def make_tiny_checkpoint(path: str | os.PathLike) -> Path:
    """A small random GroundingModel + tokenizer saved to ``path`` (for tests and development)."""
    import torch

    from mmattn.models.grounding_model import GroundingConfig, GroundingModel
    from mmattn.models.tokenizer import build_tokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(CAPTIONS)
    torch.manual_seed(0)
    m = GroundingModel(GroundingConfig(vocab_size=len(tok), dim=32, num_heads=4, text_layers=1, image_layers=1,
                                       fusion_layers=2, image_size=96))  # fmt: skip
    m.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def shipped_model_ready() -> bool:
    return (SHIPPED / "model.safetensors").is_file() and (SHIPPED / "config.json").is_file() and (SHIPPED / "tokenizer.json").is_file()


_TINY: Path | None = None


def model_dir() -> Path:
    """The shipped model if it is there, else a tiny random one (made once per process)."""
    global _TINY
    if shipped_model_ready():
        return SHIPPED
    if _TINY is None:
        _TINY = make_tiny_checkpoint(Path(tempfile.mkdtemp(prefix="mmattn-tiny-")) / "tiny")
    return _TINY


def load_app():
    """Import ``app`` (once): on the shipped model, or with MMATTN_MODEL pointing at a tiny one."""
    if "app" in sys.modules:
        return sys.modules["app"]
    if not shipped_model_ready():  # else the app loads the shipped model by itself
        os.environ.setdefault("MMATTN_MODEL", str(model_dir()))
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("app")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scene(width: int = 160, height: int = 120) -> Image.Image:
    """A red circle on the left and a blue square on the right, on light grey."""
    im = Image.new("RGB", (width, height), (230, 230, 230))
    d = ImageDraw.Draw(im)
    r = min(width, height) // 5
    d.ellipse([width // 4 - r, height // 2 - r, width // 4 + r, height // 2 + r], fill=(220, 30, 30))
    d.rectangle([3 * width // 4 - r, height // 2 - r, 3 * width // 4 + r, height // 2 + r], fill=(30, 60, 220))
    return im


def write_scene(path: str | os.PathLike, width: int = 160, height: int = 120) -> str:
    scene(width, height).save(path)
    return str(path)
