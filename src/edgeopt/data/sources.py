"""Readers for the supported dataset sources, registered by name.

* `cifar10`: the official python archive (`cifar-10-python.tar.gz`), read from a local
  copy or downloaded with a checksum check.
* `folder`: an image tree `<split>/<class>/*` (or `<class>/*` without splits), any size,
  RGB or grayscale; images are resized and converted to the configured channel count.
* `tar`: a `.tar` / `.tar.gz` holding such a tree (the CIFAR-10 JPEG tarball is one).
"""

from __future__ import annotations

import codecs
import hashlib
import io
import pickle
import posixpath
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgeopt.atomic import atomic_path
from edgeopt.config import CHECKOUT
from edgeopt.data.arrays import DatasetArrays, Split
from edgeopt.data.download_policy import DOWNLOAD_DIR, check_download
from edgeopt.errors import EdgeoptError

try:
    from numpy._core.multiarray import _reconstruct as np_reconstruct
    from numpy._core.numeric import _frombuffer as np_frombuffer
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct as np_reconstruct  # type: ignore[no-redef]
    from numpy.core.numeric import _frombuffer as np_frombuffer  # type: ignore[no-redef]

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
SPLIT_NAMES = {"train": "train", "training": "train", "test": "test", "testing": "test"}

SourceReader = Callable[[dict[str, Any]], DatasetArrays]
SOURCES: dict[str, SourceReader] = {}


def register_source(name: str) -> Callable[[SourceReader], SourceReader]:
    """Register a dataset source reader under `name` (the `dataset.source` config value)."""

    def deco(fn: SourceReader) -> SourceReader:
        SOURCES[name] = fn
        return fn

    return deco


def read_source(cfg: dict[str, Any]) -> DatasetArrays:
    """Read the dataset described by the `dataset` config section."""
    source = cfg["source"]
    if source not in SOURCES:
        raise EdgeoptError(f"dataset.source: unknown source {source!r} (known: {', '.join(sorted(SOURCES))})")
    return SOURCES[source](cfg)


# ---------------------------------------------------------------- checksums and download


def file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_checksum(path: Path, checksum: str | None) -> None:
    """Check `path` against `algo:hexdigest` (md5 or sha256); raise naming the file on mismatch."""
    if not checksum:
        return
    algo, _, expected = checksum.partition(":")
    if not expected:
        raise EdgeoptError(f"dataset.checksum: expected 'sha256:<hex>' or 'md5:<hex>', got {checksum!r}")
    if algo not in ("md5", "sha1", "sha256"):
        raise EdgeoptError(f"dataset.checksum: unsupported algorithm {algo!r} (use md5 or sha256)")
    actual = file_digest(path, algo)
    if actual != expected.lower():
        raise EdgeoptError(
            f"{path}: {algo} checksum mismatch (expected {expected}, got {actual}): a corrupt download, or "
            "not the archive dataset.checksum pins (set it for this file, or null)"
        )


def fetch(url: str, dest: Path, checksum: str | None, timeout: float = 60.0) -> Path:
    """Download `url` to `dest` atomically and verify it; an existing verified file is reused."""
    if dest.exists():
        verify_checksum(dest, checksum)
        return dest
    try:
        with atomic_path(dest) as tmp:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    out.write(chunk)
            verify_checksum(tmp, checksum)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise EdgeoptError(
            f"dataset.url: cannot download {url} ({exc}); set dataset.path to a local copy"
        ) from None
    return dest


def local_path(value: str) -> Path:
    """A configured `dataset.path`: as given when it exists (relative to the working directory),
    else relative to the checkout, so a preset's path to a file shipped in the repository
    (config/tiny.yaml's `data/cifar10-sample.tar.gz`) works from any working directory."""
    path = Path(value).expanduser()
    if path.is_absolute() or path.exists() or not (CHECKOUT / path).exists():
        return path
    return CHECKOUT / path


