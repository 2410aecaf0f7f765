"""Ray Data: ground_dataset equals ground() row for row (issue #25 item 3), on a local cluster."""

import io

import numpy as np
import pytest

import mmattn
from mmattn.scenes import SHIFTED, TRAIN, make_sample

ray = pytest.importorskip("ray")
SEED = 78_700_000  # seeds used by neither training nor `mmattn eval`
SIZES = [(320, 240), (200, 120), (96, 96), (160, 120)]


def png(im) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.timeout(900)  # a local Ray cluster starts in 10-20 s on a quiet machine, minutes on a loaded one
def test_ground_dataset_equals_ground_row_for_row(local_ray):
    from mmattn.scale.distributed import ground_dataset

    samples = [make_sample(SEED + i, *SIZES[i % 4], SHIFTED if i % 2 else TRAIN) for i in range(32)]
    items = [{"id": i, "image": png(s.image), "caption": s.caption.text, "source": f"scene-{i}"} for i, s in enumerate(samples)]
    items[5]["image"] = b"not an image"  # a broken image is an error in its row, not a failed job
    ds = ground_dataset(ray.data.from_items(items), concurrency=2, batch_size=8, maps=True)
    rows = {r["id"]: r for r in ds.take_all()}
    assert sorted(rows) == list(range(32))
    g = mmattn.Grounder.from_pretrained()
    for i, s in enumerate(samples):
        row = rows[i]
        assert row["source"] == f"scene-{i}" and row["caption"] == s.caption.text  # the input's columns are kept
        if i == 5:
            assert row["error"].startswith("ValueError: could not read the image") and list(row["words"]) == []
            continue
        one = g.ground(s.image, s.caption.text)
        assert row["error"] is None
        assert list(row["words"]) == one.words and [bool(x) for x in row["grounded"]] == one.grounded
        assert [None if b is None else tuple(int(v) for v in b) for b in row["boxes"]] == one.boxes
        np.testing.assert_allclose(np.asarray(row["scores"], float), one.grounded_scores, atol=1e-5)
        assert row["match_score"] == pytest.approx(one.match_score, abs=1e-5)
        np.testing.assert_allclose(row["maps"], one.patch_maps.reshape(len(one.words), *one.grid), atol=1e-5)
    with pytest.raises(ValueError, match="no 'picture' column"):
        ground_dataset(ray.data.from_items(items[:2]), image_column="picture")
