"""Which `dataset.url`s edgeopt downloads: the policy is checked by the config check and again
before each download (torch- and PIL-free, so the Snakefile's config check stays light).

A download is trusted only when something pins its content or its origin: a `dataset.checksum`
(any http(s) URL), or else TLS (https, with a warning that the content is not pinned). Plain http
without a checksum could be altered by anyone on the path and is refused.
"""

from __future__ import annotations

import urllib.parse
from typing import Literal

from edgeopt.errors import EdgeoptError

#: where `dataset.url` downloads go when `dataset.path` is not set (a cache: a verified file is reused)
DOWNLOAD_DIR = "results/downloads"


def check_download(url: str, checksum: str | None) -> Literal["checked", "unchecked"]:
    """"checked" (a checksum pins it) or "unchecked" (https, no checksum: warn); raise when refused."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("https", "http"):
        raise EdgeoptError(f"config: dataset.url: {url!r} must be an https:// (or http:// with dataset.checksum) URL; "
                           "use dataset.path for a local file")
    if checksum:
        return "checked"
    if scheme == "http":
        raise EdgeoptError(f"config: dataset.checksum: required for the plain-http dataset.url {url} "
                           "(give md5:<hex> or sha256:<hex>, or use https)")
    return "unchecked"
