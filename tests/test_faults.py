"""Faults injected on purpose: nothing the library writes escapes its folder or is left half
written, no tampered checkpoint is built before it is checked, bad pixels are refused, and
training state survives interruptions.

Each test plants one fault (a symlink, a full disk, an exception in the middle of a write, a
tampered config field, a corrupt tokenizer, NaN weights, a half-written snapshot) and states
what the library must do about it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmattn import fileio
from mmattn.result import Grounding


def result(words: list[str], size=(120, 90), grid=(6, 8), seed: int = 0) -> Grounding:
    """A result with an image, as ``Grounder.ground`` returns (made without a model)."""
    rng = np.random.default_rng(seed)
    W, P = len(words), grid[0] * grid[1]
    maps = rng.random((W, P)).astype(np.float32)
    maps /= maps.max()
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    return Grounding(caption=" ".join(words), words=words, size=size, patch_maps=maps, grid=grid, grounded=[True] * W,
                     boxes=[(1, 2, 30, 40)] * W, match_score=0.5, grounded_scores=[0.9] * W,
                     image_to_text=rng.random((P, W)).astype(np.float32), image=image)  # fmt: skip


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def leftovers(folder: Path) -> list[str]:
    """Temporary files or folders of an interrupted write under ``folder``."""
    return [str(p) for p in folder.rglob("*") if p.name.endswith((".tmp", ".old"))]


# ---- result folders --------------------------------------------------------------------------


def test_save_replaces_planted_symlinks_and_never_writes_through_them(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    for name in ("grounding.json", "maps.npy", "00_red.png", "01_circle.png"):
        (outside / name).write_text("precious")
        (out / name).symlink_to(outside / name)
    result(["red", "circle"]).save(out)
    assert all((outside / n).read_text() == "precious" for n in os.listdir(outside))
    assert sorted(os.listdir(out)) == ["00_red.png", "01_circle.png", "grounding.json", "maps.npy"]
    assert not any(p.is_symlink() for p in out.iterdir())


def test_save_replaces_a_symlink_at_the_folder_itself_not_its_target(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "grounding.json").write_text("precious")
    link = tmp_path / "out"
    link.symlink_to(elsewhere, target_is_directory=True)
    result(["red"]).save(link)
    assert not link.is_symlink() and (link / "00_red.png").is_file()
    assert snapshot(elsewhere) == {"grounding.json": b"precious"}


def test_a_folder_holds_exactly_the_last_result(tmp_path):
    out = tmp_path / "out"
    result([f"w{i}" for i in range(8)]).save(out)
    r = result(["red", "blue", "circle"], seed=1)
    r.save(out)
    assert sorted(os.listdir(out)) == ["00_red.png", "01_blue.png", "02_circle.png", "grounding.json", "maps.npy"]
    back = Grounding.load(out)
    assert back.words == r.words and back.boxes == r.boxes
    assert not leftovers(tmp_path)


def test_maps_are_saved_on_the_patch_grid_and_render_to_the_image_size(tmp_path):
    from mmattn.maps import maps_at_size

    r = result(["red", "circle"], size=(4000, 3000), grid=(12, 16))
    r.image = None  # no overlays: this test is about maps.npy
    out = r.save(tmp_path / "out")
    maps = np.load(out / "maps.npy")
    assert maps.shape == (2, 12, 16) and maps.dtype == np.float32 and (out / "maps.npy").stat().st_size < 2000
    np.testing.assert_allclose(maps_at_size(maps, (12, 16), (30, 40)), maps_at_size(r.patch_maps, (12, 16), (30, 40)))
    assert Grounding.load(out).word_maps.shape == (2, 3000, 4000)


def test_save_refuses_a_folder_holding_other_files_and_leaves_it_alone(tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"jpeg")
    with pytest.raises(ValueError, match=r"holiday\.jpg.*new or empty folder"):
        result(["red"]).save(out)
    assert snapshot(out) == {"holiday.jpg": b"jpeg"}
    assert not leftovers(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        result(["red"]).save(tmp_path / "file")


@pytest.mark.parametrize("fail_at", ["maps", "overlay", "swap"])
def test_an_exception_in_the_middle_of_a_save_leaves_the_earlier_result_whole(tmp_path, monkeypatch, fail_at):
    """Each write is interrupted after part of its bytes (as a kill or a full disk would):
    the folder keeps the earlier result byte for byte, and no temporary file survives."""
    out = tmp_path / "out"
    result(["red", "circle"]).save(out)
    before = snapshot(out)

    def half_then_fail(*args, **kwargs):
        f = next(a for a in args if hasattr(a, "write"))
        f.write(b"\x93NUMPY half")
        raise OSError(errno.EIO, "injected failure")

    if fail_at == "maps":
        monkeypatch.setattr(np, "save", half_then_fail)
    elif fail_at == "overlay":
        monkeypatch.setattr(Image.Image, "save", lambda self, *a, **k: half_then_fail(*a))
    else:  # the files are written; moving the new folder into place fails
        replace = os.replace

        def fail_on_folders(src, dst):
            if os.path.isdir(src) and Path(src).name.endswith(".tmp"):
                raise OSError(errno.EIO, "injected failure")
            replace(src, dst)

        monkeypatch.setattr(fileio.os, "replace", fail_on_folders)
    with pytest.raises(OSError, match="injected"):
        result(["blue", "square", "big"], seed=2).save(out)
    assert snapshot(out) == before
    assert not leftovers(tmp_path)


def test_atomic_write_removes_its_temporary_file_and_keeps_the_target(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")

    def fail(f):
        f.write(b"partial")
        raise KeyboardInterrupt  # a Ctrl-C in the middle of the write

    with pytest.raises(KeyboardInterrupt):
        fileio.atomic_write(target, fail)
    assert os.listdir(tmp_path) == ["state.json"] and target.read_text() == "old"
    fileio.write_json(target, {"new": 1})
    assert json.loads(target.read_text()) == {"new": 1}


@contextlib.contextmanager
def tiny_disk(tmp_path: Path, size: str = "64k"):
    """A tmpfs of ``size`` mounted at a fresh folder (root only; the test is skipped otherwise)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_leaves_no_half_file_and_the_earlier_result_whole(tmp_path):
    with tiny_disk(tmp_path) as disk:
        small = result(["red"], size=(16, 12))
        small.save(disk / "out")
        before = snapshot(disk / "out")
        big = result(["red", "blue", "circle"], size=(200, 150))  # noise: its overlays do not fit in 64 KB
        with pytest.raises(OSError) as e:
            big.save(disk / "out")
        assert e.value.errno == errno.ENOSPC
        assert snapshot(disk / "out") == before
        assert sorted(os.listdir(disk)) == ["out"], "no temporary folder left on the full disk"