def _archive_path(cfg: dict[str, Any]) -> Path:
    """The local archive: `dataset.path` if it exists, else a verified download of `dataset.url`
    into the download cache (refused when the URL policy of `check_download` says so)."""
    path = local_path(cfg["path"]) if cfg.get("path") else None
    if path is not None and path.exists():
        verify_checksum(path, cfg.get("checksum"))
        return path
    if cfg.get("url"):
        if check_download(cfg["url"], cfg.get("checksum")) == "unchecked":
            print(f"warning: dataset.url: {cfg['url']} is used without dataset.checksum: its content is "
                  "trusted as sent (set dataset.checksum to pin it)", file=sys.stderr)
        dest = path or Path(cfg.get("download_dir", DOWNLOAD_DIR)) / Path(urllib.parse.urlsplit(cfg["url"]).path).name
        return fetch(cfg["url"], dest, cfg.get("checksum"))
    where = "" if path is None or path.is_absolute() else f" (in {Path.cwd()} or {CHECKOUT})"
    raise EdgeoptError(f"dataset.path: {path} does not exist{where} and no dataset.url is set")


# ---------------------------------------------------------------- CIFAR-10 python archive


#: the only globals a CIFAR-10 batch pickle refers to: numpy arrays (three spellings across numpy and
#: pickle protocol versions) and the codec protocol 2 uses for bytes. Anything else is refused unread.
CIFAR_PICKLE_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): np_reconstruct,
    ("numpy.core.numeric", "_frombuffer"): np_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): np_frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a pickle naming any other global (the way a
    hostile pickle runs code) stops with `pickle.UnpicklingError` before anything is called."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return CIFAR_PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refers to {module}.{name}") from None


