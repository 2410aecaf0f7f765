"""Training: losses go down, runs resume exactly, checkpoints are safetensors, DDP works."""

import os
import subprocess
import sys

import pytest
import torch

from mmattn.models.grounding_model import GroundingModel
from mmattn.training.train import TrainConfig, load_train_state, make_optimizer, train

TINY = {"dim": 32, "num_heads": 4, "text_layers": 1, "image_layers": 1, "fusion_layers": 2, "mlp_ratio": 2.0}


def tiny_cfg(out, **kw) -> TrainConfig:
    base = dict(out=str(out), steps=6, batch_size=8, lr=3e-3, warmup=2, eval_every=0, ckpt_every=3, workers=0,
                sizes=((48, 48),), model=TINY)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def test_tiny_run_learns_and_beats_chance(tmp_path):
    from mmattn.models.tokenizer import load_tokenizer
    from mmattn.training.evaluate import evaluate, held_out_samples

    cfg = tiny_cfg(tmp_path, steps=80, batch_size=16, warmup=10, lr=4e-3, ckpt_every=80, sizes=((64, 64),))
    model = train(cfg)
    state = os.path.join(cfg.out, "last")
    tok = load_tokenizer(state)
    samples = held_out_samples(40, seed=99, sizes=((64, 64),))
    m = evaluate(model, tok, samples, progress=False)
    # chance: a random patch lies in the mentioned object ~5% of the time
    assert m["pointing"]["all"] > 0.3, m
    fresh = GroundingModel(model.config)
    assert evaluate(fresh, tok, samples, progress=False)["pointing"]["all"] < m["pointing"]["all"]


def test_resume_continues_exactly(tmp_path):
    straight = train(tiny_cfg(tmp_path / "a"))
    train(tiny_cfg(tmp_path / "b", steps=3))  # "interrupted" after 3 steps (checkpoint at 3)
    resumed = train(tiny_cfg(tmp_path / "b", resume=True))
    for (n, p), (_, q) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=n)


