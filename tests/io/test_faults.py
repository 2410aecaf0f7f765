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
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmattn.api.grounding import Grounding
from mmattn.io import files

ROOT = Path(__file__).resolve().parents[2]


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
    from mmattn.api.maps import maps_at_size

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


def test_save_refuses_to_replace_the_current_folder(tmp_path, monkeypatch):
    here = tmp_path / "here"
    result(["red"]).save(here)  # a result folder, but the process works in it
    monkeypatch.chdir(here)
    with pytest.raises(ValueError, match="current folder"):
        result(["blue"]).save(".")
    assert Grounding.load(here).words == ["red"]


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

        monkeypatch.setattr(files.os, "replace", fail_on_folders)
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
        files.atomic_write(target, fail)
    assert os.listdir(tmp_path) == ["state.json"] and target.read_text() == "old"
    files.write_json(target, {"new": 1})
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

    from mmattn.cli import ground as ground_cli

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
        m.setattr(files, "new_dir_beside", lambda target: (_ for _ in ()).throw(PermissionError(errno.EACCES, "Permission denied")))
        code, err = run(tmp_path / "out")
    assert code == 2 and err == f"mmattn ground: could not write the result to {tmp_path / 'out'}: Permission denied\n"
    if os.geteuid() == 0:
        with tiny_disk(tmp_path, size="16k") as disk:
            code, err = run(disk / "out")
            assert code == 2 and "No space left on device" in err and err.count("\n") == 1
            assert os.listdir(disk) == []


def test_a_kill_during_a_save_leaves_the_earlier_result_or_the_new_one(tmp_path):
    """kill -9 while the overlays are being written: the folder holds the earlier result or
    the whole new one, and no half-written file (the hidden temporary folder beside it may stay)."""
    out = tmp_path / "out"
    result(["red"]).save(out)
    before = snapshot(out)
    code = f"""
import sys
sys.path.insert(0, {str(ROOT / "tests" / "io")!r})
from test_faults import result
result(["blue", "square", "big", "small"], size=(1600, 1200), seed=3).save({str(out)!r})
"""
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    deadline = time.time() + 60
    while proc.poll() is None and time.time() < deadline and not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
        time.sleep(0.005)
    time.sleep(0.2)  # in the middle of the overlays
    proc.kill()
    proc.wait()
    after = snapshot(out)
    new = ["00_blue.png", "01_square.png", "02_big.png", "03_small.png", "grounding.json", "maps.npy"]
    assert after == before or (sorted(after) == new and Grounding.load(out).words == ["blue", "square", "big", "small"])

def test_eval_writes_its_json_and_table_through_planted_symlinks_never(tiny_checkpoint, tmp_path, capsys):
    from mmattn.training.evaluate import main

    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    for name in ("metrics.json", "table.md"):
        (tmp_path / name).symlink_to(outside)
    main([str(tiny_checkpoint), "--scenes", "2", "--sets", "train", "--json", str(tmp_path / "metrics.json"), "--md", str(tmp_path / "table.md")])
    assert outside.read_text() == "precious"
    assert not (tmp_path / "metrics.json").is_symlink() and "results" in json.loads((tmp_path / "metrics.json").read_text())
    assert (tmp_path / "table.md").read_text() == capsys.readouterr().out


# ---- checkpoints: checked before anything is built -----------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from app_fixtures import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture
def ckpt(tiny_checkpoint, tmp_path) -> Path:
    """A fresh copy of the tiny checkpoint that the test may damage."""
    return Path(shutil.copytree(tiny_checkpoint, tmp_path / "model"))


def tamper(folder: Path, **changes) -> None:
    file = folder / "config.json"
    file.write_text(json.dumps({**json.loads(file.read_text()), **changes}))


