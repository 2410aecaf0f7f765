"""Every writer cleans up when the disk fills (issue 27, finding 6): on a real full disk (a
tmpfs of a few hundred KB, when the tests run as root) and with an injected OSError
(anywhere). After the failure the folder holds exactly what it held before: the previous
checkpoint or result untouched, no ``FOLDER.tmp`` or hidden temporary left beside it."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
from app_fixtures import make_tiny_checkpoint
from PIL import Image


def listing(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()} | {
        str(p.relative_to(root)) + "/": 0 for p in sorted(root.rglob("*")) if p.is_dir()
    }


@pytest.fixture
def tiny_disk(tmp_path):
    """A tmpfs of 384 KB (root only; else skipped)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the injected-OSError tests cover the same writers")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=384k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("this machine does not allow mounting a tmpfs")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture(scope="module")
def clip_grounder(tmp_path_factory):
    from mmattn.api.grounder import Grounder
    from mmattn.backends.clip.random_clip import save_random_clip

    return Grounder.from_pretrained(save_random_clip(tmp_path_factory.mktemp("clip") / "tiny-clip"))


@pytest.fixture(scope="module")
def mmattn_parts(tmp_path_factory):
    from mmattn.models.grounding_model import GroundingModel
    from mmattn.models.tokenizer import load_tokenizer
    from mmattn.training.train import TrainConfig, make_optimizer

    folder = make_tiny_checkpoint(tmp_path_factory.mktemp("mm") / "tiny")
    model, tok = GroundingModel.load(folder), load_tokenizer(folder)
    return model, tok, make_optimizer(model, TrainConfig()), TrainConfig()


def _writers(clip_grounder, mmattn_parts, big: bool):
    """name -> write(target folder): each writer of the package, writing something large
    enough (``big``) to fill the tiny disk."""
    from mmattn.backends.clip.grounder import save_clip_checkpoint
    from mmattn.io import files
    from mmattn.training.state import save_checkpoint

    model, tok, opt, cfg = mmattn_parts

    def grounding(folder):
        from mmattn.api.grounder import Grounder

        g = Grounder.from_pretrained()
        side = 600 if big else 64
        g.ground(Image.effect_noise((side, side), 80).convert("RGB"), "a red circle left of a blue square").save(folder)

    return {
        "save_clip_checkpoint": lambda folder: save_clip_checkpoint(clip_grounder, folder),
        "save_checkpoint": lambda folder: save_checkpoint(str(folder), model, tok, opt, 1, cfg),
        "Grounding.save": grounding,
        "write_text": lambda folder: files.write_text(Path(folder).with_suffix(".json"), "x" * (1_000_000 if big else 10)),
    }


WRITERS = ["save_clip_checkpoint", "save_checkpoint", "Grounding.save", "write_text"]


@pytest.mark.parametrize("writer", WRITERS)
def test_a_full_disk_leaves_the_folder_as_it_was(tiny_disk, clip_grounder, mmattn_parts, writer):
    write = _writers(clip_grounder, mmattn_parts, big=True)[writer]
    free = os.statvfs(tiny_disk).f_bavail * os.statvfs(tiny_disk).f_frsize
    (tiny_disk / "keep.bin").write_bytes(b"k" * (free - 48 * 1024))  # the previous content; 48 KB left
    before = listing(tiny_disk)
    with pytest.raises(OSError) as e:
        write(tiny_disk / "out")
    assert e.value.errno == errno.ENOSPC, e.value
    assert listing(tiny_disk) == before


@pytest.mark.parametrize("writer", WRITERS)
def test_an_oserror_mid_write_leaves_the_previous_version(tmp_path, monkeypatch, clip_grounder, mmattn_parts, writer):
    """The disk fills while the files are flushed (where a full disk or a quota often shows)."""
    writers = _writers(clip_grounder, mmattn_parts, big=False)
    target = tmp_path / "out"
    writers[writer](target)  # a previous version
    before = listing(tmp_path)
    real_fsync = os.fsync

    def fsync(fd):
        if os.path.isfile(f"/proc/self/fd/{fd}") or not os.path.exists("/proc/self/fd"):  # files, not folders
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="injected"):
        writers[writer](target)
    monkeypatch.undo()
    assert listing(tmp_path) == before
