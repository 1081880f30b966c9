"""Training loop: augmentation, determinism, checkpoint resume, metrics with provenance."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edgeopt.data import load_meta, load_split
from edgeopt.errors import EdgeoptError
from edgeopt.models import create_model, load_model
from edgeopt.train import DeviceData, TrainSettings, evaluate, fit
from edgeopt.train.device_data import random_crop_flip
from edgeopt.train.loop import recalibrate_bn


def test_random_crop_is_a_shifted_window_and_flip_mirrors() -> None:
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.uint8).view(2, 3, 6, 6)
    gen = torch.Generator().manual_seed(0)
    out = random_crop_flip(x, pad=2, flip=False, generator=gen)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for b in range(2):
        windows = [padded[b, :, i : i + 6, j : j + 6] for i in range(5) for j in range(5)]
        assert any(torch.equal(out[b], w) for w in windows)
    flipped = random_crop_flip(x, pad=0, flip=True, generator=torch.Generator().manual_seed(3))
    for b in range(2):
        assert torch.equal(flipped[b], x[b]) or torch.equal(flipped[b], x[b].flip(2))


def test_settings_reject_bad_precision() -> None:
    with pytest.raises(EdgeoptError, match="train.precision"):
        TrainSettings.from_config({"precision": "int4"})


def test_settings_reject_bad_progress() -> None:
    with pytest.raises(EdgeoptError, match="train.progress: must be true, false or epochs, got 'bar'"):
        TrainSettings.from_config({"progress": "bar"})
    with pytest.raises(EdgeoptError, match="got 1"):  # 1 == True, but the schema and this check want a YAML bool
        TrainSettings.from_config({"progress": 1})


def _data(tiny_data: Path):
    meta = load_meta(tiny_data)
    dev = torch.device("cpu")
    return (
        DeviceData(load_split(tiny_data, "train"), meta, dev),
        DeviceData(load_split(tiny_data, "val"), meta, dev),
    )


def test_resume_after_interruption_matches_uninterrupted_run(
    tiny_data: Path, tmp_path: Path, monkeypatch
) -> None:
    train, val = _data(tiny_data)
    settings = TrainSettings.from_config(
        {
            "epochs": 2,
            "batch_size": 90,
            "lr": 0.05,
            "device": "cpu",
            "progress": False,
            "channels_last": False,
        }
    )

    torch.manual_seed(0)
    reference = create_model("resnet20")
    fit(reference, train, val, settings)

    torch.manual_seed(0)
    model = create_model("resnet20")
    ckpt = tmp_path / "ckpt.pt"
    monkeypatch.setenv("EDGEOPT_STOP_AFTER_EPOCH", "1")
    with pytest.raises(KeyboardInterrupt):
        fit(model, train, val, settings, checkpoint=ckpt)
    monkeypatch.delenv("EDGEOPT_STOP_AFTER_EPOCH")
    assert ckpt.exists()

    torch.manual_seed(123)  # a fresh process: different init, everything must come from the checkpoint
    resumed = create_model("resnet20")
    result = fit(resumed, train, val, settings, checkpoint=ckpt)
    assert result.resumed_from_epoch == 1 and len(result.history) == 2
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)


def test_progress_epochs_prints_one_line_per_epoch_and_no_bar(tiny_data: Path, capsys) -> None:
    """`progress: epochs` is for runs logged to a file: a summary line per epoch on stdout, no bar on stderr."""
    train, val = _data(tiny_data)
    cfg = {"epochs": 2, "batch_size": 90, "device": "cpu", "channels_last": False}
    fit(create_model("resnet20"), train, val, TrainSettings.from_config({**cfg, "progress": "epochs"}), desc="base")
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["base epoch 1/2", "base epoch 2/2"]
    assert all("val_accuracy=" in line for line in lines) and "it/s" not in err
    fit(create_model("resnet20"), train, val, TrainSettings.from_config({**cfg, "progress": True}), desc="base")
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2 and "it/s" in err  # the control: progress true draws the bar too


def test_checkpoint_with_other_settings_is_not_resumed(tiny_data: Path, tmp_path: Path) -> None:
    train, val = _data(tiny_data)
    ckpt = tmp_path / "ckpt.pt"
    s1 = TrainSettings.from_config({"epochs": 1, "batch_size": 90, "device": "cpu", "progress": False})
    fit(create_model("resnet20"), train, val, s1, checkpoint=ckpt)
    s2 = TrainSettings.from_config(
        {"epochs": 1, "batch_size": 90, "lr": 0.01, "device": "cpu", "progress": False}
    )
    assert fit(create_model("resnet20"), train, val, s2, checkpoint=ckpt).resumed_from_epoch == 0


def test_baseline_checkpoint_is_not_resumed_for_another_width_or_data(tiny_data: Path, tmp_path: Path) -> None:
    """A finished checkpoint stays beside the model; retraining after the model options or the data cache
    changed must train afresh, not resume it (same settings, so only the inputs tell them apart)."""
    import shutil

    from edgeopt.train.baseline import train_baseline

    cfg = {"epochs": 1, "batch_size": 90, "device": "cpu", "progress": False, "channels_last": False}
    ckpt, out = tmp_path / "checkpoint.pt", tmp_path / "m"
    first = train_baseline("resnet20", tiny_data, out / "model.pt", out / "metrics.json", cfg, checkpoint=ckpt)
    assert first["resumed_from_epoch"] == 0
    # a finished run removes its checkpoint (a forced rerun retrains from scratch), so nothing resumes
    assert not ckpt.exists()
    same = train_baseline("resnet20", tiny_data, out / "model.pt", out / "metrics.json", cfg, checkpoint=ckpt)
    assert same["resumed_from_epoch"] == 0
    thin = train_baseline("resnet20", tiny_data, out / "model.pt", out / "metrics.json", cfg, {"width_mult": 0.5},
                          checkpoint=ckpt)
    assert thin["resumed_from_epoch"] == 0
    data2 = tmp_path / "data2"
    shutil.copytree(tiny_data, data2)
    meta = json.loads((data2 / "meta.json").read_text())
    meta["provenance"] = {"created": "another preparation"}
    (data2 / "meta.json").write_text(json.dumps(meta))
    other = train_baseline("resnet20", data2, out / "model.pt", out / "metrics.json", cfg, {"width_mult": 0.5},
                           checkpoint=ckpt)
    assert other["resumed_from_epoch"] == 0


def test_recalibrate_bn_averages_the_statistics_of_the_images(tiny_data: Path) -> None:
    """Adaptive BN: running statistics become those of the first N images; momentum and eval mode come back."""
    train, _ = _data(tiny_data)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8))
    stale = model[1].running_mean.clone()
    recalibrate_bn(model, train, 100, batch_size=50, crop_padding=0, flip=False)
    with torch.no_grad():
        feats = model[0](next(train.batches(100))[0])
    assert torch.allclose(model[1].running_mean, feats.mean((0, 2, 3)), atol=1e-5)
    assert not torch.allclose(model[1].running_mean, stale)
    assert int(model[1].num_batches_tracked) == 2 and model[1].momentum == 0.1 and not model.training
    recalibrate_bn(model, train, 100, batch_size=100, crop_padding=0, flip=False)  # one batch: exactly its variance
    assert torch.allclose(model[1].running_var, feats.var((0, 2, 3), unbiased=True), rtol=1e-4)
    # by default the images are augmented like the training's, with a fixed seed: repeatable, other statistics
    recalibrate_bn(model, train, 100)
    augmented = model[1].running_mean.clone()
    recalibrate_bn(model, train, 100)
    assert torch.equal(model[1].running_mean, augmented)
    assert not torch.allclose(augmented, feats.mean((0, 2, 3)), atol=1e-4)


def test_training_learns_on_real_images(tiny_data: Path) -> None:
    train, val = _data(tiny_data)
    torch.manual_seed(0)
    model = create_model("resnet20")
    before = evaluate(model, train, 256)["loss"]
    settings = TrainSettings.from_config(
        {
            "epochs": 3,
            "batch_size": 60,
            "lr": 0.05,
            "device": "cpu",
            "progress": False,
            "crop_padding": 0,
            "flip": False,
        }
    )
    fit(model, train, None, settings)
    assert evaluate(model, train, 256)["loss"] < before


def test_train_command_writes_model_and_metrics(tiny_data: Path, tmp_path: Path) -> None:
    params = json.dumps({"epochs": 1, "batch_size": 64, "device": "cpu", "progress": True})
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeopt",
            "train",
            "--model",
            "mobilenetv2",
            "--data",
            str(tiny_data),
            "--params",
            params,
            "--model-params",
            '{"width_mult": 0.5}',
            "--out-model",
            str(tmp_path / "m.pt"),
            "--out-metrics",
            str(tmp_path / "metrics.json"),
            "--threads",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["macs"] > 0 and metrics["params"] > 0
    prov = metrics["provenance"]
    assert prov["config"]["train"]["epochs"] == 1 and prov["packages"]["torch"] and prov["device"]["hostname"]
    model, meta = load_model(tmp_path / "m.pt")
    assert meta["width_mult"] == 0.5 and meta["num_classes"] == 10
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_train_command_unknown_model_is_one_line(tiny_data: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeopt",
            "train",
            "--model",
            "resnet99",
            "--data",
            str(tiny_data),
            "--params",
            "{}",
            "--out-model",
            str(tmp_path / "m.pt"),
            "--out-metrics",
            str(tmp_path / "x.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "unknown model 'resnet99'" in proc.stderr


def test_bench_train_prints_side_by_side_ratio() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeopt",
            "bench-train",
            "--model",
            "resnet20",
            "--images",
            "256",
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.strip().startswith("edgeopt loop") for line in lines)
    assert any(line.strip().startswith("plain loop") for line in lines)
    ratio = [line for line in lines if "ratio" in line][0]
    assert float(ratio.split(":")[1].split("x")[0]) > 0


def test_distillation_makes_the_student_follow_its_teacher(tiny_data: Path) -> None:
    """alpha=1 trains on the teacher's outputs only: the student must agree with a teacher whose answers
    have nothing to do with the labels, far more than a student trained on the labels does."""
    from edgeopt.train.distill import Distill

    train, _ = _data(tiny_data)
    torch.manual_seed(1)
    teacher = create_model("resnet20").eval()
    with torch.no_grad():
        teacher.fc.weight.mul_(50)  # a confident, label-blind teacher
    with torch.no_grad():
        t_pred = torch.cat([teacher(x).argmax(1) for x, _ in train.batches(256)])
    settings = TrainSettings.from_config(
        {"epochs": 4, "batch_size": 60, "lr": 0.05, "device": "cpu", "progress": False, "crop_padding": 0, "flip": False}
    )

    def agreement(distill: Distill) -> float:
        torch.manual_seed(0)
        student = create_model("resnet20")
        fit(student, train, None, settings, teacher=teacher, distill=distill)
        with torch.no_grad():
            s_pred = torch.cat([student(x).argmax(1) for x, _ in train.batches(256)])
        return float((s_pred == t_pred).float().mean())

    assert len(set(t_pred.tolist())) > 1
    taught, labels_only = agreement(Distill(1.0, 1.0)), agreement(Distill(0.0))
    assert taught > 0.6 and taught > labels_only + 0.2, (taught, labels_only)


def test_distill_settings_are_checked() -> None:
    from edgeopt.train.distill import Distill

    assert not Distill.from_config(None, "r").enabled
    assert Distill.from_config({"alpha": 0.8}, "r") == Distill(0.8, 4.0)
    for bad, key in (({"alpha": 2}, "distill.alpha"), ({"temperature": 0}, "distill.temperature"),
                     ({"beta": 1}, "distill.beta"), ([0.5], "distill")):
        with pytest.raises(EdgeoptError, match=key.replace(".", r"\.")):
            Distill.from_config(bad, "recipe.yaml: finetune")
    s = torch.randn(4, 10)
    hard = torch.tensor(1.5)
    assert float(Distill(1.0, 3.0).loss(hard, s, s)) == pytest.approx(0.0, abs=1e-6)  # teacher matched: no loss
    assert float(Distill(0.0).loss(hard, s, -s)) == pytest.approx(1.5)  # alpha 0: the hard loss alone
