"""Dataset sources (CIFAR-10 python archive, image folders, tars) and the deterministic split."""

from __future__ import annotations

import hashlib
import http.server
import io
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeopt.config import check_config
from edgeopt.data import load_meta, load_split
from edgeopt.data.prepare import prepare
from edgeopt.data.sources import read_source
from edgeopt.errors import EdgeoptError


def dataset_cfg(**kw) -> dict:
    return check_config({"dataset": kw})["dataset"]


def write_image_tree(
    root: Path,
    splits=("train", "test"),
    classes=("cat", "dog", "owl"),
    per_class=12,
    mode="RGB",
    sizes=((40, 30), (64, 64), (20, 28)),
) -> None:
    rng = np.random.default_rng(0)
    for split in splits:
        for ci, cls in enumerate(classes):
            d = root / split / cls if split else root / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                w, h = sizes[i % len(sizes)]
                shape = (h, w, 3) if mode == "RGB" else (h, w)
                arr = rng.integers(0, 255, shape, dtype=np.uint8)
                arr[...] = arr // 4 + ci * 60  # class-dependent brightness
                ext = ".png" if i % 2 else ".jpg"
                Image.fromarray(arr, mode).save(d / f"{i:03d}{ext}")


def test_folder_with_splits_any_size_rgb(tmp_path: Path) -> None:
    write_image_tree(tmp_path / "imgs")
    data = read_source(dataset_cfg(source="folder", path=str(tmp_path / "imgs"), image_size=24))
    assert data.classes == ["cat", "dog", "owl"]
    assert data.train.x.shape == (36, 24, 24, 3) and data.train.x.dtype == np.uint8
    assert data.test is not None and len(data.test) == 36
    assert set(data.train.y.tolist()) == {0, 1, 2}


def test_folder_grayscale_to_one_channel_and_rgb(tmp_path: Path) -> None:
    write_image_tree(tmp_path / "g", splits=("",), mode="L")
    gray = read_source(dataset_cfg(source="folder", path=str(tmp_path / "g"), channels=1, image_size=16))
    assert gray.train.x.shape == (36, 16, 16, 1) and gray.test is None
    rgb = read_source(dataset_cfg(source="folder", path=str(tmp_path / "g"), channels=3, image_size=16))
    assert rgb.train.x.shape == (36, 16, 16, 3)


def test_folder_without_test_split_gets_one(tmp_path: Path) -> None:
    write_image_tree(tmp_path / "flat", splits=("",), per_class=20)
    out = tmp_path / "cache"
    meta = prepare(
        dataset_cfg(
            name="flat",
            source="folder",
            path=str(tmp_path / "flat"),
            test_fraction=0.25,
            val_fraction=0.2,
            calib_size=8,
        ),
        out,
    )
    assert meta["counts"]["test"] == 15  # 5 per class
    assert meta["counts"]["train"] + meta["counts"]["val"] == 45


def test_tar_gz_with_top_folder(tmp_path: Path) -> None:
    write_image_tree(tmp_path / "proj" / "data")
    tar_path = tmp_path / "data.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(tmp_path / "proj" / "data", arcname="mushrooms")
    data = read_source(dataset_cfg(source="tar", path=str(tar_path)))
    assert data.classes == ["cat", "dog", "owl"] and len(data.train) == 36 and len(data.test) == 36