TAMPERED = [
    ("vocab_size", 3_000_000), ("vocab_size", 2_000_000_000), ("vocab_size", 900_000), ("vocab_size", 0), ("vocab_size", "168"),
    ("dim", -128), ("dim", 0), ("dim", 64), ("dim", 30), ("dim", 10**9), ("dim", 32.0), ("dim", True),
    ("num_heads", 0), ("num_heads", -4), ("num_heads", 3), ("num_heads", 10**6),
    ("text_layers", -1), ("text_layers", 50), ("text_layers", 10**6), ("image_layers", 3), ("fusion_layers", 0),
    ("fusion_layers", 7), ("match_layers", 0), ("match_layers", 1000), ("relation_heads", -1),
    ("mlp_ratio", 0), ("mlp_ratio", -2.0), ("mlp_ratio", float("nan")), ("mlp_ratio", 1e9), ("mlp_ratio", 4.0),
    ("patch_size", 0), ("patch_size", 6), ("patch_size", 10**6), ("image_size", 0), ("image_size", 4), ("image_size", 10**7),
    ("max_text_len", 0), ("embed_dim", 0), ("embed_dim", 10**9), ("dropout", -0.5), ("dropout", 1.0),
    ("stem", "resnet"), ("text_positions", None), ("image_positions", "rotary"), ("match_spread", "yes"), ("update_image_last", 1),
]  # fmt: skip


@pytest.mark.parametrize("field, value", TAMPERED, ids=[f"{f}={v!r}" for f, v in TAMPERED])
def test_each_tampered_config_field_is_a_checkpoint_error_naming_the_field_and_the_file(ckpt, field, value, monkeypatch):
    """No model is built at full size before the check: building any module outside the
    meta device before the error fails the test."""
    import torch

    from mmattn.models.grounding_model import CheckpointError, GroundingModel

    tamper(ckpt, **{field: value})
    real_init = GroundingModel.__init__

    def only_on_meta(self, *args, **kwargs):
        assert torch.empty(0).device.type == "meta", "a model was built before the checkpoint was checked"
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(GroundingModel, "__init__", only_on_meta)
    with pytest.raises(CheckpointError) as e:
        GroundingModel.load(ckpt)
    assert field in str(e.value) and str(ckpt / "config.json") in str(e.value), str(e.value)


