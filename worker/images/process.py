"""Image normalisation, pure Pillow: source bytes in, a stripped sRGB JPEG and its fitness out.

No network, no database: ``process_image(data, options)`` either returns a ``ProcessedImage`` or
raises ``ImageRejected`` with a named ``Outcome`` (not an image, corrupt, bomb). The channels' size
rules (``channel_rules``) are pure too, so the task and the feed agree on what "fit" means.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from worker.feed.channels import registry

if TYPE_CHECKING:
    from worker.common.shops import Shop

# Google's own ceiling for a product image; anything larger is refused before a pixel is decoded.
MAX_PIXELS = 64_000_000
# The largest enlargement we allow to lift an image over a channel's minimum: 1.2 × turns a
# 420 px image into a 504 px one (invisible at ad sizes), but never a 125 px thumbnail into 500 px,
# which Google calls an "upscaled thumbnail" and rejects.
MAX_UPSCALE = 1.2
DEFAULT_MAX_EDGE = 1600
DEFAULT_QUALITY = 85
# Only the formats the platforms accept are even parsed: no EPS (Ghostscript), no exotic plugins.
ACCEPTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")  # JPEG covers MPO
WHITE = (255, 255, 255)

# What a malformed file makes Pillow's plugins raise while parsing or decoding; Warning too, for
# when a warnings filter turns Pillow's "Corrupt EXIF data" and the like into errors (as the tests do).
_DECODE_ERRORS = (
    OSError, SyntaxError, ValueError, struct.error, IndexError, EOFError, TypeError, Warning,
)


class Outcome(StrEnum):
    """What happened to one image URL; recorded in ``images.status`` and counted per task."""

    OK = "ok"
    UNCHANGED = "unchanged"  # a 304, or the same bytes as last time: nothing decoded or written
    TOO_SMALL = "too_small"  # stored, but below the minimum of at least one of the shop's channels
    NOT_IMAGE = "not_image"  # not a JPEG/PNG/GIF/WebP/BMP/TIFF, whatever its name or Content-Type
    CORRUPT = "corrupt"  # recognised, but truncated or undecodable
    BOMB = "bomb"  # claims more than MAX_PIXELS pixels
    TOO_LARGE = "too_large"  # the body passed the byte cap while streaming
    BLOCKED = "blocked"  # the URL or a redirect reaches a non-public address
    TIMEOUT = "timeout"  # connect or read timed out (after retries)
    HTTP_STATUS = "http_status"  # the server answered an error status
    UNREACHABLE = "unreachable"  # connection refused/reset, DNS, 5xx after retries
    BAD_URL = "bad_url"  # not an http(s) URL

    @property
    def stored(self) -> bool:
        """True when this outcome leaves a processed image in the store."""
        return self in (Outcome.OK, Outcome.TOO_SMALL)


TRANSIENT_OUTCOMES = frozenset({Outcome.TIMEOUT, Outcome.UNREACHABLE})


class ImageRejected(Exception):
    """The file cannot be made into a product image; ``outcome`` names why."""

    def __init__(self, outcome: Outcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True)
class ChannelRule:
    """A channel's accepted image size, in pixels (inclusive)."""

    min_width: int
    min_height: int
    max_width: int | None = None
    max_height: int | None = None

    def fits(self, width: int, height: int) -> bool:
        if width < self.min_width or height < self.min_height:
            return False
        if self.max_width is not None and width > self.max_width:
            return False
        return not (self.max_height is not None and height > self.max_height)


def channel_rules(*, apparel: bool, on: date) -> dict[str, ChannelRule]:
    """Each registered channel's image size rule on a given day, as its module states it.

    The channel modules own their platform's sizes (``Channel.image_size``): a new channel brings
    its rule with it, and one cannot be added without one (``min_image_size`` is required).
    """
    rules = {}
    for name, channel in registry().items():
        size = channel.image_size(apparel=apparel, on=on)
        rules[name] = ChannelRule(size.min_width, size.min_height, size.max_width, size.max_height)
    return rules


def fitness(width: int, height: int, rules: Mapping[str, ChannelRule]) -> dict[str, bool]:
    """channel → whether an image of this size is acceptable there."""
    return {channel: rule.fits(width, height) for channel, rule in rules.items()}


