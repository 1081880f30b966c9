#!/usr/bin/env python3
"""Make the CIFAR-10 sample that ships in `data/` from the full CIFAR-10 JPEG tarball.

The tiny preset (config/tiny.yaml) trains on this sample, so a fresh clone runs end to end with
no download and nothing beside it. The sample is a seeded, stratified choice of N images per
class from each split, copied byte for byte (no re-encoding), written as a tar.gz whose bytes
depend only on the input tarball and the options (sorted members, fixed owners, times and modes,
gzip header without a timestamp): rerunning the script with the same arguments reproduces the
committed file exactly.

    python3 scripts/make-sample-dataset.py FULL.tar.gz [--train-per-class N] [--test-per-class N]
"""

from __future__ import annotations

import argparse
import gzip
import io
import random
import sys
import tarfile
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "data" / "cifar10-sample.tar.gz"
SPLITS = ("train", "test")


def members_by_class(tar: tarfile.TarFile) -> dict[tuple[str, str], list[tarfile.TarInfo]]:
    """(split, class) -> image members of an `<split>/<class>/<image>` tree (a common top folder is allowed)."""
    groups: dict[tuple[str, str], list[tarfile.TarInfo]] = {}
    for m in tar.getmembers():
        parts = PurePosixPath(m.name).parts
        if not m.isfile() or len(parts) < 3 or parts[-3] not in SPLITS:
            continue
        groups.setdefault((parts[-3], parts[-2]), []).append(m)
    return groups


def choose(groups: dict[tuple[str, str], list[tarfile.TarInfo]], per_split: dict[str, int], seed: int):
    """A seeded sample of `per_split[split]` members per class, independent of the tarball's member order."""
    chosen: list[tuple[str, tarfile.TarInfo]] = []
    for (split, cls), members in sorted(groups.items()):
        n = per_split[split]
        pool = sorted(members, key=lambda m: m.name)
        if n > len(pool):
            raise SystemExit(f"{split}/{cls}: only {len(pool)} images, {n} asked for")
        rng = random.Random(f"{seed}/{split}/{cls}")
        for m in sorted(rng.sample(pool, n), key=lambda m: m.name):
            chosen.append((f"{split}/{cls}/{PurePosixPath(m.name).name}", m))
    return chosen


def write_sample(src: Path, out: Path, per_split: dict[str, int], seed: int) -> int:
    """Write the sample to `out` (via a temp file and rename); return the number of images."""
    with tarfile.open(src, "r:*") as tar:
        chosen = choose(members_by_class(tar), per_split, seed)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as dst:
            folders = sorted({str(PurePosixPath(name).parent) for name, _ in chosen} | set(SPLITS))
            for folder in folders:
                info = tarfile.TarInfo(folder)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                dst.addfile(info)
            for name, member in chosen:
                data = tar.extractfile(member).read()
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                dst.addfile(info, io.BytesIO(data))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=9) as gz:
        gz.write(buf.getvalue())
    tmp.replace(out)
    return len(chosen)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path, help="the full CIFAR-10 JPEG tarball (<split>/<class>/<image>.jpg)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT.relative_to(ROOT)}")
    p.add_argument("--train-per-class", type=int, default=300)
    p.add_argument("--test-per-class", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not args.source.is_file():
        print(f"make-sample-dataset: {args.source}: not found", file=sys.stderr)
        return 2
    n = write_sample(
        args.source, args.out, {"train": args.train_per_class, "test": args.test_per_class}, args.seed
    )
    print(f"{args.out}: {n} images, {args.out.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
