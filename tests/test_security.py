"""Nothing from outside runs code, names stay inside results/, and bad input is one line.

Real hostile files are used: pickles whose loading would create a marker file (checked first to
really do so under a plain unpickle), archives with members that leave the tree, old whole-module
model files; downloads come from a real HTTP server on loopback.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import pickle
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from edgeopt.config import check_config
from edgeopt.data.download_policy import check_download
from edgeopt.data.prepare import prepare
from edgeopt.data.sources import read_source
from edgeopt.errors import EdgeoptError
from edgeopt.models import create_model, load_model, save_model
from edgeopt.names import NAME_PATTERN

ROOT = Path(__file__).resolve().parents[1]
CLASSES = "airplane automobile bird cat deer dog frog horse ship truck".split()


class MarkerPayload:
    """Unpickling this creates `path` (what a hostile pickle would do with os.system instead)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):  # noqa: D105
        return (open, (self.path, "w"))


def hostile_pickle(marker: Path, tmp_path: Path) -> bytes:
    """A pickle that creates `marker` when unpickled; proven on a decoy path with a plain `pickle.loads`."""
    decoy = tmp_path / "decoy-marker"
    pickle.loads(pickle.dumps({b"data": MarkerPayload(decoy)}, protocol=2))  # noqa: S301 - the proof
    assert decoy.exists(), "the payload must really run code under a plain unpickle"
    return pickle.dumps({b"data": MarkerPayload(marker), b"labels": [0]}, protocol=2)


# ---------------------------------------------------------------- the CIFAR-10 python archive


def official_pickle(obj: dict) -> bytes:
    """`obj` pickled as the official archive's batches are: protocol 2, arrays via numpy.core.multiarray."""
    blob = pickle.dumps(obj, protocol=2)
    return blob.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def cifar_archive_bytes(per_class: int = 2, members: dict[str, bytes] | None = None) -> bytes:
    """A small cifar-10-python.tar.gz in the official layout: data_batch_1..5, test_batch, batches.meta."""
    rng = np.random.default_rng(0)

    def batch(label: str) -> bytes:
        n = per_class * len(CLASSES)
        labels = [i % len(CLASSES) for i in range(n)]
        return official_pickle({
            b"batch_label": label.encode(),
            b"labels": labels,
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}.png".encode() for i in range(n)],
        })

    files = {f"cifar-10-batches-py/data_batch_{i}": batch(f"training batch {i} of 5") for i in range(1, 6)}
    files["cifar-10-batches-py/test_batch"] = batch("testing batch 1 of 1")
    files["cifar-10-batches-py/batches.meta"] = official_pickle(
        {b"num_cases_per_batch": 10000, b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072}
    )
    files.update(members or {})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


def dataset(**kw) -> dict:
    return check_config({"dataset": kw})["dataset"]


def test_official_layout_is_read_with_the_restricted_unpickler(tmp_path: Path) -> None:
    arc = tmp_path / "cifar-10-python.tar.gz"
    arc.write_bytes(cifar_archive_bytes())
    assert b"numpy.core.multiarray" in official_pickle({b"x": np.zeros(2, np.uint8)})
    data = read_source(dataset(source="cifar10", path=str(arc)))
    assert data.train.x.shape == (100, 32, 32, 3) and data.classes == CLASSES


def test_hostile_pickle_in_cifar_archive_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    arc = tmp_path / "cifar-10-python.tar.gz"
    arc.write_bytes(cifar_archive_bytes(members={
        "cifar-10-batches-py/data_batch_1": hostile_pickle(marker, tmp_path)}))
    with pytest.raises(EdgeoptError) as info:
        prepare(dataset(source="cifar10", path=str(arc)), tmp_path / "out")
    msg = str(info.value)
    assert "data_batch_1: refused" in msg and "io.open" in msg and "\n" not in msg
    assert not marker.exists(), "the archive's pickle ran code"
    assert not (tmp_path / "out").exists()