@dataclass(frozen=True)
class ProcessOptions:
    """How to normalise: the shop's options and channels, resolved once per task."""

    rules: Mapping[str, ChannelRule]
    channels: tuple[str, ...] = ()  # the shop's channels: only their minimums justify an upscale
    max_edge: int = DEFAULT_MAX_EDGE
    square: bool = False
    quality: int = DEFAULT_QUALITY
    progressive: bool = False
    max_pixels: int = MAX_PIXELS
    max_upscale: float = MAX_UPSCALE

    @classmethod
    def for_shop(
        cls,
        shop: Shop,
        *,
        on: date,
        quality: int = DEFAULT_QUALITY,
        progressive: bool = False,
    ) -> ProcessOptions:
        """Options from a ``Shop`` (image_max_edge, image_square, apparel) on a given day."""
        return cls(
            rules=channel_rules(apparel=bool(shop.option("apparel")), on=on),
            channels=tuple(shop.channels),
            max_edge=int(shop.option("image_max_edge")),
            square=bool(shop.option("image_square")),
            quality=quality,
            progressive=progressive,
        )

    def shop_rules(self) -> Iterable[ChannelRule]:
        return (self.rules[c] for c in self.channels if c in self.rules)


@dataclass(frozen=True)
class ProcessedImage:
    data: bytes  # the JPEG, no metadata
    width: int
    height: int
    fitness: dict[str, bool] = field(default_factory=dict)
    source_format: str = ""
    source_width: int = 0  # as displayed (EXIF orientation applied)
    source_height: int = 0
    scale: float = 1.0  # output content size / source size; > 1 only within MAX_UPSCALE

    def fits_all(self, channels: Iterable[str]) -> bool:
        return all(self.fitness.get(c, True) for c in channels)


_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


# The transforms kept between images, bounded in bytes: a transform holds its profile's tables,
# so the profile's size (twice: parsed and built) is its measure, and a shop sending a fresh
# multi-megabyte profile with every image cannot make the cache grow past this.
ICC_CACHE_BYTES = 16 * 1024 * 1024