def test_corrupt_tar_is_one_clear_error(tmp_path: Path) -> None:
    write_image_tree(tmp_path / "d")
    tar_path = tmp_path / "d.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(tmp_path / "d", arcname="d")
    blob = tar_path.read_bytes()
    tar_path.write_bytes(blob[: len(blob) // 2])  # truncated download
    with pytest.raises(EdgeoptError, match="d.tar.gz: corrupt"):
        read_source(dataset_cfg(source="tar", path=str(tar_path)))


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    write_image_tree(tmp_path / "d", per_class=2)
    (tmp_path / "d" / "train" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(EdgeoptError, match="broken.jpg: not a readable image"):
        read_source(dataset_cfg(source="folder", path=str(tmp_path / "d")))


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(EdgeoptError, match="dataset.path"):
        read_source(dataset_cfg(source="tar", path=str(tmp_path / "nope.tar")))
    with pytest.raises(EdgeoptError, match="not a directory"):
        read_source(dataset_cfg(source="folder", path=str(tmp_path / "nope")))


# ---------------------------------------------------------------- CIFAR-10 python archive format


def make_cifar_archive(path: Path, per_batch: int = 20) -> None:
    """A small archive in the official cifar-10-python layout (pickled dicts of byte keys)."""
    rng = np.random.default_rng(1)

    def batch(n: int) -> bytes:
        return pickle.dumps(
            {
                b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
                b"labels": [int(i % 10) for i in range(n)],
            }
        )

    members = {f"cifar-10-batches-py/data_batch_{i}": batch(per_batch) for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = batch(per_batch)
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps(
        {
            b"label_names": [
                n.encode() for n in "airplane automobile bird cat deer dog frog horse ship truck".split()
            ]
        }
    )
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def test_cifar10_archive_local_copy_with_checksum(tmp_path: Path) -> None:
    arc = tmp_path / "cifar-10-python.tar.gz"
    make_cifar_archive(arc)
    digest = hashlib.sha256(arc.read_bytes()).hexdigest()
    data = read_source(dataset_cfg(source="cifar10", path=str(arc), checksum=f"sha256:{digest}"))
    assert data.train.x.shape == (100, 32, 32, 3) and len(data.test) == 20
    assert data.classes[0] == "airplane"
    with pytest.raises(EdgeoptError, match="checksum mismatch"):
        read_source(dataset_cfg(source="cifar10", path=str(arc), checksum="sha256:" + "0" * 64))


def test_cifar10_download_over_http_with_checksum(tmp_path: Path) -> None:
    served = tmp_path / "srv"
    served.mkdir()
    make_cifar_archive(served / "cifar-10-python.tar.gz")
    md5 = hashlib.md5(  # noqa: S324 - the official archive publishes md5
        (served / "cifar-10-python.tar.gz").read_bytes()
    ).hexdigest()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(served), **kw)

        def log_message(self, *a):  # noqa: D102
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/cifar-10-python.tar.gz"
        dest = tmp_path / "dl" / "cifar-10-python.tar.gz"
        data = read_source(dataset_cfg(source="cifar10", path=str(dest), url=url, checksum=f"md5:{md5}"))
        assert dest.exists() and len(data.train) == 100
        bad_dest = tmp_path / "dl2" / "c.tar.gz"
        with pytest.raises(EdgeoptError, match="checksum mismatch"):
            read_source(
                dataset_cfg(source="cifar10", path=str(bad_dest), url=url, checksum="md5:" + "0" * 32)
            )
        assert not bad_dest.exists(), "a failed download must not leave a file behind"
        with pytest.raises(EdgeoptError, match="cannot download"):
            read_source(dataset_cfg(source="cifar10", path=str(tmp_path / "x.tgz"), url=url + ".missing",
                                    checksum=f"md5:{md5}"))
    finally:
        server.shutdown()


def test_corrupt_cifar_archive(tmp_path: Path) -> None:
    arc = tmp_path / "c.tar.gz"
    arc.write_bytes(b"\x1f\x8b\x08\x00garbage-not-gzip")
    with pytest.raises(EdgeoptError, match="c.tar.gz: corrupt CIFAR-10 archive"):
        read_source(dataset_cfg(source="cifar10", path=str(arc)))


# ---------------------------------------------------------------- the prepared cache


def test_prepare_is_deterministic_and_complete(tmp_path: Path, cifar_tar: Path) -> None:
    cfg = dataset_cfg(
        name="t",
        source="tar",
        path=str(cifar_tar),
        max_train_per_class=20,
        max_test_per_class=5,
        calib_size=16,
    )
    prepare(cfg, tmp_path / "a")
    prepare(cfg, tmp_path / "b")
    for split in ("train", "val", "test", "calib"):
        a, b = load_split(tmp_path / "a", split), load_split(tmp_path / "b", split)
        assert a.x.dtype == np.uint8 and a.y.dtype == np.int64
        assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    meta = load_meta(tmp_path / "a")
    assert meta["counts"] == {"train": 180, "val": 20, "test": 50, "calib": 16}
    assert meta["classes"][0] == "airplane" and meta["num_classes"] == 10
    assert len(meta["mean"]) == 3 and "git_commit" in meta["provenance"]
    other = prepare(dict(cfg, seed=1), tmp_path / "c")
    assert other["counts"] == meta["counts"]
    assert not np.array_equal(load_split(tmp_path / "c", "val").x, load_split(tmp_path / "a", "val").x)


def test_splits_are_stored_shuffled_so_a_prefix_samples_every_class(tmp_path: Path, cifar_tar: Path) -> None:
    """val_limit / test_images / calibration prefixes take the first N images: they must not be one class."""
    cfg = dataset_cfg(
        name="t", source="tar", path=str(cifar_tar), max_train_per_class=20, max_test_per_class=5
    )
    prepare(cfg, tmp_path / "d")
    for split, n in (("train", 40), ("val", 10), ("test", 20), ("calib", 40)):
        y = load_split(tmp_path / "d", split).y
        assert len(np.unique(y[:n])) >= 5, (split, y[:n])
        assert not np.all(np.diff(y) >= 0), f"{split} is stored sorted by class"


def test_channel_stats_are_exact_on_large_arrays() -> None:
    from edgeopt.data.prepare import channel_stats

    rng = np.random.default_rng(0)
    x = np.empty((6000, 32, 32, 3), dtype=np.uint8)  # 18M values per channel: float32 sums would stall
    for c, (lo, hi) in enumerate([(0, 100), (100, 200), (50, 256)]):
        x[..., c] = rng.integers(lo, hi, x.shape[:3], dtype=np.uint8)
    mean, std = channel_stats(x)
    expected = x.reshape(-1, 3).astype(np.float64)
    assert np.allclose(mean, expected.mean(0) / 255, atol=1e-6)
    assert np.allclose(std, expected.std(0) / 255, atol=1e-6)
