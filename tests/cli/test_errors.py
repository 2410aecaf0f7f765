"""The ``mmattn`` command's errors (issue 27, finding 7): one line on stderr that says what to
do, a non-zero exit, and checked before any long work starts. Run through ``subprocess``, as a
user runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--steps", "1", "--batch-size", "2", "--eval-every", "0", "--ckpt-every", "1", "--workers", "0",
        "--model", json.dumps({"dim": 32, "num_heads": 2, "text_layers": 1, "fusion_layers": 1, "match_layers": 1})]  # fmt: skip


def mmattn(*args, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MMATTN_DEBUG": ""}
    return subprocess.run([sys.executable, "-m", "mmattn", *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def one_line_error(r: subprocess.CompletedProcess, *says: str, code: int | None = None) -> str:
    """The last line of stderr, checked: no traceback, a non-zero exit, the words expected."""
    assert r.returncode != 0 and (code is None or r.returncode == code), (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    line = r.stderr.strip().splitlines()[-1]
    for s in says:
        assert s in line, line
    return line


def test_an_unwritable_out_fails_before_the_first_step(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    r = mmattn("train", "--out", blocker / "run", *TINY[2:], "--steps", "100000", timeout=120)  # main trained every step first
    one_line_error(r, "cannot write to the output folder", str(blocker / "run"), "pass --out a folder you can write to", code=1)
    assert "it/s" not in r.stderr and "s/it" not in r.stderr  # no progress bar: nothing was trained


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_out_fails_before_the_first_step(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    one_line_error(mmattn("train", "--out", ro, "--steps", "100000", timeout=120), "cannot write to the output folder", code=1)


@pytest.mark.parametrize(("args", "says"), [
    (["--sizes", "0x0"], "each side must be 32..1024 pixels (got 0x0)"),
    (["--sizes", "96"], "sizes look like 96x96,96x72 (got '96')"),
    (["--steps", "0"], "--steps: expected a whole number >= 1 (got '0')"),
    (["--batch-size", "-3"], "--batch-size: expected a whole number >= 1 (got '-3')"),
])  # fmt: skip
def test_bad_training_options_are_refused_by_name(tmp_path, args, says):
    one_line_error(mmattn("train", "--out", tmp_path / "run", *args, timeout=120), says, code=2)
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """OUT/last of a one-step run."""
    out = tmp_path_factory.mktemp("run") / "out"
    r = mmattn("train", "--out", out, *TINY, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def damaged_copy(trained, tmp_path, damage) -> Path:
    out = tmp_path / "out"
    shutil.copytree(trained, out)
    damage(out / "last")
    return out


def truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


RESUME = [
    (lambda d: (d / "optimizer.safetensors").unlink(), "has no optimizer.safetensors"),
    (lambda d: truncate(d / "optimizer.safetensors"), "optimizer.safetensors is not a readable safetensors file"),
    (lambda d: (d / "train_state.json").write_text("{broken"), "has no a readable train_state.json"),
    (lambda d: (d / "train_state.json").write_text("[]"), "has no a readable train_state.json"),
]


@pytest.mark.parametrize(("damage", "says"), RESUME, ids=["optimizer-missing", "optimizer-truncated", "state-broken", "state-not-object"])
def test_resume_from_a_damaged_checkpoint_says_what_to_do(trained, tmp_path, damage, says):
    out = damaged_copy(trained, tmp_path, damage)
    r = mmattn("train", "--out", out, "--resume", *TINY, timeout=300)
    one_line_error(r, says, "start afresh in another --out", code=1)


def test_resume_with_another_model_says_so(trained, tmp_path):
    out = damaged_copy(trained, tmp_path, lambda d: None)
    args = [*TINY[:-1], json.dumps({"dim": 64, "num_heads": 2, "text_layers": 1, "fusion_layers": 1, "match_layers": 1})]
    one_line_error(mmattn("train", "--out", out, "--resume", *args, timeout=300), "does not fit the model", "same --model", code=1)


def test_eval_of_a_corrupt_folder_is_one_line(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(ROOT / "assets" / "model", folder)
    truncate(folder / "model.safetensors")
    one_line_error(mmattn("eval", folder, "--scenes", "2"), "model.safetensors", "re-save or re-download it", code=1)
    one_line_error(mmattn("eval", tmp_path / "nowhere", "--scenes", "2"), "nowhere", code=1)


def test_clip_training_checks_its_options_and_out_first(tmp_path):
    one_line_error(mmattn("train", "--clip", tmp_path / "no-such-clip", "--steps", "0", timeout=120), "--steps", code=2)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    r = mmattn("train", "--clip", tmp_path / "no-such-clip", "--out", blocker / "run", timeout=120)
    one_line_error(r, "cannot write to the output folder", code=1)  # before the (missing) towers are even looked for
    r = mmattn("train", "--clip", tmp_path / "no-such-clip", "--out", tmp_path / "run", timeout=120)
    one_line_error(r, "no-such-clip", code=1)
