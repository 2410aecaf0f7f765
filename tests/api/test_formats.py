"""Grounding results in other tools' formats: supervision, COCO, notebooks (issue #25 item 4)."""

import io
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import mmattn
from mmattn.api.maps import box_iou, upsample
from mmattn.scenes import TRAIN, make_sample

SEED = 78_600_000  # seeds used by neither training nor `mmattn eval`


@pytest.fixture(scope="module")
def g():
    return mmattn.Grounder.from_pretrained()


@pytest.fixture(scope="module")
def scenes():
    return [make_sample(SEED + i, *((320, 240), (200, 160))[i % 2], TRAIN, lang="en") for i in range(6)]


@pytest.fixture(scope="module")
def results(g, scenes):
    return [g.ground(s.image, s.caption.text) for s in scenes]


def test_to_supervision_round_trips(results, scenes):
    sv = pytest.importorskip("supervision")
    found = 0
    for r, s in zip(results, scenes):
        det = r.to_supervision()
        idx = [i for i, (ok, b) in enumerate(zip(r.grounded, r.boxes)) if ok and b is not None]
        assert isinstance(det, sv.Detections) and len(det) == len(idx) > 0
        np.testing.assert_array_equal(det.xyxy, np.array([r.boxes[i] for i in idx], np.float32))
        np.testing.assert_allclose(det.confidence, [r.grounded_scores[i] for i in idx], rtol=1e-6)
        assert list(det.data["class_name"]) == [r.words[i] for i in idx] and list(det.class_id) == idx
        assert det.mask.shape == (len(idx), s.image.height, s.image.width) and det.mask.dtype == bool
        fine = upsample(torch.from_numpy(r.patch_maps), r.grid, (s.image.height, s.image.width)).numpy()  # the map the boxes are read from
        for n, i in enumerate(idx):
            m = fine[i]
            y, x = np.unravel_index(m.argmax(), m.shape)
            assert det.mask[n, y, x]  # the region around the word's peak
            assert (m[det.mask[n]] >= 0.4 * m.max() - 1e-6).all()
            ys, xs = np.nonzero(det.mask[n])
            assert box_iou((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), r.boxes[i]) > 0.8  # the box frames the mask
            w = s.caption.words[i]
            if w.kind == "shape":  # known answer: the mask lies on the word's object
                found += s.objects[w.ref].mask[det.mask[n]].mean() > 0.5
    assert found >= 4


def test_supervision_annotators_draw_it(results, scenes):
    sv = pytest.importorskip("supervision")
    r, s = results[0], scenes[0]
    det = r.to_supervision()
    canvas = np.asarray(s.image).copy()
    boxed = sv.BoxAnnotator().annotate(canvas.copy(), det)
    masked = sv.MaskAnnotator().annotate(canvas.copy(), det)
    labelled = sv.LabelAnnotator().annotate(boxed.copy(), det, labels=list(det.data["class_name"]))
    for drawn in (boxed, masked, labelled):
        assert drawn.shape == canvas.shape and (drawn != canvas).any()
    x0, y0, x1, y1 = (int(v) for v in det.xyxy[0])
    assert (boxed[y0, x0:x1] != canvas[y0, x0:x1]).any()  # the box's top edge is drawn where the box is
    assert (masked[det.mask[0]] != canvas[det.mask[0]]).any() and (masked[~det.mask.any(0)] == canvas[~det.mask.any(0)]).all()


def test_to_coco_loads_with_pycocotools(results, scenes):
    pytest.importorskip("pycocotools")
    from pycocotools import mask as mask_api
    from pycocotools.coco import COCO

    shapes = sorted({o.shape for s in scenes for o in s.objects})
    cats = {name: k + 1 for k, name in enumerate(shapes)}
    gt = {"images": [], "annotations": [], "categories": [{"id": v, "name": k} for k, v in cats.items()]}
    dets = []
    for n, (r, s) in enumerate(zip(results, scenes)):
        gt["images"].append({"id": n, "width": s.image.width, "height": s.image.height})
        for o in s.objects:
            rle = mask_api.encode(np.asfortranarray(o.mask.astype(np.uint8)))
            x0, y0, x1, y1 = o.box
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": n, "category_id": cats[o.shape], "iscrowd": 0,
                                      "bbox": [x0, y0, x1 - x0, y1 - y0], "area": float(o.mask.sum()), "segmentation": rle})  # fmt: skip
        got = r.to_coco(n, cats)
        expected = [i for i, w in enumerate(r.words) if r.grounded[i] and r.boxes[i] is not None and w in cats]
        assert [d["category_id"] for d in got] == [cats[r.words[i]] for i in expected]
        for d, i in zip(got, expected):
            x0, y0, x1, y1 = r.boxes[i]
            assert d["image_id"] == n and d["bbox"] == [x0, y0, x1 - x0, y1 - y0] and d["score"] == pytest.approx(r.grounded_scores[i])
        dets += got
    assert dets
    coco = COCO()
    coco.dataset = gt
    coco.createIndex()
    res = coco.loadRes(dets)
    assert len(res.getAnnIds()) == len(dets)
    masks = r_masks = [res.annToMask(a) for a in res.loadAnns(res.getAnnIds())]
    assert all(m.shape == (gt["images"][a["image_id"]]["height"], gt["images"][a["image_id"]]["width"]) and m.any()
               for m, a in zip(r_masks, res.loadAnns(res.getAnnIds())))  # fmt: skip
    # known answer: most masks lie on an object of their category
    hits = 0
    for m, a in zip(masks, res.loadAnns(res.getAnnIds())):
        objs = [o for o in scenes[a["image_id"]].objects if cats[o.shape] == a["category_id"]]
        hits += any((o.mask & m.astype(bool)).sum() > 0.5 * m.sum() for o in objs)
    assert hits >= 0.8 * len(masks)
    with pytest.raises(TypeError, match="category_ids"):
        results[0].to_coco(0, ["circle"])


def test_missing_extras_say_which_to_install(results, monkeypatch):
    monkeypatch.setitem(sys.modules, "supervision", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r'pip install "mmattn\[supervision\]"') as e:
        results[0].to_supervision()
    assert "\n" not in str(e.value)
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    monkeypatch.setitem(sys.modules, "pycocotools.mask", None)
    with pytest.raises(ImportError, match=r'pip install "mmattn\[coco\]"'):
        results[0].to_coco(0, {"circle": 1})


def test_notebooks_show_a_result_by_itself(g, scenes):
    s = scenes[0]
    r = g.ground(s.image, "a red circle & a blue square")
    png = r._repr_png_()
    im = Image.open(io.BytesIO(png))
    assert im.format == "PNG" and im.size == s.image.size
    assert np.abs(np.asarray(im.convert("RGB"), int) - np.asarray(s.image, int)).max() > 50  # the maps are drawn over it
    page = r._repr_html_()
    assert "a red circle &amp; a blue square" in page and page.count("<tr>") == len(r.words) + 1
    for w in r.words:
        assert f"<td>{w}</td>" in page
    r.image = None
    assert r._repr_png_() is None  # nothing to draw on: IPython shows the table