class LoopbackServer:
    """A real HTTP server on 127.0.0.1 (ephemeral port) serving files from a folder, counting requests."""

    def __init__(self, folder: Path) -> None:
        self.requests = 0
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(folder), **kw)

            def do_GET(self):  # noqa: N802 - http.server's name
                outer.requests += 1
                super().do_GET()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[LoopbackServer, str]]:
    folder = tmp_path / "srv"
    folder.mkdir()
    blob = cifar_archive_bytes()
    (folder / "cifar-10-python.tar.gz").write_bytes(blob)
    server = LoopbackServer(folder)
    try:
        yield server, hashlib.md5(blob).hexdigest()  # noqa: S324 - the official archive publishes md5
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def test_download_checksum_and_prepare_into_the_cache(served, tmp_path: Path, monkeypatch) -> None:
    server, md5 = served
    monkeypatch.chdir(tmp_path)
    url = f"{server.url}/cifar-10-python.tar.gz"
    meta = prepare(dataset(source="cifar10", url=url, checksum=f"md5:{md5}"), tmp_path / "data")
    cached = tmp_path / "results" / "downloads" / "cifar-10-python.tar.gz"
    assert cached.exists() and meta["num_classes"] == 10 and meta["counts"]["test"] == 20
    assert server.requests == 1
    prepare(dataset(source="cifar10", url=url, checksum=f"md5:{md5}"), tmp_path / "data2")
    assert server.requests == 1, "a verified cached archive is reused, not downloaded again"


def test_wrong_checksum_leaves_nothing_behind(served, tmp_path: Path, monkeypatch) -> None:
    server, _ = served
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EdgeoptError, match="checksum mismatch"):
        prepare(dataset(source="cifar10", url=f"{server.url}/cifar-10-python.tar.gz", checksum="md5:" + "0" * 32),
                tmp_path / "data")
    downloads = tmp_path / "results" / "downloads"
    assert server.requests == 1 and not any(downloads.iterdir()), list(downloads.iterdir())
    assert not (tmp_path / "data").exists()


def test_plain_http_without_checksum_is_refused_before_downloading(served, tmp_path: Path, monkeypatch) -> None:
    server, _ = served
    monkeypatch.chdir(tmp_path)
    url = f"{server.url}/cifar-10-python.tar.gz"
    with pytest.raises(EdgeoptError, match=r"^config: dataset.checksum: required for the plain-http dataset.url"):
        check_config({"dataset": {"url": url}})
    cfg = dataset(source="cifar10", url=url, checksum="md5:" + "0" * 32)
    cfg["checksum"] = None  # as a hand-written --params would pass it, past the config check
    with pytest.raises(EdgeoptError, match="dataset.checksum: required"):
        prepare(cfg, tmp_path / "data")
    assert server.requests == 0


def test_url_policy() -> None:
    assert check_download("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", None) == "unchecked"
    assert check_download("http://example.org/a.tgz", "md5:" + "0" * 32) == "checked"
    for url in ("file:///etc/passwd", "ftp://example.org/a.tgz"):
        with pytest.raises(EdgeoptError, match="dataset.url"):
            check_download(url, "md5:" + "0" * 32)


def test_full_config_downloads_the_official_archive_with_its_md5() -> None:
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())["dataset"]
    assert cfg["source"] == "cifar10" and cfg["path"] is None
    assert cfg["url"] == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert cfg["checksum"] == "md5:c58f30108f718f92721af3b95e74349a"


# ---------------------------------------------------------------- image-tree archives


def tar_with(tmp_path: Path, entries: list[tarfile.TarInfo]) -> Path:
    img = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (8, 8), (200, 10, 10)).save(img, format="PNG")
    path = tmp_path / "images.tar"
    with tarfile.open(path, "w") as tar:
        for cls in ("cat", "dog"):
            for i in range(3):
                info = tarfile.TarInfo(f"{cls}/{i}.png")
                info.size = len(img.getvalue())
                tar.addfile(info, io.BytesIO(img.getvalue()))
        for info in entries:
            tar.addfile(info, io.BytesIO(img.getvalue()) if info.isfile() else None)
    return path


def file_entry(name: str) -> tarfile.TarInfo:
    from PIL import Image

    img = io.BytesIO()
    Image.new("RGB", (8, 8)).save(img, format="PNG")
    info = tarfile.TarInfo(name)
    info.size = len(img.getvalue())
    return info


