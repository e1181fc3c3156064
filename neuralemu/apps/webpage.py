"""A realistic multi-object web page, drawn from the web workload model and written to disk.

The page's object count and sizes come from :class:`neuralemu.workloads.WebBrowsing`
(HTTP Archive medians: about 70 objects, about 2 MB; docs/workloads.md), drawn
with ``numpy.random.default_rng([seed, 0x3eb])``, so a seed always gives the same
page. Object 0 is the HTML document; every other object is a stylesheet, a
script or an image, in the proportions of the HTTP Archive's median mobile page
(about 10 % CSS, 30 % JS, 60 % images by request count). The HTML references
every object: stylesheets and scripts in ``<head>`` (scripts ``defer``, so they
do not block parsing), images in ``<body>``.

Each file has exactly its drawn size (the HTML grows when its references do not
fit in the drawn size; :attr:`Page.objects` holds the real sizes):

- CSS: a few rules, then a comment of filler;
- JS: a statement that counts executed scripts, then a comment of filler;
- images: a valid 1x1 PNG with a private ancillary chunk (``fiLl``) of random
  bytes that decoders skip (PNG spec 5.4: ancillary chunks with a lower-case
  first letter). The bytes are incompressible, like real image data, and decode
  costs almost nothing, so the browser's CPU time does not blur the network's.

Files are plain HTTP/1.1 objects: the server (:mod:`neuralemu.apps.webserver`)
adds ``Content-Length`` and ``Cache-Control: no-store`` headers.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neuralemu.workloads.web import WebBrowsing

PAGE_RNG_STREAM = 0x3EB
KIND_SHARES = (("css", 0.10), ("js", 0.30), ("img", 0.60))
CONTENT_TYPES = {"html": "text/html; charset=utf-8", "css": "text/css", "js": "text/javascript",
                 "img": "image/png"}
SUFFIX = {"html": "html", "css": "css", "js": "js", "img": "png"}
MIN_BYTES = {"html": 0, "css": 64, "js": 64, "img": 80}


@dataclass(frozen=True)
class PageObject:
    path: str              # URL path, e.g. "/o/12.png"
    kind: str              # html | css | js | img
    size_bytes: int        # body bytes served


@dataclass(frozen=True)
class Page:
    seed: int
    objects: tuple[PageObject, ...]
    model: WebBrowsing = field(default_factory=WebBrowsing)

    @property
    def total_bytes(self) -> int:
        return sum(o.size_bytes for o in self.objects)

    @property
    def html(self) -> PageObject:
        return self.objects[0]

    def summary(self) -> dict:
        kinds = {k: sum(1 for o in self.objects if o.kind == k) for k in CONTENT_TYPES}
        return {"seed": self.seed, "objects": len(self.objects), "total_bytes": self.total_bytes,
                "html_bytes": self.html.size_bytes, **{f"n_{k}": v for k, v in kinds.items()}}


def make_page(seed: int, model: WebBrowsing | None = None) -> Page:
    """The page of ``seed``: object 0 is ``/index.html``; sizes from ``model.draw_page``."""
    model = model or WebBrowsing()
    rng = np.random.default_rng([int(seed), PAGE_RNG_STREAM])
    sizes = model.draw_page(rng)
    names, shares = zip(*KIND_SHARES)
    kinds = rng.choice(names, size=len(sizes) - 1, p=shares)
    objects = []
    for i, (kind, size) in enumerate(zip(kinds.tolist(), sizes[1:].tolist()), start=1):
        objects.append(PageObject(f"/o/{i}.{SUFFIX[kind]}", kind, max(int(size), MIN_BYTES[kind])))
    html_size = max(int(sizes[0]), len(_html_text(objects, 0)))
    return Page(seed=int(seed), objects=(PageObject("/index.html", "html", html_size), *objects),
                model=model)


def _html_text(objects: list[PageObject], size: int) -> str:
    head = [f'<link rel="stylesheet" href="{o.path}">' for o in objects if o.kind == "css"]
    head += [f'<script defer src="{o.path}"></script>' for o in objects if o.kind == "js"]
    body = [f'<img src="{o.path}" width="1" height="1" alt="">' for o in objects if o.kind == "img"]
    text = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>NeuralEmu test page</title>\n"
            "<link rel=\"icon\" href=\"data:,\">\n"
            "<script>window.neScripts = 0;</script>\n" + "\n".join(head) + "\n</head><body>\n"
            "<h1>NeuralEmu test page</h1>\n" + "\n".join(body) + "\n")
    tail = "</body></html>\n"
    pad = size - len(text) - len(tail)
    if pad > 9:
        filler = ("<p>" + "lorem ipsum dolor sit amet " * (pad // 27 + 1))[: pad - 5] + "</p>\n"
        text += filler
    return text + tail


def _css(size: int, i: int) -> bytes:
    head = f".c{i} {{ color: #{i * 2654435761 % 0xFFFFFF:06x}; margin: 0; }}\n/* "
    return (head + "x" * (size - len(head) - 3) + " */").encode()


def _js(size: int, i: int) -> bytes:
    head = f"window.neScripts = (window.neScripts || 0) + 1; /* {i} "
    return (head + "x" * (size - len(head) - 3) + " */").encode()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(size: int, rng: np.random.Generator) -> bytes:
    """A valid 1x1 RGB PNG of exactly ``size`` bytes (PNG spec: signature, IHDR, fiLl, IDAT, IEND)."""
    sig = b"\x89PNG\r\n\x1a\n"
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    idat = _png_chunk(b"IDAT", zlib.compress(b"\x00\x80\x80\x80"))
    iend = _png_chunk(b"IEND", b"")
    fixed = len(sig) + len(ihdr) + len(idat) + len(iend) + 12   # + the fiLl chunk's framing
    pad = size - fixed
    if pad < 0:
        raise ValueError(f"a PNG needs at least {fixed} bytes, asked for {size}")
    fill = _png_chunk(b"fiLl", rng.integers(0, 256, pad, dtype=np.uint8).tobytes())
    return sig + ihdr + fill + idat + iend


def object_bytes(page: Page, obj: PageObject) -> bytes:
    """The body of ``obj``: exactly ``obj.size_bytes`` bytes, deterministic given the page."""
    i = page.objects.index(obj)
    if obj.kind == "html":
        data = _html_text(list(page.objects[1:]), obj.size_bytes).encode()
    elif obj.kind == "css":
        data = _css(obj.size_bytes, i)
    elif obj.kind == "js":
        data = _js(obj.size_bytes, i)
    else:
        data = _png(obj.size_bytes, np.random.default_rng([page.seed, PAGE_RNG_STREAM, i]))
    if len(data) != obj.size_bytes:
        raise AssertionError(f"{obj.path}: built {len(data)} bytes, want {obj.size_bytes}")
    return data


def write_page(page: Page, root: str | Path) -> Path:
    """Write every object under ``root`` (``root/index.html``, ``root/o/...``); returns root."""
    root = Path(root)
    (root / "o").mkdir(parents=True, exist_ok=True)
    for obj in page.objects:
        (root / obj.path.lstrip("/")).write_bytes(object_bytes(page, obj))
    return root
