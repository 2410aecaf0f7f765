"""The public grounding API on the shipped model: known answers on fresh synthetic scenes."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import mmattn
from mmattn.api.maps import box_iou, maps_at_size
from mmattn.scenes import TRAIN, make_sample
from mmattn.teach import recompute
from mmattn.training.evaluate import evaluate, held_out_samples

FRESH = 77_000_000  # seeds used by neither training nor `mmattn eval`


@pytest.fixture(scope="module")
def g():
    return mmattn.Grounder.from_pretrained()


@pytest.fixture(scope="module")
def scenes():
    sizes = [(320, 240), (200, 120), (120, 200), (96, 96)]
    return [make_sample(FRESH + i, *sizes[i % 4], TRAIN, lang="en") for i in range(24)]


def test_shipped_model_points_at_objects(g):
    """Known answer on 50 fresh scenes (English and Chinese, seven image sizes).

    The shipped model scores 1.00 here (0.9895 on 1,000 scenes; the goal of issue #3 is 0.99,
    see the README's figures); issue #3 asks for >= 0.95 on 50 fresh scenes."""
    m = evaluate(g.model, g.tokenizer, held_out_samples(50, seed=FRESH + 1000), progress=False)
    assert m["pointing"]["all"] >= 0.95, m["pointing"]
    assert m["image_to_text"] >= 0.95 and m["box_iou"] >= 0.6, m


def test_maps_peak_inside_and_boxes_overlap(g, scenes):
    ious, hits = [], []
    for s in scenes:
        r = g.ground(s.image, s.caption.text)
        assert r.words == [w.text for w in s.caption.words]
        assert r.word_maps.shape == (len(r.words), s.image.height, s.image.width)
        for i, w in enumerate(s.caption.words):
            if w.kind in ("colour", "shape"):
                obj = s.objects[w.ref]
                y, x = np.unravel_index(r.word_maps[i].argmax(), r.word_maps[i].shape)
                hits.append(obj.mask[y, x])
                ious.append(box_iou(r.boxes[i], obj.box))
    assert np.mean(hits) >= 0.9  # shipped model: 0.94 on these 24 (0.99 on 200 such scenes)
    assert np.mean(ious) >= 0.5


def test_words_at_object_centre_favours_its_words(g, scenes):
    good = 0
    for s in scenes:
        r = g.ground(s.image, s.caption.text)
        k = s.caption.words[-1].ref  # the last noun's object
        cx, cy = s.objects[k].center
        weights = dict(enumerate(w for _, w in r.words_at(cx, cy)))
        best = max((i for i, w in enumerate(s.caption.words) if w.ref is not None), key=weights.get)
        good += s.caption.words[best].ref == k
    assert good / len(scenes) >= 0.9


def test_match_score_checks_the_relation_against_the_image(g):
    """ "A left of B" scores above "A right of B" when A is left of B (and so on for above /
    below), in English and Chinese: the match head compares the relation word with where
    the two objects' words look (the relation probe)."""
    scenes = []
    seed = FRESH + 2000
    while len(scenes) < 30:
        s = make_sample(seed, *((160, 120), (120, 160))[seed % 2], TRAIN)
        seed += 1
        if s.caption.relation:
            scenes.append(s)
    swaps = [next(n for n in s.negatives if n.neg_kind == "relation") for s in scenes]
    true = g.ground_batch([s.image for s in scenes], [s.caption.text for s in scenes])
    swapped = g.ground_batch([s.image for s in scenes], [n.text for n in swaps])
    assert {s.caption.lang for s in scenes} == {"en", "zh"}
    wins = [t.match_score > f.match_score for t, f in zip(true, swapped)]
    assert sum(wins) / len(wins) >= 0.9, [s.caption.text for s, w in zip(scenes, wins) if not w]
    assert np.mean([f.match_score < 0.5 for f in swapped]) >= 0.8
    # the probes' own part of the score says why: it agrees with the true relation, not its swap
    assert np.mean([t.relation_score > 1 > -1 > f.relation_score for t, f in zip(true, swapped)]) >= 0.9
    assert true[0].to_json()["relation_score"] == round(true[0].relation_score, 6)
    one = g.ground(scenes[0].image, "a red circle")
    assert abs(one.relation_score) < 1  # no relation word: the probes stay out of it


def test_bfloat16_precision_gives_the_same_answers(g, scenes):
    """precision="bfloat16" (autocast) keeps the contract (float32 maps at the image's size)
    and the answers: the same flags and near-identical maps, boxes and scores. Grad-CAM
    stays float32, so its maps are the float32 ones."""
    gb = type(g)(g.model, g.processor, precision="bfloat16")
    imgs, caps = [s.image for s in scenes[:6]], [s.caption.text for s in scenes[:6]]
    for method in ("attention", "rollout", "gradcam"):
        ious = []
        for a, b in zip(g.ground_batch(imgs, caps, method=method), gb.ground_batch(imgs, caps, method=method), strict=True):
            assert b.word_maps.dtype == np.float32 and b.word_maps.shape == a.word_maps.shape
            assert b.words == a.words and b.grounded == a.grounded
            np.testing.assert_allclose(b.word_maps, a.word_maps, atol=1e-5 if method == "gradcam" else 0.05)
            assert abs(b.match_score - a.match_score) < 0.05
            for ba, bb in zip(a.boxes, b.boxes):
                assert (ba is None) == (bb is None)
                if ba is not None:
                    ious.append(box_iou(ba, bb))
        # a box edge can cross the 0.4-of-peak line by a few pixels (docs/benchmarks.md: bfloat16
        # changes some boxes), never the whole box
        assert min(ious) > 0.6 and np.mean(ious) > 0.9, (method, sorted(ious)[:5])
    with pytest.raises(ValueError, match="precision.*float16"):
        type(g)(g.model, g.processor, precision="float16")


def test_function_words_and_absent_things_are_not_grounded(g):
    s = make_sample(FRESH + 500, 160, 120, TRAIN, lang="en")
    r = g.ground(s.image, s.caption.text)
    for w, flag in zip(s.caption.words, r.grounded):
        if w.kind == "function":
            assert not flag
    r = g.ground(s.image, "a zebra")
    assert r.unknown_words == ["zebra"] and r.grounded == [False, False] and r.boxes == [None, None]


def test_batch_equals_single(g, scenes):
    imgs, caps = [s.image for s in scenes[:8]], [s.caption.text for s in scenes[:8]]
    # same model input size as scenes[0] (320x240) but rendered at another size, in one batch
    imgs.insert(1, scenes[4].image.resize((160, 120)))
    caps.insert(1, "a red circle")
    batch = g.ground_batch(imgs, caps, batch_size=3)
    for b, im, c in zip(batch, imgs, caps, strict=True):
        one = g.ground(im, c)
        assert b.words == one.words and b.grounded == one.grounded and b.boxes == one.boxes
        assert b.word_maps.shape == one.word_maps.shape == (len(one.words), im.height, im.width)
        np.testing.assert_allclose(b.word_maps, one.word_maps, atol=1e-4)
        np.testing.assert_allclose(b.patch_maps, one.patch_maps, atol=1e-5)
        np.testing.assert_allclose(b.image_to_text, one.image_to_text, atol=1e-5)
        np.testing.assert_allclose(b.grounded_scores, one.grounded_scores, atol=1e-5)
        assert abs(b.match_score - one.match_score) < 1e-4


def test_word_maps_are_rendered_when_first_read(g, scenes):
    """A result holds W x P numbers until its full-size maps are read: thousands of results
    never hold thousands of full-size maps unless asked."""
    s = scenes[0]
    r = g.ground(s.image, s.caption.text)
    assert "word_maps" not in vars(r)  # not rendered yet
    m = r.word_maps
    assert "word_maps" in vars(r) and r.word_maps is m  # rendered once, then kept
    np.testing.assert_allclose(m, recompute.maps_at_size(r.patch_maps, r.grid, (s.image.height, s.image.width)), atol=1e-6)
    assert m.max() == pytest.approx(1.0, abs=1e-6)


def test_iter_batch_streams_the_results_of_ground_batch(g, scenes):
    imgs, caps = [s.image for s in scenes[:10]], [s.caption.text for s in scenes[:10]]
    streamed = g.iter_batch(imgs, caps, batch_size=2)
    assert not isinstance(streamed, list)
    for a, b in zip(streamed, g.ground_batch(imgs, caps, batch_size=3), strict=True):
        assert a.words == b.words and a.boxes == b.boxes and a.grounded == b.grounded
        np.testing.assert_allclose(a.patch_maps, b.patch_maps, atol=1e-5)
    with pytest.raises(ValueError, match="caption"):  # bad arguments raise at the call, not when iterated
        g.iter_batch(imgs[:2], ["a red circle", " "])
    # a broken image stops the stream where it is, after the results before its chunk (of batch_size)
    broken = [s.image for s in scenes[:12]]
    broken[9] = b"not an image"
    it = g.iter_batch(broken, ["a red circle"] * 12, batch_size=2)  # image 9 is in the chunk [8, 10)
    assert len([next(it) for _ in range(8)]) == 8
    with pytest.raises(ValueError, match="image 9"):
        next(it)


def test_iter_batch_stopped_early_leaves_no_work_behind(g, scenes):
    """Batches run on worker threads a few chunks ahead of the caller; a caller that stops
    early (closes the stream) cancels what is queued and leaves no thread running."""
    import threading

    before = threading.active_count()
    imgs, caps = [s.image for s in scenes[:12]], [s.caption.text for s in scenes[:12]]
    it = g.iter_batch(imgs * 4, caps * 4, batch_size=2, progress=False)
    first = next(it)
    assert first.words == g.ground(imgs[0], caps[0]).words
    it.close()
    assert threading.active_count() == before


def test_json_round_trip_and_save(g, scenes, tmp_path):
    r = g.ground(scenes[0].image, scenes[0].caption.text)
    d = json.loads(json.dumps(r.to_json(maps=True)))
    back = mmattn.Grounding.from_json(d)
    assert back.words == r.words and back.boxes == r.boxes and back.grounded == r.grounded
    np.testing.assert_allclose(back.word_maps, r.word_maps, atol=1e-4)
    assert [w for w, _ in back.words_at(10, 10)] == r.words
    np.testing.assert_allclose([v for _, v in back.words_at(10, 10)], [v for _, v in r.words_at(10, 10)], atol=1e-5)
    folder = r.save(tmp_path / "out")
    maps = np.load(folder / "maps.npy")  # (W, gh, gw): the patch-grid maps, rendered at any size by maps_at_size
    assert maps.shape == (len(r.words), *r.grid)
    np.testing.assert_allclose(maps_at_size(maps, r.grid, r.size[::-1]), r.word_maps, atol=1e-6)
    assert len(list(folder.glob("*.png"))) == len(r.words)
    loaded = mmattn.Grounding.load(folder)
    assert loaded.words == r.words and loaded.boxes == r.boxes
    np.testing.assert_allclose(loaded.word_maps, r.word_maps, atol=1e-4)


def test_overlay_is_image_sized(g, scenes):
    r = g.ground(scenes[1].image, scenes[1].caption.text)
    assert r.overlay(1).size == scenes[1].image.size
    with pytest.raises(ValueError, match="out of range"):
        r.overlay(99)


@pytest.mark.parametrize("method", ["attention", "rollout", "gradcam"])
def test_methods_share_one_scale(g, scenes, method):
    s = scenes[2]
    r = g.ground(s.image, s.caption.text, method=method)
    assert r.word_maps.max() == pytest.approx(1.0, abs=1e-3) and r.word_maps.min() >= 0
    assert r.method == method and r.word_maps.shape == (len(r.words), s.image.height, s.image.width)
    peaks = r.patch_maps.max(1)
    assert peaks.max() == pytest.approx(1.0) and peaks.min() < 1.0  # one scale: not every word reaches 1
    assert all(p.grad is None for p in g.model.parameters())


def test_raw_tensors_and_choices(g, scenes):
    s = scenes[0]
    r = g.ground(s.image, s.caption.text, raw=True, layer=0, heads=1)
    L, H = g.num_layers, g.num_heads
    assert len(r.raw.text_to_image) == L and r.raw.text_to_image[0].shape[0] == H
    T, P = len(r.raw.tokens), r.grid[0] * r.grid[1]
    assert r.raw.text_to_image[0].shape == (H, T, P) and r.raw.image_to_text[0].shape == (H, P, T)
    with pytest.raises(ValueError, match="layer"):
        g.ground(s.image, s.caption.text, layer=L)
    with pytest.raises(ValueError, match="heads"):
        g.ground(s.image, s.caption.text, heads=H)
    with pytest.raises(ValueError, match="method"):
        g.ground(s.image, s.caption.text, method="magic")


def test_bad_input_is_refused_clearly(g):
    img = make_sample(1, 64, 64).image
    for caption in ["", "   ", "\u200b", "!!!"]:
        with pytest.raises(ValueError, match="caption is empty"):
            g.ground(img, caption)
    with pytest.raises(TypeError, match="no image"):
        g.ground(None, "a red circle")
    with pytest.raises(ValueError, match="empty"):
        g.ground(np.zeros((0, 5, 3), np.uint8), "a red circle")
    with pytest.raises(TypeError, match="caption must be a string"):
        g.ground(img, 42)
    with pytest.raises(ValueError, match="no image file"):
        g.ground("/nonexistent.png", "a red circle")
    with pytest.raises(ValueError, match="one caption per image"):
        g.ground_batch([img, img], ["a red circle"])


def test_long_caption_is_truncated_with_a_notice(g):
    img = make_sample(1, 64, 64).image
    r = g.ground(img, "the red circle " * 2000)
    assert r.truncated and "cut" in r.notice and len(r.words) <= 30


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16"])
def test_every_pillow_mode(g, mode):
    s = make_sample(FRESH + 7, 160, 96)
    im = s.image.convert(mode) if mode != "I;16" else Image.fromarray(np.asarray(s.image.convert("L"), np.uint16) * 257)
    r = g.ground(im, s.caption.text)
    assert r.word_maps.shape[1:] == (96, 160)


def test_exif_orientation_is_respected(g, tmp_path):
    s = make_sample(FRESH + 8, 160, 96)
    rotated = s.image.transpose(Image.Transpose.ROTATE_90)  # stored sideways (96 wide, 160 tall)
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90 CW to display": undoes the rotation above
    path = tmp_path / "exif.jpg"
    rotated.save(path, exif=exif, quality=95)
    r = g.ground(str(path), s.caption.text)
    assert r.size == (160, 96)


def test_cli_ground(tmp_path):
    s = make_sample(FRESH + 9, 128, 96)
    path = tmp_path / "scene.png"
    s.image.save(path)
    out = subprocess.run([sys.executable, "-m", "mmattn.cli", "ground", str(path), s.caption.text, "--json", "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["words"] == [w.text for w in s.caption.words]
    assert (tmp_path / "o" / "grounding.json").exists()
    fast = subprocess.run([sys.executable, "-m", "mmattn.cli", "ground", str(path), s.caption.text, "--json", "--precision", "bfloat16"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert fast.returncode == 0, fast.stderr
    assert json.loads(fast.stdout)["grounded"] == json.loads(out.stdout)["grounded"]
    bad = subprocess.run([sys.executable, "-m", "mmattn.cli", "ground", str(path), "  "], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "caption is empty" in bad.stderr