def link_entry(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(
    ("entry", "shown"),
    [
        (file_entry("../evil/0.png"), "../evil/0.png: refused: the member's path leaves"),
        (file_entry("/abs/0.png"), "/abs/0.png: refused: the member's path leaves"),
        (file_entry("cat/../../x.png"), "cat/../../x.png: refused"),
        (link_entry("cat/link.png", "../../../etc/passwd"), "cat/link.png: refused: a link to '../../../etc/passwd'"),
        (link_entry("cat/abs.png", "/etc/passwd"), "cat/abs.png: refused: a link to '/etc/passwd'"),
        (link_entry("cat/hard.png", "../outside.png", tarfile.LNKTYPE), "cat/hard.png: refused: a link"),
    ],
)
def test_tar_members_leaving_the_tree_are_refused(tmp_path: Path, entry: tarfile.TarInfo, shown: str) -> None:
    path = tar_with(tmp_path, [entry])
    with pytest.raises(EdgeoptError) as info:
        read_source(dataset(source="tar", path=str(path)))
    assert shown in str(info.value) and "\n" not in str(info.value)


def test_links_inside_the_tree_are_not_refused(tmp_path: Path) -> None:
    path = tar_with(tmp_path, [link_entry("dog/same.png", "../cat/0.png")])
    data = read_source(dataset(source="tar", path=str(path)))
    assert data.classes == ["cat", "dog"]


def test_one_class_data_set_is_refused_at_prepare(tmp_path: Path) -> None:
    from PIL import Image

    for i in range(4):
        (tmp_path / "imgs" / "cat").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (i, 0, 0)).save(tmp_path / "imgs" / "cat" / f"{i}.png")
    with pytest.raises(EdgeoptError, match=r"^dataset.path: .*imgs holds 1 class \(cat\).*at least 2"):
        prepare(dataset(source="folder", path=str(tmp_path / "imgs")), tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- model files and checkpoints


def test_old_whole_module_model_file_is_refused_with_rerun_hint(tmp_path: Path) -> None:
    old = tmp_path / "model.pt"
    torch.save({"model": create_model("resnet20"), "meta": {"arch": "resnet20"}}, old)
    with pytest.raises(EdgeoptError) as info:
        load_model(old)
    msg = str(info.value)
    assert msg.startswith(f"{old}: refused") and "CifarResNet" in msg and "re-run the stage" in msg
    assert "\n" not in msg


def test_hostile_model_file_and_checkpoint_run_nothing(tmp_path: Path) -> None:
    from edgeopt.train.loop import TrainSettings, fit

    marker = tmp_path / "pwned"
    evil = tmp_path / "model.pt"
    torch.save({"model": MarkerPayload(marker), "meta": {"arch": "resnet20"}}, evil)
    with pytest.raises(EdgeoptError, match=r"model.pt: refused: this model file holds Python objects"):
        load_model(evil)
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"fingerprint": MarkerPayload(marker)}, ckpt)
    with pytest.raises(EdgeoptError, match=r"ckpt.pt: refused: this training checkpoint"):
        fit(create_model("resnet20"), _FakeSplit(), None, TrainSettings.from_config({"epochs": 1, "device": "cpu"}),
            ckpt)
    assert not marker.exists()


class _FakeSplit:
    """Never iterated: the checkpoint is refused before training starts."""

    device = torch.device("cpu")

    def __len__(self) -> int:
        return 64


def pruned_models() -> Iterator[tuple[str, nn.Module]]:
    """Real torch-pruning (DepGraph) cuts, and zero-padding of residual blocks on top."""
    import torch_pruning as tp

    from edgeopt.prune.zeropad import prune_zeropad, residual_blocks

    for arch in ("resnet20", "mobilenetv2"):
        model = create_model(arch).eval()
        ignored = [m for m in model.modules() if isinstance(m, nn.Linear)]
        tp.pruner.BasePruner(model, torch.randn(1, 3, 32, 32), importance=tp.importance.GroupMagnitudeImportance(p=2),
                             pruning_ratio=0.4, ignored_layers=ignored).step()
        prune_zeropad(model, dict.fromkeys(residual_blocks(model), 0.5), 8)
        yield arch, model.eval()


def test_pruned_and_zeropadded_models_round_trip_weights_only(tmp_path: Path) -> None:
    x = torch.randn(2, 3, 32, 32)
    for arch, model in pruned_models():
        save_model(tmp_path / f"{arch}.pt", model, {"arch": arch, "num_classes": 10, "in_channels": 3})
        torch.load(tmp_path / f"{arch}.pt", weights_only=True)  # plain data and tensors only
        loaded, meta = load_model(tmp_path / f"{arch}.pt")
        assert meta["arch"] == arch
        assert [(n, p.shape) for n, p in loaded.state_dict().items()] == [
            (n, p.shape) for n, p in model.state_dict().items()]
        with torch.no_grad():
            assert torch.allclose(loaded(x), model(x), atol=1e-5), arch
    width = create_model("resnet20", width_mult=0.5).eval()
    save_model(tmp_path / "w.pt", width, {"arch": "resnet20", "width_mult": 0.5})
    assert load_model(tmp_path / "w.pt")[0].conv1.out_channels == 8