def test_cli_ends_write_failures_with_one_line_and_exit_code_2(tmp_path, monkeypatch, capsys):
    from app_fixtures import make_tiny_checkpoint

    from mmattn import ground_cli

    model = make_tiny_checkpoint(tmp_path / "tiny")
    image = str(tmp_path / "noise.png")
    result(["x"], size=(200, 150)).image.save(image)  # noise: its overlays do not fit on a 16 KB disk

    def run(out) -> tuple[int, str]:
        with pytest.raises(SystemExit) as e:
            ground_cli.main([image, "a red circle", "--model", str(model), "--out", str(out)])
        return e.value.code, capsys.readouterr().err

    (tmp_path / "in-the-way").write_text("a file")
    code, err = run(tmp_path / "in-the-way")
    assert code == 2 and err.count("\n") == 1 and "is a file" in err and "Traceback" not in err
    with monkeypatch.context() as m:
        m.setattr(fileio, "new_dir_beside", lambda target: (_ for _ in ()).throw(PermissionError(errno.EACCES, "Permission denied")))
        code, err = run(tmp_path / "out")
    assert code == 2 and err == f"mmattn ground: could not write the result to {tmp_path / 'out'}: Permission denied\n"
    if os.geteuid() == 0:
        with tiny_disk(tmp_path, size="16k") as disk:
            code, err = run(disk / "out")
            assert code == 2 and "No space left on device" in err and err.count("\n") == 1
            assert os.listdir(disk) == []