def test_checkpoint_is_safetensors_and_atomic(tmp_path):
    cfg = tiny_cfg(tmp_path, steps=3)
    model = train(cfg)
    last = os.path.join(cfg.out, "last")
    files = set(os.listdir(last))
    assert {"model.safetensors", "config.json", "tokenizer.json", "optimizer.safetensors", "train_state.json"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pth", ".pkl")) for f in files)
    assert not os.path.exists(last + ".tmp") and not os.path.exists(last + ".old")
    opt = make_optimizer(model, cfg)
    assert load_train_state(last, GroundingModel(model.config), opt)["step"] == 3


@pytest.mark.skipif(sys.platform != "linux", reason="gloo over localhost")
def test_torchrun_two_cpu_processes(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "-m", "mmattn.training.train", "--out", str(tmp_path), "--steps", "3", "--batch-size", "4", "--eval-every", "0",
           "--workers", "0", "--sizes", "48x48", "--model",
           '{"dim": 32, "num_heads": 4, "text_layers": 1, "image_layers": 1, "match_layers": 2, "match_spread": true, "relation_heads": 2}']  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert os.path.isfile(tmp_path / "last" / "model.safetensors")


def test_cli_options_reach_the_config_and_bad_values_are_refused(capsys):
    from mmattn.training.train import parser

    args = parser().parse_args(["--relation-negatives", "0.25", "--sizes", "128x96,64x128", "--model", '{"image_size": 128}',
                                "--render-scales", "0.75,1,2"])  # fmt: skip
    assert (args.relation_negatives, args.sizes, args.model) == (0.25, ((128, 96), (64, 128)), {"image_size": 128})
    assert args.render_scales == (0.75, 1.0, 2.0)
    args = parser().parse_args(["--precision", "bfloat16", "--ema", "0.998", "--snapshots", "15,30"])
    assert (args.precision, args.ema, args.snapshots) == ("bfloat16", 0.998, (15.0, 30.0))
    for bad, message in ((["--relation-negatives", "1.5"], "between 0 and 1"), (["--relation-negatives", "half"], "between 0 and 1"),
                         (["--sizes", "96by96"], "sizes look like"), (["--render-scales", "0,1"], "render scales"),
                         (["--render-scales", "big"], "render scales"), (["--ema", "1"], "decay in [0, 1)"),
                         (["--precision", "float16"], "invalid choice"), (["--snapshots", "0"], "minutes like")):  # fmt: skip
        with pytest.raises(SystemExit):
            parser().parse_args(bad)
        assert message in capsys.readouterr().err


def test_scenes_drawn_bigger_or_smaller_are_resized_to_the_training_size():
    """--render-scales: a scene drawn at 2x (or 0.75x) the training size reaches the model at
    the training size, its supervision on the same patch grid, peaking on each object."""
    import numpy as np

    from mmattn.api.grounder import DEFAULT_MODEL
    from mmattn.models.tokenizer import load_tokenizer
    from mmattn.scenes import TRAIN, make_sample
    from mmattn.training.batches import build_batch

    tok = load_tokenizer(DEFAULT_MODEL)
    for rw, rh in ((256, 192), (96, 72)):
        samples = [make_sample(i, rw, rh, TRAIN, lang="en") for i in range(6)]
        b = build_batch(samples, tok, 8, np.random.default_rng(0), image_size=128)
        assert b["pixels"].shape == (6, 3, 96, 128) and b["t2i"].shape[-1] == 16 * 12
        for i, s in enumerate(samples):
            rows = (b["t2i_w"][i] > 0).nonzero().flatten()
            assert len(rows) > 0
            torch.testing.assert_close(b["t2i"][i, rows].sum(-1), torch.ones(len(rows)))
            for t in rows.tolist():  # the target's peak patch holds the centre of some object
                r, c = divmod(int(b["t2i"][i, t].argmax()), 16)
                near = [abs(o.center[0] * 16 / rw - (c + 0.5)) <= 1.5 and abs(o.center[1] * 12 / rh - (r + 0.5)) <= 1.5 for o in s.objects]
                assert any(near), (s.caption.text, t, r, c)


def test_bfloat16_and_weight_average_resume_exactly(tmp_path):
    """--precision bfloat16 --ema: the published (averaged) model and the training weights
    both continue exactly after an interruption; the average is what is saved and returned."""
    from safetensors.torch import load_file

    kw = dict(precision="bfloat16", ema=0.9)
    straight = train(tiny_cfg(tmp_path / "a", **kw))
    train(tiny_cfg(tmp_path / "b", steps=3, **kw))
    resumed = train(tiny_cfg(tmp_path / "b", resume=True, **kw))
    for (n, p), (_, q) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=n)
    last = tmp_path / "a" / "last"
    saved, raw = load_file(last / "model.safetensors"), load_file(last / "raw.safetensors")
    torch.testing.assert_close(saved, {k: v for k, v in straight.state_dict().items()})
    assert any(not torch.equal(saved[k], raw[k]) for k in saved)  # the average is not the last weights
    for k in saved:
        assert torch.isfinite(saved[k]).all(), k


def test_weight_average_follows_the_weights(tmp_path):
    """The average's decay warms up (1 + n) / (10 + n), so after an update it sits between the
    previous average and the weights, nearer the weights early on."""
    from torch.optim.swa_utils import AveragedModel

    from mmattn.training.train import ema_average

    net = torch.nn.Linear(3, 2)
    avg = AveragedModel(net, multi_avg_fn=ema_average(0.99), use_buffers=True)
    avg.update_parameters(net)  # the first update copies
    torch.testing.assert_close(avg.module.weight, net.weight)
    before = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    avg.update_parameters(net)  # n = 1: decay 2/11
    torch.testing.assert_close(avg.module.weight, before + 9 / 11)


def test_snapshots_keep_the_checkpoint_after_given_minutes(tmp_path):
    """--snapshots 15: the step that crosses 15 minutes is checkpointed and kept as
    OUT/at-15min (here a tiny fraction of a minute: step 1, between regular checkpoints)."""
    cfg = tiny_cfg(tmp_path, steps=4, ckpt_every=2, snapshots=(1e-9,))
    train(cfg)
    snap = tmp_path / "at-1e-09min"
    model = GroundingModel.load(snap)
    assert load_train_state(str(snap), model, make_optimizer(model, cfg))["step"] == 1
    assert load_train_state(str(tmp_path / "last"), model, make_optimizer(model, cfg))["step"] == 4
    with pytest.raises(ValueError, match="precision"):
        tiny_cfg(tmp_path, precision="float16")
