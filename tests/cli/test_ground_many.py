"""`mmattn ground-many`: a CSV of pairs to JSON Lines, resumable after a kill (issue #25 item 3)."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mmattn
from mmattn.scenes import TRAIN, make_sample

ROOT = Path(__file__).resolve().parents[2]
SEED = 78_800_000  # seeds used by neither training nor `mmattn eval`
N = 48


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs")
    (folder / "img").mkdir()
    samples = [make_sample(SEED + i, *((200, 150), (96, 96))[i % 2], TRAIN) for i in range(N)]
    with open(folder / "pairs.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["image", "caption", "source"])
        for i, s in enumerate(samples):
            if i != 7:  # row 7's image is missing
                s.image.save(folder / "img" / f"{i}.png")
            w.writerow([f"img/{i}.png", s.caption.text, f"scene {i}"])
    return folder, samples


def ground_many(*args, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "mmattn", "ground-many", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]  # every line whole JSON


def test_resumes_after_a_kill(table, tmp_path):
    folder, samples = table
    out = tmp_path / "results.jsonl"
    p = ground_many(str(folder / "pairs.csv"), "--out", str(out), "--chunk", "4", "--batch-size", "4")
    deadline = time.monotonic() + 300
    while not (out.exists() and out.stat().st_size) and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL)  # mid-run, as soon as the first lines are written
    p.communicate()
    first = lines(out)
    assert 0 < len(first) < N, "the run should have been killed mid-way"
    p = ground_many(str(folder / "pairs.csv"), "--out", str(out), "--chunk", "8")
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    assert f"{len(first)} of {N} rows already written" in err
    got = lines(out)
    assert got[: len(first)] == first and sorted(r["row"] for r in got) == list(range(N))  # nothing twice, nothing lost
    g = mmattn.Grounder.from_pretrained()
    for r in got:
        i = r["row"]
        assert r["source"] == f"scene {i}" and r["caption"] == samples[i].caption.text
        if i == 7:
            assert r["error"].startswith("ValueError: no image file") and r["words"] == []
            continue
        one = g.ground(samples[i].image, samples[i].caption.text)
        assert r["error"] is None and r["words"] == one.words and r["grounded"] == one.grounded
        assert [tuple(b) if b else None for b in r["boxes"]] == one.boxes
        assert r["match_score"] == pytest.approx(one.match_score, abs=1e-5)
    # a third run has nothing to do; a line cut short (a full disk) is dropped and its row redone
    text = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text("".join(text[:-1]) + text[-1][:20], encoding="utf-8")
    p = ground_many(str(folder / "pairs.csv"), "--out", str(out))
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    assert sorted(r["row"] for r in lines(out)) == list(range(N))


def test_bad_input_is_one_line(table, tmp_path):
    folder, _ = table
    bad = tmp_path / "bad.csv"
    bad.write_text("path,text\na.png,a red circle\n", encoding="utf-8")
    p = ground_many(str(bad), "--out", str(tmp_path / "o.jsonl"))
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2 and err.strip().count("\n") == 0 and "no 'image' or 'caption' column" in err
    other = tmp_path / "other.jsonl"
    other.write_text('{"something": 1}\n', encoding="utf-8")
    p = ground_many(str(folder / "pairs.csv"), "--out", str(other))
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2 and "not a result line" in err
