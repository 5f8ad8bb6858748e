"""Real image files made with Pillow for the images tests (and an Adobe RGB ICC profile built by hand)."""

from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import Image

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def jpeg(size: tuple[int, int], color: tuple[int, int, int] = RED, **params: object) -> bytes:
    return encode(Image.new("RGB", size, color), "JPEG", quality=95, **params)


def noisy_jpeg(size: tuple[int, int], seed: int = 1, quality: int = 90) -> bytes:
    """A photo-like JPEG: random noise costs the encoder and decoder what a real photo does."""
    rng = random.Random(seed)
    im = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    return encode(im, "JPEG", quality=quality)


def halves(
    size: tuple[int, int], left: tuple[int, ...], right: tuple[int, ...], mode: str = "RGB"
) -> Image.Image:
    im = Image.new(mode, size, left)
    im.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return im


def exif_rotated_jpeg() -> bytes:
    """Stored 200×100, left red and right blue, with orientation 6 (display = rotate 90° clockwise):
    displayed 100×200, red on top and blue below."""
    im = halves((200, 100), RED, BLUE)
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(im, "JPEG", quality=95, exif=exif.tobytes())


def cmyk_jpeg(size: tuple[int, int] = (300, 200)) -> bytes:
    return encode(Image.new("CMYK", size, (0, 255, 255, 0)), "JPEG", quality=95)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def adobe_rgb_icc() -> bytes:
    """A minimal ICC v2 matrix/TRC display profile for Adobe RGB (1998): D50-adapted primaries and
    the 563/256 gamma, which is what the real profile holds."""

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + b"\0" * 4 + _s15(x) + _s15(y) + _s15(z)

    curve = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, 563) + b"\0\0"
    description = b"Adobe RGB (1998) test"
    desc = (
        b"desc" + b"\0" * 4 + struct.pack(">I", len(description) + 1) + description + b"\0"
        + b"\0" * 8 + b"\0" * 2 + b"\0" + b"\0" * 67
    )
    text = b"text" + b"\0" * 4 + b"public domain test profile\0"
    tags = [
        (b"desc", desc), (b"cprt", text), (b"wtpt", xyz(0.96420, 1.0, 0.82491)),
        (b"rXYZ", xyz(0.60974, 0.31111, 0.01947)), (b"gXYZ", xyz(0.20528, 0.62567, 0.06087)),
        (b"bXYZ", xyz(0.14919, 0.06322, 0.74457)),
        (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve),
    ]
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    table = struct.pack(">I", len(tags))
    body = b""
    for sig, data in tags:
        while len(data) % 4:
            data += b"\0"
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = 128 + len(table) + len(body)
    header = (
        struct.pack(">I", size) + b"none" + bytes([2, 0x10, 0, 0]) + b"mntr" + b"RGB " + b"XYZ "
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + b"APPL" + b"\0" * 4 + b"\0" * 4
        + b"\0" * 4 + b"\0" * 8 + b"\0" * 4 + _s15(0.9642) + _s15(1.0) + _s15(0.82491)
        + b"\0" * 4 + b"\0" * 16 + b"\0" * 28
    )
    assert len(header) == 128, len(header)
    return header + table + body


def adobe_to_srgb(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """The textbook conversion (Adobe RGB → XYZ D65 → linear sRGB → sRGB), independent of lcms."""
    lin = [(c / 255) ** (563 / 256) for c in rgb]
    m1 = ((0.5767309, 0.1855540, 0.1881852), (0.2973769, 0.6273491, 0.0752741),
          (0.0270343, 0.0706872, 0.9911085))
    m2 = ((3.2404542, -1.5371385, -0.4985314), (-0.9692660, 1.8760108, 0.0415560),
          (0.0556434, -0.2040259, 1.0572252))
    xyz = [sum(m1[i][j] * lin[j] for j in range(3)) for i in range(3)]
    srgb = [min(1.0, max(0.0, sum(m2[i][j] * xyz[j] for j in range(3)))) for i in range(3)]

    def gamma(v: float) -> int:
        v = 12.92 * v if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055
        return round(v * 255)

    return gamma(srgb[0]), gamma(srgb[1]), gamma(srgb[2])


def adobe_rgb_jpeg(color: tuple[int, int, int], size: tuple[int, int] = (300, 300)) -> bytes:
    return encode(Image.new("RGB", size, color), "JPEG", quality=98, icc_profile=adobe_rgb_icc())


def palette_png_with_transparency(size: tuple[int, int] = (400, 300)) -> bytes:
    """Left half transparent (palette index 0), right half opaque blue (index 1)."""
    im = Image.new("P", size, 0)
    im.putpalette([0, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    im.paste(1, (size[0] // 2, 0, size[0], size[1]))
    return encode(im, "PNG", transparency=0)


def rgba_png(size: tuple[int, int], seed: int = 1) -> bytes:
    """A noisy RGBA PNG whose left half is fully transparent."""
    rng = random.Random(seed)
    im = Image.frombytes("RGBA", size, rng.randbytes(size[0] * size[1] * 4))
    im.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1]))
    return encode(im, "PNG", compress_level=1)


def png16(size: tuple[int, int] = (300, 300)) -> bytes:
    """A 16-bit greyscale PNG: left half 65535 (white), right half 32896 (mid grey, 128 in 8 bits)."""
    im = Image.new("I;16", size, 65535)
    im.paste(32896, (size[0] // 2, 0, size[0], size[1]))
    return encode(im, "PNG")


def animated_gif(size: tuple[int, int] = (300, 300)) -> bytes:
    frames = [Image.new("RGB", size, c).convert("P") for c in (RED, GREEN, BLUE)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def webp(size: tuple[int, int] = (600, 400), color: tuple[int, int, int] = GREEN) -> bytes:
    return encode(Image.new("RGB", size, color), "WEBP", lossless=True)


def truncated_jpeg() -> bytes:
    data = noisy_jpeg((400, 400))
    return data[: len(data) // 2]


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width``×``height``, with one tiny IDAT: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


TEXT_NAMED_JPG = b"<html><body>404 Not Found</body></html>\n"


def decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 8) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))