def test_a_tampered_vocabulary_costs_no_memory(ckpt):
    """vocab_size 900,000 is within bounds (a 115 MB embedding at this width) but does not fit
    the weights: it is refused from the safetensors header, before anything is allocated."""
    shutil.copytree(ckpt, str(ckpt) + "-real")
    tamper(ckpt, vocab_size=900_000)
    code = f"""
import resource
from mmattn.models.grounding_model import CheckpointError, GroundingModel
GroundingModel.load({str(ckpt)!r} + "-real")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    GroundingModel.load({str(ckpt)!r})
except CheckpointError as e:
    assert "vocab_size=900000" in str(e), e
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) < 30, f"peak memory grew by {out.stdout.split()[-1]} MB"


def test_a_tokenizer_with_ids_beyond_the_vocabulary_is_refused(ckpt):
    from mmattn.models.grounding_model import CheckpointError, GroundingModel

    tok = json.loads((ckpt / "tokenizer.json").read_text())
    tok["model"]["vocab"]["zebra"] = 5000
    (ckpt / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(CheckpointError, match=r"config\.json: vocab_size=\d+ is too small for .*tokenizer\.json.*5000"):
        GroundingModel.load(ckpt)


@pytest.mark.parametrize("damage", ["truncated", "not-a-tokenizer", "list", "string-ids", "no-specials", "binary"])
def test_a_corrupt_tokenizer_is_a_checkpoint_error_naming_the_file(ckpt, damage):
    from mmattn import Grounder
    from mmattn.models.grounding_model import CheckpointError
    from mmattn.models.tokenizer import load_tokenizer

    file = ckpt / "tokenizer.json"
    text = file.read_text()
    tok = json.loads(text)
    if damage == "truncated":
        file.write_text(text[: len(text) // 2])
    elif damage == "not-a-tokenizer":
        file.write_text(text.replace('"WordPiece"', '"NoSuchModel"'))
    elif damage == "list":
        file.write_text("[1, 2, 3]")
    elif damage == "string-ids":
        tok["model"]["vocab"] = {k: str(v) for k, v in tok["model"]["vocab"].items()}
        file.write_text(json.dumps(tok))
    elif damage == "no-specials":
        tok["model"]["vocab"].pop("[CLS]")
        tok["added_tokens"] = [t for t in tok["added_tokens"] if t["content"] != "[CLS]"]
        tok["post_processor"] = None
        file.write_text(json.dumps(tok))
    else:
        file.write_bytes(b"\xff\xfe\x00garbage")
    for load in (load_tokenizer, Grounder.from_pretrained):
        with pytest.raises(CheckpointError, match=str(file).replace(".", r"\.")):
            load(ckpt)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_at_load(ckpt, bad):
    from safetensors.torch import load_file, save_file

    from mmattn.models.grounding_model import CheckpointError, GroundingModel

    state = load_file(ckpt / "model.safetensors")
    state["match_head.weight"][0, 3] = bad
    save_file(state, ckpt / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"model\.safetensors holds NaN or infinite weights in match_head\.weight"):
        GroundingModel.load(ckpt)


def test_an_oversized_config_is_refused_unread(ckpt):
    from mmattn.models.grounding_model import CheckpointError, GroundingModel

    (ckpt / "config.json").write_text('{"dim": 32' + " " * 2_000_000 + "}")
    with pytest.raises(CheckpointError, match=r"config\.json is 2,000,011 bytes"):
        GroundingModel.load(ckpt)


# ---- pixels: refused, never clipped into a picture nobody meant --------------------------------

BAD_PIXELS = [
    (np.full((8, 8, 3), np.nan), "NaN or infinite.*nan_to_num"),
    (np.full((8, 8), np.inf, np.float32), "NaN or infinite"),
    (np.where(np.eye(8, dtype=bool)[..., None], -np.inf, 0.5).repeat(3, 2), "NaN or infinite"),
    (np.full((8, 8, 3), 10**12, np.int64), r"0\.\.255.*int64 array holds 1000000000000\.\.1000000000000.*8 bits"),
    (np.full((8, 8), -3, np.int16), r"0\.\.255.*-3\.\.-3"),
    (np.full((8, 8, 3), 40_000, np.uint16), r"16-bit image: \(a // 257\)"),
    (np.full((8, 8, 3), -0.25), r"\[0, 1\] or \[0, 255\].*-0\.25\.\.-0\.25.*rescale"),
    (np.linspace(-1, 1, 192).reshape(8, 8, 3), r"\[0, 1\] or \[0, 255\].*-1\.\.1"),
    (np.full((8, 8, 3), 300.0, np.float16), r"\[0, 1\] or \[0, 255\].*300"),
]  # fmt: skip


@pytest.mark.parametrize("array, message", BAD_PIXELS, ids=[f"{a.dtype}-{i}" for i, (a, _) in enumerate(BAD_PIXELS)])
def test_non_finite_or_out_of_range_pixels_are_value_errors_that_say_what_to_do(array, message):
    from mmattn.api.image import load_image

    with pytest.raises(ValueError, match=message):
        load_image(array)


def test_other_array_types_are_type_errors_and_in_range_integers_are_pixels():
    from mmattn.api.image import load_image

    with pytest.raises(TypeError, match="complex128"):
        load_image(np.zeros((4, 4, 3), complex))
    assert load_image(np.full((4, 4, 3), 200, np.int64)).getpixel((0, 0)) == (200, 200, 200)
    assert load_image(np.eye(4, dtype=np.int32)).getpixel((1, 1)) == (255, 255, 255)  # 0 / 1: black and white
    assert load_image(np.eye(4, dtype=bool)).getpixel((0, 1)) == (0, 0, 0)


def test_ground_refuses_nan_pixels_with_the_same_message(tiny_checkpoint):
    from mmattn import Grounder

    g = Grounder.from_pretrained(tiny_checkpoint)
    bad = np.full((32, 32, 3), np.nan)
    with pytest.raises(ValueError, match="NaN or infinite"):
        g.ground(bad, "a red circle")
    with pytest.raises(ValueError, match="NaN or infinite"):
        g.ground_batch([np.zeros((32, 32, 3), np.uint8), bad], ["a red circle", "a blue square"])


# ---- training state: nothing lost across interruptions -------------------------------------------


def tiny_train_cfg(out, **kw):
    from mmattn.training.train import TrainConfig

    base = dict(out=str(out), steps=6, batch_size=4, lr=3e-3, warmup=2, eval_every=0, ckpt_every=2, workers=0, sizes=((48, 48),),
                model={"dim": 32, "num_heads": 4, "text_layers": 1, "image_layers": 1, "fusion_layers": 2})  # fmt: skip
    return TrainConfig(**{**base, **kw})


def train_state(folder: Path) -> dict:
    return json.loads((folder / "train_state.json").read_text())


def test_the_eval_history_survives_every_resume_and_resume_says_where_it_started(tmp_path, caplog):
    from mmattn.training.train import train

    kw = dict(eval_every=2, eval_scenes=4)
    train(tiny_train_cfg(tmp_path, steps=2, **kw))
    with caplog.at_level("INFO", logger="mmattn"):
        for steps in (4, 6):  # two interruptions, each resumed
            train(tiny_train_cfg(tmp_path, steps=steps, resume=True, **kw))
            assert f"resumed from {tmp_path / 'last'}: step {steps - 2} of {steps}" in caplog.text
    assert [h["step"] for h in train_state(tmp_path / "last")["history"]] == [2, 4, 6]
    assert "evaluations so far" in caplog.text


def test_resume_says_when_there_is_nothing_to_resume(tmp_path, caplog):
    from mmattn.training.train import train

    with caplog.at_level("INFO", logger="mmattn"):
        train(tiny_train_cfg(tmp_path, steps=1, resume=True))
    assert f"nothing to resume in {tmp_path / 'last'}: starting from step 0" in caplog.text


def test_a_half_written_snapshot_is_reported_and_taken_again(tmp_path, caplog):
    from mmattn.training.state import CHECKPOINT_FILES
    from mmattn.training.train import train

    train(tiny_train_cfg(tmp_path, steps=2, snapshots=(1e-9,)))
    snap = tmp_path / "at-1e-09min"
    assert train_state(snap)["step"] == 1
    for f in snap.iterdir():  # as a crash in the middle of the copy left it
        if f.name != "config.json":
            f.unlink()
    with caplog.at_level("WARNING", logger="mmattn"):
        train(tiny_train_cfg(tmp_path, steps=4, snapshots=(1e-9,), resume=True))
    assert f"snapshot {snap} is incomplete (no model.safetensors" in caplog.text
    assert set(CHECKPOINT_FILES) <= {f.name for f in snap.iterdir()}
    assert train_state(snap)["step"] == 3  # the first step after the resume
    assert not leftovers(tmp_path)


def test_a_failed_checkpoint_write_leaves_the_previous_one(tmp_path, monkeypatch):
    import mmattn.training.state
    from mmattn.training.train import train

    train(tiny_train_cfg(tmp_path, steps=2))
    before = snapshot(tmp_path / "last")

    def fail(tensors, file, *args, **kwargs):
        Path(file).write_bytes(b"half an optimizer")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mmattn.train_state, "save_file", fail)
    with pytest.raises(OSError, match="No space"):
        train(tiny_train_cfg(tmp_path, steps=4, resume=True))
    assert snapshot(tmp_path / "last") == before
    assert sorted(os.listdir(tmp_path)) == ["last"]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads which file a descriptor is from /proc")
def test_every_checkpoint_file_is_fsynced_before_the_folder_is_moved_into_place(tmp_path, monkeypatch):
    from mmattn.training.train import train

    events = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def recording_replace(src, dst):
        events.append(("replace", os.fspath(src)))
        replace(src, dst)

    monkeypatch.setattr(files.os, "fsync", recording_fsync)
    monkeypatch.setattr(files.os, "replace", recording_replace)
    train(tiny_train_cfg(tmp_path, steps=1))
    tmp = str(tmp_path / "last.tmp")
    moved = events.index(("replace", tmp))
    synced = {p for kind, p in events[:moved] if kind == "fsync"}
    written = {str(tmp_path / "last.tmp" / f.name) for f in (tmp_path / "last").iterdir()}
    assert written <= synced and tmp in synced