def _load_cifar_member(tar: tarfile.TarFile, member: tarfile.TarInfo, origin: str) -> dict[bytes, Any]:
    """One pickled member of the archive, read with `_CifarUnpickler`; raises naming the member."""
    fh = tar.extractfile(member)
    if fh is None:
        raise EdgeoptError(f"{origin}: not a regular file in a CIFAR-10 archive")
    try:
        obj = _CifarUnpickler(fh, encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise EdgeoptError(
            f"{origin}: refused: the pickle {exc}, which a CIFAR-10 batch never holds (only numpy arrays, "
            "lists and bytes); nothing in it was run"
        ) from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise EdgeoptError(f"{origin}: not a CIFAR-10 batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise EdgeoptError(f"{origin}: not a CIFAR-10 batch (a {type(obj).__name__}, not a dict)")
    return obj


def _cifar_rows(batch: dict[bytes, Any], origin: str) -> tuple[np.ndarray, np.ndarray]:
    """(N x 3072 uint8 rows, N int64 labels) of one batch, checked."""
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise EdgeoptError(f"{origin}: not a CIFAR-10 batch (b'data' must be an N x 3072 uint8 array)")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(type(v) is int for v in labels):
        raise EdgeoptError(f"{origin}: not a CIFAR-10 batch (b'labels' must be {len(data)} integers)")
    return data, np.asarray(labels, dtype=np.int64)


@register_source("cifar10")
def read_cifar10(cfg: dict[str, Any]) -> DatasetArrays:
    """Read the official `cifar-10-python.tar.gz` (pickled batches of 3x32x32 uint8 rows) without
    running anything from it: see `_CifarUnpickler`."""
    path = _archive_path(cfg)
    batches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    classes: list[str] | None = None
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                check_member_inside(member, str(path))
                name = Path(member.name).name
                origin = f"{path}:{member.name}"
                if name.startswith("data_batch_") or name == "test_batch":
                    batches[name] = _cifar_rows(_load_cifar_member(tar, member, origin), origin)
                elif name == "batches.meta":
                    names = _load_cifar_member(tar, member, origin).get(b"label_names")
                    if not isinstance(names, list) or not all(isinstance(c, bytes) for c in names):
                        raise EdgeoptError(f"{origin}: not CIFAR-10 metadata (b'label_names' must be a list of bytes)")
                    classes = [c.decode("utf-8", "replace") for c in names]
    except (tarfile.TarError, EOFError, OSError, zlib_error()) as exc:
        raise EdgeoptError(f"{path}: corrupt CIFAR-10 archive ({exc})") from None
    train_names = sorted(n for n in batches if n.startswith("data_batch_"))
    if not train_names or "test_batch" not in batches or classes is None:
        raise EdgeoptError(f"{path}: not a CIFAR-10 python archive (no data_batch_*/test_batch/batches.meta)")
    for name, (_, y) in batches.items():
        if len(y) and (y.min() < 0 or y.max() >= len(classes)):
            raise EdgeoptError(f"{path}:{name}: label {int(y.max())} outside the {len(classes)} classes of batches.meta")

    def to_split(names: Iterable[str]) -> Split:
        x = np.concatenate([batches[n][0] for n in names]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return Split(x=np.ascontiguousarray(x), y=np.concatenate([batches[n][1] for n in names]))

    train = to_split(train_names)
    test = to_split(["test_batch"])
    train = _limit_per_class(train, cfg.get("max_train_per_class"))
    test = _limit_per_class(test, cfg.get("max_test_per_class"))
    size, channels = cfg.get("image_size", 32), cfg.get("channels", 3)
    if size != 32 or channels != 3:
        train, test = (_convert_array(s, size, channels) for s in (train, test))
    return DatasetArrays(train=train, test=test, classes=classes)


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error


# ---------------------------------------------------------------- image trees (folder or tar)


def _split_of(parts: tuple[str, ...]) -> tuple[str, str] | None:
    """(split, class) for a relative path's directory parts, or None when it is not an image path."""
    if len(parts) >= 2 and parts[0].lower() in SPLIT_NAMES:
        return SPLIT_NAMES[parts[0].lower()], parts[1]
    if len(parts) >= 1 and parts[0].lower() not in SPLIT_NAMES:
        return "all", parts[0]
    return None


def _strip_common_root(names: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Drop a single top-level folder shared by every entry (e.g. `cifar10/train/...`)."""
    while names and all(len(n) > 2 for n in names):
        first = names[0][0]
        if first.lower() in SPLIT_NAMES or not all(n[0] == first for n in names):
            break
        names = [n[1:] for n in names]
    return names


def _decode(data: bytes, origin: str, size: int, channels: int) -> np.ndarray:
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise EdgeoptError(f"{origin}: not a readable image ({exc})") from None
    img = img.convert("L" if channels == 1 else "RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[:, :, None] if channels == 1 else arr


def _assemble(
    items: list[tuple[tuple[str, ...], Callable[[], bytes], str]], cfg: dict[str, Any], origin: str
) -> DatasetArrays:
    """Build splits from (relative dir parts + file name, loader, display name) entries."""
    size, channels = int(cfg.get("image_size", 32)), int(cfg.get("channels", 3))
    stripped = _strip_common_root([parts for parts, _, _ in items])
    per_split: dict[str, list[tuple[str, Callable[[], bytes], str]]] = {}
    for parts, (_, load, shown) in zip(stripped, items, strict=True):
        where = _split_of(parts[:-1])
        if where is None:
            continue
        split, cls = where
        per_split.setdefault(split, []).append((cls, load, shown))
    if not per_split:
        raise EdgeoptError(f"{origin}: no images found (expected <split>/<class>/<image> or <class>/<image>)")
    if "all" in per_split and ("train" in per_split or "test" in per_split):
        raise EdgeoptError(f"{origin}: mixes <class>/ folders with train/ or test/ folders")
    classes = sorted({cls for entries in per_split.values() for cls, _, _ in entries})
    index = {c: i for i, c in enumerate(classes)}
    limits = {
        "train": cfg.get("max_train_per_class"),
        "all": cfg.get("max_train_per_class"),
        "test": cfg.get("max_test_per_class"),
    }

    def build(split: str) -> Split:
        entries = sorted(per_split[split], key=lambda e: (e[0], e[2]))
        taken: dict[str, int] = {}
        xs, ys = [], []
        for cls, load, shown in entries:
            limit = limits.get(split)
            if limit is not None and taken.get(cls, 0) >= limit:
                continue
            taken[cls] = taken.get(cls, 0) + 1
            xs.append(_decode(load(), shown, size, channels))
            ys.append(index[cls])
        return Split(x=np.stack(xs), y=np.asarray(ys, dtype=np.int64))

    train_key = "all" if "all" in per_split else "train"
    if train_key not in per_split:
        raise EdgeoptError(f"{origin}: has a test/ folder but no train/ folder")
    train = build(train_key)
    test = build("test") if "test" in per_split else None
    return DatasetArrays(train=train, test=test, classes=classes)


@register_source("folder")
def read_folder(cfg: dict[str, Any]) -> DatasetArrays:
    """Read an image tree from a directory."""
    root = local_path(cfg["path"])
    if not root.is_dir():
        raise EdgeoptError(f"dataset.path: {root} is not a directory")
    items = []
    for f in sorted(root.rglob("*")):
        if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
            rel = f.relative_to(root).parts
            items.append((rel, f.read_bytes, str(f)))
    return _assemble(items, cfg, str(root))


@register_source("tar")
def read_tar(cfg: dict[str, Any]) -> DatasetArrays:
    """Read an image tree from a `.tar`, `.tar.gz`, `.tgz` or `.tar.xz` archive (members read in memory)."""
    path = _archive_path(cfg)
    items = []
    try:
        with tarfile.open(path, "r:*") as tar:
            blobs: dict[str, bytes] = {}
            for member in tar:
                check_member_inside(member, str(path))
                if not member.isfile() or Path(member.name).suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
                fh = tar.extractfile(member)
                if fh is None:
                    continue
                blobs[member.name] = fh.read()
    except (tarfile.TarError, EOFError, OSError, zlib_error()) as exc:
        raise EdgeoptError(f"{path}: corrupt or unreadable tar archive ({exc})") from None
    for name in sorted(blobs):
        parts = tuple(p for p in Path(name).parts if p not in (".", ""))
        items.append((parts, (lambda n=name: blobs[n]), f"{path}:{name}"))
    return _assemble(items, cfg, str(path))


# ---------------------------------------------------------------- helpers


def check_member_inside(member: tarfile.TarInfo, archive: str) -> None:
    """Refuse a member whose path, or whose link target, leaves the archive's tree (`..`, an absolute
    path): its name would otherwise become a class name or point at files outside the data set."""
    name = member.name.replace("\\", "/")
    if name.startswith("/") or ".." in PurePosixPath(name).parts:
        raise EdgeoptError(f"{archive}:{member.name}: refused: the member's path leaves the archive's tree")
    if member.issym() or member.islnk():
        target = member.linkname.replace("\\", "/")
        base = PurePosixPath(name).parent if member.issym() else PurePosixPath()
        if target.startswith("/") or posixpath.normpath(str(base / target)).split("/")[0] == "..":
            raise EdgeoptError(
                f"{archive}:{member.name}: refused: a link to {member.linkname!r}, outside the archive's tree"
            )


def _limit_per_class(split: Split, limit: int | None) -> Split:
    """Keep the first `limit` images of each class (in file order), for quick runs."""
    if limit is None:
        return split
    keep = np.zeros(len(split.y), dtype=bool)
    for c in np.unique(split.y):
        keep[np.flatnonzero(split.y == c)[:limit]] = True
    return Split(x=split.x[keep], y=split.y[keep])


def _convert_array(split: Split, size: int, channels: int) -> Split:
    mode = "L" if channels == 1 else "RGB"
    out = []
    for img in split.x:
        im = Image.fromarray(img.squeeze(-1) if img.shape[-1] == 1 else img).convert(mode)
        if im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
        out.append(a[:, :, None] if channels == 1 else a)
    return Split(x=np.stack(out), y=split.y)
