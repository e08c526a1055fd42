"""The leak page (``check --report leaks.html``): each reported pair side by side.

A report names pairs and scores; whoever has to act on a failed gate (drop the test image, fix
the split, or decide that a look-alike is not a copy) needs to see them. Each pair shows the test
image as it reads now (the crop box found drawn on it), the contributor as the manifest stores it
(its 32×32 luma reference, brought back to its real brightness and mirrored back when the match
was mirrored: no train file is needed), and the test image reduced the same way, so the two small
pictures compare like for like. One self-contained file, images inlined as PNG data URIs, no
script and no external resource: it can be attached to a CI run and opened offline. Every name,
path, reason and warning in it comes from files or the manifest, so every one is escaped.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from normstat.fileops import atomic_write_bytes, stays_inside
from normstat.fingerprints import gray_image, pixel_hash, thumbnail
from normstat.manifest import Stats
from normstat.modes import Mode
from normstat.options import DEFAULT_MAX_PIXELS, ReadOptions
from normstat.readers import Decoded, Skipped, parse_image_name
from normstat.sources import Source, for_roots
from normstat.verbs.common import ImageRef, read_reference, read_refs

from .chunk import CONTRIBUTOR_UNREADABLE
from .leakage import Leak, LeakReport

__all__ = ["MARK", "MAX_PAIRS", "is_page", "write_page"]

MARK = b"<!-- normstat leak page -->"
MAX_PAIRS = 500  # pairs shown, leaks first: the page stays a few MB
MAX_LINES = 1000  # warnings listed
SHOWN = 192  # px: a test image's longer side, at most
SMALL = 128  # px: a 32×32 thumbnail's longer side, enlarged
BOX = (255, 0, 64)  # the crop box's colour
# Control characters, line and bidirectional-override marks: shown as escapes, never as text.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROL.update({c: f"\\u{c:04x}" for c in (*range(0x2028, 0x202F), *range(0x2066, 0x206A))})
_STYLE = """body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
.pair{display:flex;gap:1em;align-items:flex-start;border-top:1px solid #ccc;padding:.8em 0}
figure{margin:0;text-align:center}figcaption{font-size:12px;color:#555;max-width:200px}
img{image-rendering:pixelated;border:1px solid #999}
.missing{width:128px;height:96px;background:#eee;font-size:12px;padding:4px;overflow:auto}
dl{display:grid;grid-template-columns:auto 1fr;gap:2px 1em;margin:0}dt{color:#555}
dd{margin:0;word-break:break-all}.failed{color:#b00020}.clean{color:#0a7d32}"""


def is_page(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) starts a page this module wrote."""
    return MARK in head[:512]


def write_page(report: LeakReport, path: str, source: Source, stats: Stats) -> None:
    """Write ``report`` as one self-contained HTML page at ``path`` (atomically): the test
    images read from ``source``, the contributors from ``stats``' stored references."""
    pairs = [*report.leaked, *report.look_alikes]
    shown = pairs[:MAX_PAIRS]
    images = _Images(source, stats, {leak.test for leak in shown})
    out = [MARK.decode(), "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">']
    out += ["<title>normstat leak report</title>", f"<style>{_STYLE}</style></head><body>"]
    out += _header(report)
    leaked = [leak for leak in shown if leak.kind != "look-alike"]
    alike = shown[len(leaked) :]
    for title, group in (("Leaked", leaked), ("Look-alikes, for review", alike)):
        if group:
            out.append(f"<h2>{title} ({len(group)})</h2>")
            out += [_pair(leak, images) for leak in group]
    if len(pairs) > len(shown):
        out.append(
            f"<p>{len(pairs) - len(shown)} more pairs not shown (the JSON report has all).</p>"
        )
    if report.warnings:
        out.append(f"<h2>Warnings ({len(report.warnings)})</h2><ul>")
        out += [f"<li>{_text(w)}</li>" for w in report.warnings[:MAX_LINES]]
        out.append("</ul>")
        if len(report.warnings) > MAX_LINES:
            out.append(f"<p>{len(report.warnings) - MAX_LINES} more warnings not listed.</p>")
    out.append("</body></html>\n")
    atomic_write_bytes(path, "\n".join(out).encode("utf-8"))


def _text(value: object) -> str:
    """Untrusted text as HTML (an attribute's value too): control characters and surrogates
    (undecodable bytes of a file name) as backslash escapes, markup characters as entities."""
    text = str(value).translate(_CONTROL).encode("utf-8", "backslashreplace").decode("utf-8")
    return html.escape(text, quote=True)


def _num(value: Any, digits: int) -> str:
    try:
        return "—" if value is None else f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return "—"


def _header(report: LeakReport) -> list[str]:
    rule = report.rule
    kinds = [leak.kind for leak in (*report.leaked, *report.look_alikes)]
    verdict = "clean" if report.clean else "failed"
    if rule is None:
        gate = "exact copies only (the manifest has no perceptual fingerprints)"
    else:
        gate = (
            f"a copy is {_num(rule.margin, 2)}× closer than the nearest other contributor "
            f"(look-alike: {_num(rule.look, 2)}×) and agrees to {_num(rule.threshold, 3)}"
        )
    rows = [
        ("manifest", _text(report.manifest)),
        ("checked", f"{int(report.checked)} test images, {len(report.skipped)} skipped"),
        ("verdict", f'<b class="{verdict}">{verdict}</b>'),
        ("gate", f"{_text(gate)}; fails on: {_text(report.fail_on)}"),
        ("found", ", ".join(f"{kinds.count(k)} {k}" for k in ("exact", "near", "look-alike"))),
        ("references", _text(report.verification)),
    ]
    body = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    return ["<h1>normstat leak report</h1>", f"<dl>{body}</dl>"]


def _pair(leak: Leak, images: _Images) -> str:
    t = leak.transform if isinstance(leak.transform, dict) else {}
    mirrored = bool(leak.mirrored or t.get("mirrored"))
    test, why = images.test(leak.test)
    crop = _crop(t.get("crop"))
    if test is not None and crop is not None:
        test = _boxed(test, crop)
    train, caption = images.contributor(leak.row, mirrored)
    figures = [
        _figure(test, why, "test image" + (" (the box: the part found)" if crop else "")),
        _figure(train, caption, caption),
        _figure(images.test_thumb(leak.test), why, "test image, reduced to 32×32 alike"),
    ]
    changes = t["changes"] if isinstance(t.get("changes"), list) else []
    facts = [
        ("kind", _text(leak.kind)),
        ("score", _num(leak.score, 3)),
        ("distinct", _num(leak.distinct, 1) + ("×" if leak.distinct is not None else "")),
        ("pHash bits", _num(leak.distance, 0)),
        ("changes", _text(", ".join(map(str, changes)) or "none")),
        ("scale, gain", f"{_num(t.get('scale'), 3)}, {_num(t.get('gain'), 3)}"),
        ("test", _text(leak.test)),
        ("train", _text(leak.train)),
    ]
    body = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    return f'<div class="pair">{"".join(figures)}<dl>{body}</dl></div>'


def _figure(img: Image.Image | None, why: str, caption: str) -> str:
    if img is None:
        shown = f'<div class="missing">{_text(why)}</div>'
    else:
        buf = io.BytesIO()
        img.save(buf, "PNG", optimize=True)
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        size = f'width="{img.width}" height="{img.height}"'
        shown = f'<img src="data:image/png;base64,{data}" {size} alt="">'
    return f"<figure>{shown}<figcaption>{_text(caption)}</figcaption></figure>"


def _crop(value: Any) -> tuple[float, float, float, float] | None:
    """A crop box in fractions of the test image; None when there is none (or not a box)."""
    try:
        x0, y0, x1, y1 = (min(1.0, max(0.0, float(v))) for v in value)
    except (TypeError, ValueError):
        return None
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _boxed(img: Image.Image, crop: tuple[float, float, float, float]) -> Image.Image:
    img = img.convert("RGB")
    w, h = img.size
    x0, y0 = round(crop[0] * w), round(crop[1] * h)
    box = (x0, y0, max(x0, round(crop[2] * w) - 1), max(y0, round(crop[3] * h) - 1))
    ImageDraw.Draw(img).rectangle(box, outline=BOX, width=2)
    return img


def _shown(pixels: np.ndarray, max_value: float) -> Image.Image:
    """Decoded pixels (any mode) as an 8-bit L or RGB image at most SHOWN px (small ones
    enlarged, nearest neighbour, towards SMALL px)."""
    values = pixels[..., :3] if pixels.shape[2] >= 3 else pixels[..., 0]
    if values.dtype != np.uint8:
        scaled = np.nan_to_num(values.astype(np.float32) * np.float32(255 / max_value))
        values = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    img = Image.fromarray(np.ascontiguousarray(values))
    longer = max(img.size)
    if longer > SHOWN:
        img.thumbnail((SHOWN, SHOWN), Image.Resampling.BOX)
    elif longer < SMALL:
        k = SMALL // longer
        img = img.resize((img.width * k, img.height * k), Image.Resampling.NEAREST)
    return img


def _enlarged(levels: np.ndarray, size: Sequence[int]) -> Image.Image:
    """A 32×32 thumbnail in [0, 1] as an 8-bit image of the picture's aspect (``size``: its
    height and width), its longer side SMALL px, nearest neighbour."""
    img = Image.fromarray(np.clip(np.rint(np.nan_to_num(levels) * 255), 0, 255).astype(np.uint8))
    h, w = (max(1, int(v)) for v in size)
    scale = SMALL / max(h, w)
    return img.resize(
        (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.NEAREST
    )


class _Images:
    """The pictures of a page: test images read once each, contributors from the sidecar."""

    def __init__(self, source: Source, stats: Stats, names: set[str]) -> None:
        self.stats, self.source = stats, source
        self.mode: Mode = stats.read_mode()
        self.read: ReadOptions = stats.read_options(DEFAULT_MAX_PIXELS)
        self.fp = stats.fingerprints
        self._train: Source | None = None
        self._refs = self._find(names)
        self._thumbs: dict[str, Image.Image | None] = {}

    def _find(self, names: set[str]) -> dict[str, ImageRef]:
        try:
            items = {item.path: item for item in self.source.items()}
        except Exception:  # a source that cannot be listed now: every test image is missing
            return {}
        refs = {}
        for name in names:
            member = parse_image_name(name)
            if name in items:
                refs[name] = ImageRef(items[name])
            elif member is not None and member[0] in items:
                refs[name] = ImageRef(items[member[0]], member[1], True)
        return refs

    def test(self, name: str) -> tuple[Image.Image | None, str]:
        """The test image for display, or None and why not; its thumbnail is kept."""
        ref = self._refs.get(name)
        if ref is None:
            self._thumbs[name] = None
            return None, "cannot be read now: no longer in the test source"
        try:
            got = next(read_refs(self.source, [ref], self.mode, self.read))
        except Exception as exc:  # a decoder's failure is a placeholder, never the page's
            got = Skipped(name, f"cannot be read now: {type(exc).__name__}")
        if isinstance(got, Skipped):
            self._thumbs[name] = None
            return None, got.reason
        self._thumbs[name] = self._thumb_of(got)
        return _shown(got.pixels, self.mode.max_value), ""

    def test_thumb(self, name: str) -> Image.Image | None:
        return self._thumbs.get(name)

    def _thumb_of(self, dec: Decoded) -> Image.Image:
        t = thumbnail(gray_image(dec.pixels, self.mode.max_value, dec.image))
        levels = t / np.float32(255) if dec.pixels.dtype == np.uint8 else t
        return _enlarged(levels, dec.pixels.shape[:2])

    def contributor(self, row: int | None, mirrored: bool) -> tuple[Image.Image | None, str]:
        """The contributor as the sidecar stores it (read from its file for sidecars without
        references), mirrored back when the match was mirrored; and its caption."""
        fp = self.fp
        back = ", mirrored back to line up" if mirrored else ""
        if fp is None or row is None or not 0 <= row < len(fp):
            return None, "not stored in the manifest"
        size = (int(fp.height[row]), int(fp.width[row]))
        if fp.thumb is not None and fp.thumb_range is not None:
            lo, hi = (float(v) for v in fp.thumb_range[row])
            levels = lo + np.asarray(fp.thumb[row], np.float32) * np.float32((hi - lo) / 255)
            img = _enlarged(levels[:, ::-1] if mirrored else levels, size)
            return img, f"contributor, 32×32 as stored{back}"
        dec = self._train_file(row)
        if isinstance(dec, str):
            return None, f"contributor not stored; its file {dec}"
        img = _shown(dec.pixels[:, ::-1] if mirrored else dec.pixels, self.mode.max_value)
        return img, f"contributor, read from its file{back}"

    def _train_file(self, row: int) -> Decoded | str:
        """A contributor's file for sidecars without references, or why not (the words never
        tell whether a file a hostile manifest names exists)."""
        fp = self.fp
        assert fp is not None
        rel = fp.paths[row]
        if not stays_inside(rel):
            return CONTRIBUTOR_UNREADABLE
        try:
            if self._train is None:
                column = self.stats.data.get("options", {}).get("column")
                self._train = for_roots(fp.roots, None, column)
            root = fp.roots[int(fp.root[row])]
            dec = read_reference(self._train, root, rel, self.mode, self.read)
        except Exception:
            return CONTRIBUTOR_UNREADABLE
        if isinstance(dec, Skipped):
            return CONTRIBUTOR_UNREADABLE
        if pixel_hash(dec.pixels, self.mode.name) != bytes(np.asarray(fp.pixel_hash[row])):
            return "changed since the statistics were computed"
        return dec