class TransformCache:
    """sRGB transforms keyed by a digest of the profile (never the profile itself) and the mode,
    least recently used first out once their measured bytes pass ``max_bytes``; thread-safe."""

    def __init__(self, max_bytes: int = ICC_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.builds = 0
        self._entries: OrderedDict[tuple[bytes, str], tuple[ImageCms.ImageCmsTransform, int]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, icc: bytes, mode: str) -> ImageCms.ImageCmsTransform:
        key = (hashlib.sha256(icc).digest(), mode)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return found[0]
        transform = _build_transform(icc, mode)
        size = 2 * len(icc)
        with self._lock:
            self.builds += 1
            if size > self.max_bytes or key in self._entries:
                return transform  # used for this image only
            self._entries[key] = (transform, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.bytes -= dropped
        return transform


def _build_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform:
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    # NOCACHE: LittleCMS's one-pixel cache lives in the transform, and threads share transforms.
    return ImageCms.buildTransform(source, _SRGB, mode, "RGB", flags=ImageCms.Flags.NOCACHE)


# Shops' photos tend to share a handful of profiles: each transform is built once per process.
TRANSFORMS = TransformCache()


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
    except _DECODE_ERRORS:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _target_scale(width: int, height: int, options: ProcessOptions) -> float:
    """The scale for the displayed source: fit max_edge, or a small lift to a channel's minimum."""
    scale = min(1.0, options.max_edge / max(width, height))
    if scale < 1.0:
        return scale
    side = max(width, height)
    canvas = (side, side) if options.square else (width, height)
    needed = [
        max(rule.min_width / canvas[0], rule.min_height / canvas[1])
        for rule in options.shop_rules()
    ]
    lifts = [n for n in needed if 1.0 < n <= options.max_upscale]
    if not lifts:
        return 1.0
    return min(max(lifts), options.max_edge / side)


def _scaled(width: int, height: int, scale: float) -> tuple[int, int]:
    if scale > 1.0:
        # Round up when enlarging, so that the minimum the enlargement was for is actually reached.
        return max(1, math.ceil(width * scale - 1e-9)), max(1, math.ceil(height * scale - 1e-9))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _flatten(im: Image.Image) -> Image.Image:
    """Any mode → L, RGB or CMYK (or LAB/YCbCr for the colour step); alpha composited on white."""
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        # 16-bit grey: scale to 8 bits (a plain convert would clip everything above 255 to white).
        im = im.convert("I").point(lambda v: v * (1 / 257)).convert("L")
    elif mode in ("F", "1"):
        im = im.convert("L")
    elif mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("PA", "LA", "La", "RGBa") or (
        mode in ("L", "RGB") and "transparency" in im.info
    ):
        im = im.convert("RGBA")
    elif mode not in ("L", "RGB", "RGBA", "CMYK", "YCbCr", "LAB"):
        im = im.convert("RGB")
    if im.mode == "RGBA":
        canvas = Image.new("RGB", im.size, WHITE)
        canvas.paste(im, mask=im.getchannel("A"))
        im = canvas
    return im


def _to_rgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    if icc and im.mode in ("RGB", "CMYK", "L", "LAB"):
        try:
            return ImageCms.applyTransform(im, TRANSFORMS.get(icc, im.mode))  # type: ignore[return-value]
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # a broken or mismatched profile: the plain conversion below is the best guess
    return im if im.mode == "RGB" else im.convert("RGB")


def icc_of(im: Image.Image) -> bytes | None:
    icc = im.info.get("icc_profile")
    return icc if isinstance(icc, bytes) and icc else None


def _decode(
    im: Image.Image,
    icc: bytes | None,
    orientation: int,
    width: int,
    height: int,
    scale: float,
    options: ProcessOptions,
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode, orient, flatten, fit and convert to sRGB: the part that holds decoded pixels."""
    source_format = im.format or ""
    try:
        im.load()
        frame: Image.Image = im
        if orientation != 1:
            frame = ImageOps.exif_transpose(frame)
        frame = _flatten(frame)
        target = _scaled(width, height, scale)
        if frame.size != target:
            frame = frame.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
        return _to_rgb(frame, icc), target
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(Outcome.BOMB, f"decompression bomb refused: {exc}") from exc
    except _DECODE_ERRORS as exc:
        raise ImageRejected(
            Outcome.CORRUPT, f"{source_format or 'image'} cannot be decoded: {exc}"
        ) from exc


def process_image(
    data: bytes,
    options: ProcessOptions,
    *,
    reserve: Callable[[int], AbstractContextManager[object]] | None = None,
) -> ProcessedImage:
    """Decode, orient, flatten, fit, convert to sRGB, pad and encode one image.

    ``reserve(nbytes)`` (the task's decode memory budget) is entered with the decoded size,
    width × height × 4 bytes as read from the header, before any pixel is decoded; it raises
    ``ValueError`` when the image needs more than the whole budget, which refuses it as a bomb.
    """
    try:
        im = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError as exc:
        raise ImageRejected(
            Outcome.NOT_IMAGE,
            f"not an image in an accepted format ({', '.join(ACCEPTED_FORMATS)}); "
            f"the body starts with {data[:16]!r}",
        ) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(Outcome.BOMB, f"decompression bomb refused: {exc}") from exc
    except _DECODE_ERRORS as exc:
        raise ImageRejected(Outcome.CORRUPT, f"unreadable image header: {exc}") from exc
    with im:
        raw_width, raw_height = im.size
        if raw_width * raw_height > options.max_pixels:
            raise ImageRejected(
                Outcome.BOMB,
                f"{im.format} claims {raw_width}×{raw_height} = {raw_width * raw_height:,} pixels, "
                f"over the {options.max_pixels:,}-pixel ceiling; refused before decoding",
            )
        source_format = im.format or ""
        try:
            orientation = _orientation(im)
            width, height = (
                (raw_height, raw_width) if orientation in (5, 6, 7, 8) else (raw_width, raw_height)
            )
            scale = _target_scale(width, height, options)
            if scale < 1.0 and source_format in ("JPEG", "MPO"):
                # DCT-domain reduction by 1/2, 1/4 or 1/8, never below the requested size.
                im.draft(im.mode, (math.ceil(raw_width * scale), math.ceil(raw_height * scale)))
        except _DECODE_ERRORS as exc:
            raise ImageRejected(
                Outcome.CORRUPT, f"{source_format or 'image'} cannot be decoded: {exc}"
            ) from exc
        # What decoding will hold: the (drafted) size, four bytes a pixel (Pillow keeps RGB in 4).
        decoded_bytes = im.size[0] * im.size[1] * 4
        with ExitStack() as budget:
            if reserve is not None:
                try:
                    budget.enter_context(reserve(decoded_bytes))
                except ValueError as exc:
                    raise ImageRejected(
                        Outcome.BOMB,
                        f"{source_format} of {raw_width}×{raw_height} needs {decoded_bytes:,} "
                        f"bytes decoded, more than the whole decode memory budget ({exc}); "
                        "refused before decoding",
                    ) from exc
            frame, target = _decode(im, icc_of(im), orientation, width, height, scale, options)
        if options.square and frame.width != frame.height:
            side = max(frame.size)
            canvas = Image.new("RGB", (side, side), WHITE)
            canvas.paste(frame, ((side - frame.width) // 2, (side - frame.height) // 2))
            frame = canvas
        out = io.BytesIO()
        # No exif/icc/xmp arguments and no info: the output carries no metadata at all.
        frame.info = {}
        frame.save(out, "JPEG", quality=options.quality, progressive=options.progressive,
                   optimize=options.progressive)
        return ProcessedImage(
            data=out.getvalue(),
            width=frame.width,
            height=frame.height,
            fitness=fitness(frame.width, frame.height, options.rules),
            source_format=source_format,
            source_width=width,
            source_height=height,
            scale=target[0] / width,
        )