def tamper(path: Path, edit) -> None:
    blob = torch.load(path, weights_only=True)
    edit(blob)
    torch.save(blob, path)


def test_load_rebuilds_only_through_the_registry(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_model(path, create_model("resnet20"), {"arch": "resnet20"})
    tamper(path, lambda b: b["meta"].update(arch="os:system"))
    with pytest.raises(EdgeoptError, match=r"m.pt: cannot rebuild the model \(model: unknown model 'os:system'"):
        load_model(path)
    save_model(path, create_model("resnet20"), {"arch": "resnet20"})
    tamper(path, lambda b: b["modules"]["layer1.0.bn2"].update(type="evil_module_xyz.Thing"))
    with pytest.raises(EdgeoptError, match=r"module 'layer1.0.bn2' is a evil_module_xyz.Thing, which create_model"):
        load_model(path)
    assert "evil_module_xyz" not in sys.modules


# ---------------------------------------------------------------- config checks


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"dataset": {"name": ".."}}, "config: dataset.name: '..' is not a usable name"),
        ({"dataset": {"name": "."}}, "config: dataset.name: '.' is not a usable name"),
        ({"devices": {"..": {}}}, "config: devices: '..' is not a usable name"),
        ({"retrain": {"devices": [".."]}}, "config: retrain.devices.0: '..' is not a usable name"),
        ({"retrain": {"variant": ".."}}, "config: retrain.variant: '..'"),
        ({"retrain": {"settings": [{"name": "."}]}}, "config: retrain.settings.0.name: '.'"),
        ({"quantize": {"qat": {"variants": [".."]}}}, "config: quantize.qat.variants.0: '..'"),
        ({"quantize": {"qat": {"variants": ["baseline", "prunned"]}}},
         "config: quantize.qat.variants: 'prunned' is not a variant this config builds (baseline, pruned, zeropad, "
         "sparse, width<mult>)"),
        ({"prune": {"target": {"kind": "latency", "device": "jetsn"}}},
         "config: prune.target.device: 'jetsn' is not an enabled device (devices: local)"),
        ({"prune": {"target": {"kind": "latency", "format": "ort-fp33"}}},
         "config: prune.target.format: 'ort-fp33' is not a format benchmarked on local (its runtimes allow: ort-fp32"),
        ({"devices": {"local": {"python": "/opt/my python/bin/python"}}},
         "config: devices.local.python: '/opt/my python/bin/python' must be a path"),
        ({"devices": {"b": {"host": "h", "python": "python3;reboot"}}}, "config: devices.b.python: 'python3;reboot'"),
        ({"retrain": {"device_python": {"b": {"pytorch": "a b"}}}}, "config: retrain.device_python.b.pytorch: 'a b'"),
        ({"dataset": {"url": "http://example.org/c.tgz"}}, "config: dataset.checksum: required for the plain-http"),
    ],
)
def test_config_refuses_with_one_line(bad: dict, expected: str) -> None:
    with pytest.raises(EdgeoptError) as info:
        check_config(bad)
    assert str(info.value).startswith(expected) and "\n" not in str(info.value), str(info.value)


def test_names_pattern_is_the_schemas() -> None:
    from edgeopt.config import SCHEMA_PATH

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    assert schema["$defs"]["name"]["pattern"] == NAME_PATTERN
    check_config({"dataset": {"name": "cifar10.v2"}, "quantize": {"qat": {"variants": ["baseline", "width0.5"]}}})


def test_zero_training_epochs_warn_that_the_model_is_untrained(capsys) -> None:
    check_config({"train": {"epochs": 0}})
    err = capsys.readouterr().err
    assert "train.epochs: 0" in err and "untrained" in err
    check_config({"train": {"epochs": 1}})
    assert capsys.readouterr().err == ""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"prune": {"variants": ["pruned"], "target": {"kind": "latency", "format": "ort-fp33"}}},
         "edgeopt: config: prune.target.format: 'ort-fp33' is not a format benchmarked on local"),
        ({"dataset": {"name": ".."}}, "edgeopt: config: dataset.name: '..' is not a usable name"),
    ],
)
def test_snakemake_dry_run_stops_at_the_config_check(tmp_path: Path, override: dict, expected: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(override))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "-n",
         "--configfile", str(ROOT / "config" / "tiny.yaml"), str(cfg)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert expected in out and "Traceback" not in out and "KeyError" not in out, out[-3000:]
    assert not (tmp_path / "results").exists()
