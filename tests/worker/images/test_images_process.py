"""The Pillow normalisation on real files: every mode, orientation, colour space and hostile header."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from tests.worker.images import samples as s
from worker.feed.channels.google import IMAGE_500_FROM as GOOGLE_500_FROM
from worker.images.process import (
    MAX_UPSCALE,
    ImageRejected,
    Outcome,
    ProcessOptions,
    _target_scale,
    channel_rules,
    fitness,
    process_image,
)

TODAY = date(2026, 11, 29)


def options(channels: tuple[str, ...] = ("google", "meta", "naver"), **kw: object) -> ProcessOptions:
    return ProcessOptions(rules=channel_rules(apparel=bool(kw.pop("apparel", False)), on=kw.pop("on", TODAY)),  # type: ignore[arg-type]
                          channels=channels, **kw)  # type: ignore[arg-type]


def test_large_jpeg_fits_the_max_edge_and_keeps_its_aspect() -> None:
    out = process_image(s.noisy_jpeg((3000, 2000)), options())
    im = s.decode(out.data)
    assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (1600, 1067))
    assert (out.width, out.height, out.source_width, out.source_height) == (1600, 1067, 3000, 2000)
    assert out.fitness == {"google": True, "google_tsv": True, "meta": True, "naver": True,
                           "naver_summary": True}


def test_shop_max_edge_is_honoured() -> None:
    out = process_image(s.jpeg((1200, 900)), options(max_edge=800))
    assert (out.width, out.height) == (800, 600)
    assert s.close(s.decode(out.data).getpixel((400, 300)), s.RED)


def test_exif_orientation_is_applied() -> None:
    out = process_image(s.exif_rotated_jpeg(), options(channels=()))
    im = s.decode(out.data)
    assert im.size == (100, 200)
    assert s.close(im.getpixel((50, 20)), s.RED, 30)
    assert s.close(im.getpixel((50, 180)), s.BLUE, 30)
    assert not im.getexif()  # and the orientation tag is gone with the rest


def test_exif_orientation_with_reduced_scale_decoding() -> None:
    # Stored 3200 × 1600 (left red, right blue), orientation 6: displayed 1600 × 3200, red on top;
    # the JPEG is decoded at half scale on the way to 800 × 1600.
    im = s.halves((3200, 1600), s.RED, s.BLUE)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = process_image(s.encode(im, "JPEG", quality=90, exif=exif.tobytes()), options())
    shown = s.decode(out.data)
    assert shown.size == (800, 1600) == (out.width, out.height)
    assert (out.source_width, out.source_height) == (1600, 3200)
    assert s.close(shown.getpixel((400, 200)), s.RED, 30)
    assert s.close(shown.getpixel((400, 1400)), s.BLUE, 30)


def test_cmyk_jpeg_becomes_rgb() -> None:
    im = s.decode(process_image(s.cmyk_jpeg(), options()).data)
    assert im.mode == "RGB"
    assert s.close(im.getpixel((150, 100)), s.RED, 10)


@pytest.mark.parametrize("color", [(150, 100, 80), (60, 120, 200), (128, 128, 128)])
def test_adobe_rgb_is_converted_to_srgb_and_the_profile_dropped(color: tuple[int, int, int]) -> None:
    out = process_image(s.adobe_rgb_jpeg(color), options())
    im = s.decode(out.data)
    assert "icc_profile" not in im.info
    expected = s.adobe_to_srgb(color)
    assert s.close(im.getpixel((150, 150)), expected, 6), (im.getpixel((150, 150)), expected)


def test_adobe_rgb_conversion_changes_saturated_colours() -> None:
    # Without the conversion the pixel would stay at its Adobe RGB numbers.
    color = (60, 120, 200)
    im = s.decode(process_image(s.adobe_rgb_jpeg(color), options()).data)
    assert not s.close(im.getpixel((150, 150)), color, 6)


def test_palette_transparency_becomes_white() -> None:
    im = s.decode(process_image(s.palette_png_with_transparency(), options()).data)
    assert im.size == (400, 300)
    assert s.close(im.getpixel((50, 150)), (255, 255, 255), 3)
    assert s.close(im.getpixel((350, 150)), s.BLUE, 10)


def test_rgba_png_alpha_is_composited_on_white() -> None:
    im = s.decode(process_image(s.rgba_png((400, 400)), options()).data)
    assert s.close(im.getpixel((60, 200)), (255, 255, 255), 3)


def test_16_bit_png_is_scaled_not_clipped() -> None:
    im = s.decode(process_image(s.png16(), options()).data)
    assert im.mode == "RGB"
    assert s.close(im.getpixel((50, 150)), (255, 255, 255), 3)
    assert s.close(im.getpixel((250, 150)), (128, 128, 128), 3)


def test_animated_gif_gives_its_first_frame() -> None:
    out = process_image(s.animated_gif(), options())
    assert out.source_format == "GIF"
    assert s.close(s.decode(out.data).getpixel((150, 150)), s.RED, 10)


def test_webp_is_accepted() -> None:
    out = process_image(s.webp(), options())
    assert (out.source_format, out.width, out.height) == ("WEBP", 600, 400)
    assert s.close(s.decode(out.data).getpixel((300, 200)), s.GREEN, 10)


def test_truncated_jpeg_is_corrupt() -> None:
    with pytest.raises(ImageRejected) as caught:
        process_image(s.truncated_jpeg(), options())
    assert caught.value.outcome is Outcome.CORRUPT
    assert "JPEG cannot be decoded" in str(caught.value)


@pytest.mark.parametrize("size", [(100_000, 100_000), (10_000, 10_000), (8_001, 8_000)])
def test_bomb_header_is_refused_before_decoding(size: tuple[int, int]) -> None:
    with pytest.raises(ImageRejected) as caught:
        process_image(s.png_claiming(*size), options())
    assert caught.value.outcome is Outcome.BOMB
    assert "decompression bomb" in str(caught.value) or "ceiling" in str(caught.value)


def test_text_named_jpg_is_not_an_image() -> None:
    with pytest.raises(ImageRejected) as caught:
        process_image(s.TEXT_NAMED_JPG, options())
    assert caught.value.outcome is Outcome.NOT_IMAGE
    assert "<html>" in str(caught.value)


def test_eps_is_never_parsed() -> None:
    # Pillow would hand EPS to Ghostscript; we do not even recognise it.
    with pytest.raises(ImageRejected) as caught:
        process_image(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", options())
    assert caught.value.outcome is Outcome.NOT_IMAGE


def test_output_carries_no_metadata() -> None:
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    data = s.encode(Image.new("RGB", (600, 600), s.RED), "JPEG", exif=exif.tobytes(),
                    icc_profile=s.adobe_rgb_icc(), comment=b"secret")
    out = process_image(data, options())
    im = s.decode(out.data)
    assert not im.getexif()
    assert "icc_profile" not in im.info and "comment" not in im.info and "exif" not in im.info
    assert b"CameraMaker" not in out.data and b"secret" not in out.data


def test_progressive_jpeg_on_request() -> None:
    out = process_image(s.jpeg((600, 600)), options(progressive=True))
    assert s.decode(out.data).info.get("progressive") == 1
    assert "progressive" not in s.decode(process_image(s.jpeg((600, 600)), options()).data).info


def test_square_canvas_pads_with_white() -> None:
    out = process_image(s.jpeg((800, 400)), options(square=True))
    im = s.decode(out.data)
    assert im.size == (800, 800) == (out.width, out.height)
    assert s.close(im.getpixel((400, 50)), (255, 255, 255), 3)
    assert s.close(im.getpixel((400, 400)), s.RED, 10)
    assert s.close(im.getpixel((400, 750)), (255, 255, 255), 3)


def test_small_upscale_lifts_an_image_over_metas_minimum() -> None:
    out = process_image(s.jpeg((450, 450)), options(channels=("meta",)))
    assert (out.width, out.height) == (500, 500)
    assert out.fitness["meta"] and 1.0 < out.scale <= MAX_UPSCALE


def test_thumbnail_is_never_blown_up_and_is_unfit() -> None:
    out = process_image(s.jpeg((125, 125)), options(channels=("google", "meta", "naver")))
    assert (out.width, out.height) == (125, 125)
    assert out.fitness["google"] is True
    assert out.fitness["meta"] is False and out.fitness["naver"] is False


def test_upscale_only_for_the_shops_own_channels() -> None:
    # 450 px is fine for naver (300) and google (100): a meta-less shop gets no enlargement.
    out = process_image(s.jpeg((450, 450)), options(channels=("google", "naver")))
    assert (out.width, out.height) == (450, 450)
    assert out.fitness["meta"] is False


def test_google_minimum_depends_on_apparel_and_date() -> None:
    before = GOOGLE_500_FROM.replace(day=30)
    assert channel_rules(apparel=False, on=before)["google"].min_width == 100
    assert channel_rules(apparel=True, on=before)["google"].min_width == 250
    assert channel_rules(apparel=False, on=GOOGLE_500_FROM)["google"].min_width == 500
    assert channel_rules(apparel=True, on=GOOGLE_500_FROM)["google"].min_width == 500
    data = s.jpeg((300, 300))
    assert process_image(data, options(on=before)).fitness["google"] is True
    assert process_image(data, options(on=before, apparel=True)).fitness["google"] is True
    assert process_image(s.jpeg((200, 200)), options(on=before, apparel=True)).fitness["google"] is False
    assert process_image(data, options(on=GOOGLE_500_FROM)).fitness["google"] is False


def test_naver_maximum() -> None:
    rules = channel_rules(apparel=False, on=TODAY)
    assert fitness(4000, 4000, rules)["naver"] is True
    assert fitness(4001, 3000, rules)["naver"] is False
    assert fitness(4001, 3000, rules)["meta"] is True


@given(
    width=st.integers(1, 9000), height=st.integers(1, 9000), max_edge=st.integers(100, 8000),
    square=st.booleans(), channels=st.sets(st.sampled_from(["google", "meta", "naver"])),
)
def test_scale_never_passes_max_edge_nor_the_upscale_limit(
    width: int, height: int, max_edge: int, square: bool, channels: set[str]
) -> None:
    opts = options(channels=tuple(sorted(channels)), max_edge=max_edge, square=square)
    scale = _target_scale(width, height, opts)
    assert 0 < scale <= MAX_UPSCALE
    assert max(width, height) * scale <= max_edge + 1e-6
    if max(width, height) > max_edge:
        assert scale < 1


_SEEDS = [
    s.jpeg((40, 30)), s.encode(Image.new("RGBA", (30, 20), (1, 2, 3, 100)), "PNG"),
    s.animated_gif((20, 20)), s.webp((30, 30)), s.encode(Image.new("RGB", (20, 20)), "BMP"),
    s.encode(Image.new("RGB", (20, 20)), "TIFF"), s.png16((20, 20)), s.cmyk_jpeg((30, 30)),
]


@given(
    seed=st.sampled_from(_SEEDS),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 10_000)),
)
def test_damaged_files_are_rejected_by_name_never_crash(
    seed: bytes, edits: list[tuple[int, int]], cut: int | None
) -> None:
    # One bad image must never fail the task: whatever the bytes, a result or a named outcome.
    data = bytearray(seed)
    for position, value in edits:
        data[position % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    try:
        out = process_image(bytes(data), options(max_edge=100))
    except ImageRejected as exc:
        assert exc.outcome in (Outcome.NOT_IMAGE, Outcome.CORRUPT, Outcome.BOMB)
        return
    im = s.decode(out.data)
    assert (im.format, im.mode) == ("JPEG", "RGB")
    assert max(im.size) <= 100 * MAX_UPSCALE + 1


@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_rejected_by_name(data: bytes) -> None:
    with pytest.raises(ImageRejected):
        process_image(data, options())
