"""Bad uploads: each is refused from its size or header with a message saying what was wrong and
what is allowed, and the next good upload still works."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from explorer import data, uploads

ALLOWED = ("PNG, JPEG, WebP, BMP or GIF", "at most 20 MB", "40 megapixels", "sides at most 10:1")


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(width: int, height: int, body: bytes | None = None, color_type: int = 0) -> bytes:
    """A PNG declaring width×height 8-bit pixels; by default a real zero-filled body built row
    by row (a decompression bomb: tiny file, huge image), else ``body`` as the IDAT."""
    if body is None:
        comp = zlib.compressobj(9)
        row = b"\0" * (width * (1 if color_type == 0 else 3) + 1)
        body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def _jpeg_header(width: int, height: int, progressive: bool, sampling: int = 0x11) -> bytes:
    """The markers of a 3-component JPEG up to its first scan (enough for PIL to open it)."""
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"".join(
        struct.pack(">BBB", i, sampling if i == 1 else 0x11, 0) for i in (1, 2, 3))
    marker = b"\xff\xc2" if progressive else b"\xff\xc0"
    sos = struct.pack(">B", 3) + b"".join(struct.pack(">BB", i, 0) for i in (1, 2, 3)) + b"\x00\x3f\x00"
    return (b"\xff\xd8" + marker + struct.pack(">H", len(sof) + 2) + sof
            + b"\xff\xda" + struct.pack(">H", len(sos) + 2) + sos + b"\x00" * 64 + b"\xff\xd9")


def _refused(blob: bytes, name: str, dataset: str = "imagenet") -> str:
    t0 = time.perf_counter()
    with pytest.raises(uploads.UploadError) as err:
        uploads.load_upload(blob, name, dataset)
    assert time.perf_counter() - t0 < 5.0
    return str(err.value)


def _still_works(dataset: str = "mnist") -> None:
    img = Image.new("L", (40, 30), 200)
    x = uploads.load_upload(_encode(img, "PNG"), "ok.png", dataset)
    info = data.DATASETS[dataset]
    assert x.shape == (1, info.channels, *info.size)
    assert torch.allclose(x, torch.full_like(x, 200 / 255), atol=1e-6)


def _says_what_is_allowed(msg: str) -> None:
    for part in ALLOWED:
        assert part in msg, (part, msg)


def test_oversize_bytes():
    msg = _refused(b"\x89PNG\r\n\x1a\n" + bytes(20 * 2**20 + 1), "huge.png")
    assert "huge.png is 20.0 MB; uploads must be at most 20 MB" in msg
    _says_what_is_allowed(msg)
    _still_works()


def test_zero_bytes():
    msg = _refused(b"", "empty.png")
    assert "empty.png is empty (0 bytes)" in msg
    _says_what_is_allowed(msg)
    _still_works()


@pytest.mark.parametrize("width, height, dataset", [
    (2_000_000, 1, "mnist"),      # resized to 28 × 56,000,000 before the bound (3 GB)
    (1, 2_000_000, "mnist"),
    (39_999_999, 1, "imagenet"),  # ended in OverflowError
    (1, 1_000_000, "fashion_mnist"),
])
def test_extreme_aspect_ratio_refused_before_decoding(width, height, dataset):
    blob = _png(width, height, body=zlib.compress(b"\0" * 64))  # the header is all that is read
    msg = _refused(blob, "strip.png", dataset)
    ratio = max(width, height) // min(width, height)
    assert f"strip.png is {width}×{height} pixels, {ratio:,}:1" in msg
    assert "the longer side may be at most 10 times the shorter one" in msg
    _says_what_is_allowed(msg.replace("Allowed", "allowed"))
    _still_works(dataset)


def test_aspect_ratio_boundary():
    # 10:1 is accepted (and decoded, white in the centre square); 11:1 is not.
    img = Image.new("L", (280, 28), 255)
    x = uploads.load_upload(_encode(img, "PNG"), "ten.png", "mnist")
    assert x.shape == (1, 1, 28, 28) and x.min() > 0.99
    msg = _refused(_encode(Image.new("L", (308, 28), 255), "PNG"), "eleven.png", "mnist")
    assert "308×28 pixels, 11:1" in msg


def test_huge_dimensions_in_header():
    msg = _refused(_png(60000, 60000, body=zlib.compress(b"\0" * 16)), "bomb.png")
    assert "declares too many pixels" in msg and "at most 40 megapixels" in msg
    _says_what_is_allowed(msg)
    _still_works()


def test_decompression_bomb_with_a_real_body():
    blob = _png(8000, 8000)  # 64 megapixels of zeros: a few tens of kB
    assert len(blob) < 200_000
    msg = _refused(blob, "zeros.png")
    assert "zeros.png is 8000×8000 = 64.0 megapixels; images may have at most 40 megapixels once decoded" in msg
    _says_what_is_allowed(msg)
    _still_works()


def test_truncated_png():
    rng = np.random.default_rng(3)
    blob = _encode(Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)), "PNG")
    msg = _refused(blob[: len(blob) * 2 // 3], "cut.png")
    assert "cut.png is truncated or corrupt" in msg and "upload a complete file" in msg
    _says_what_is_allowed(msg)
    _still_works()


@pytest.mark.parametrize("blob, name", [
    (_encode(Image.new("L", (8, 8)), "TIFF"), "really-a-tiff.png"),
    (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n" * 20, "doc.jpg"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 200, "broken.jpg"),
])
def test_wrong_format_behind_an_accepted_extension(blob, name):
    msg = _refused(blob, name)
    assert f"{name} is not an image in an accepted format; allowed: " in msg
    _says_what_is_allowed(msg)
    _still_works()


def test_wrong_extension():
    msg = _refused(_encode(Image.new("L", (8, 8)), "PNG"), "photo.heic")
    assert "extension .heic is not accepted; allowed: .png, .jpg, .jpeg, .webp, .bmp, .gif" in msg
    _says_what_is_allowed(msg)


def test_jpeg_header_over_the_jpeg_limit():
    msg = _refused(_jpeg_header(10000, 8500, progressive=False), "85mp.jpg")
    assert "10000×8500 = 85.0 megapixels; JPEG photos may have at most 80 megapixels" in msg
    _says_what_is_allowed(msg)
    _still_works()


def test_progressive_jpeg_over_the_memory_budget():
    # 8000×6000 progressive, no chroma subsampling: libjpeg would hold 2 bytes × 3 × 48 M
    # coefficients (288 MB) whatever the output scale.
    msg = _refused(_jpeg_header(8000, 6000, progressive=True), "prog.jpg")
    assert "prog.jpg (8000×6000, progressive JPEG) would need about" in msg
    assert "one upload may use at most 256 MiB" in msg and "baseline JPEG" in msg
    _says_what_is_allowed(msg)
    # The same size as a baseline JPEG fits the budget (it decodes at 1/8 scale).
    with Image.open(io.BytesIO(_jpeg_header(8000, 6000, progressive=False))) as im:
        plan = uploads.plan_decode(im, "base.jpg", 224)
    assert (plan.jpeg_scale, plan.decoded) == (8, (1000, 750))
    assert plan.memory_bytes <= uploads.UPLOAD_MEMORY_BUDGET
    _still_works()


def test_webp_over_its_pixel_limit():
    img = Image.new("RGB", (4200, 4000), (10, 20, 30))
    msg = _refused(_encode(img, "WEBP", quality=10, method=0), "big.webp")
    assert "4200×4000 = 16.8 megapixels; WebP images may have at most 15 megapixels" in msg
    _says_what_is_allowed(msg)
    _still_works()


@pytest.fixture(scope="module")
def phone_jpeg() -> tuple[bytes, Image.Image]:
    """A 48-megapixel (8000×6000) JPEG: a smooth gradient, as a phone photo of the sky."""
    g = Image.linear_gradient("L").resize((8000, 6000))
    rgb = Image.merge("RGB", (g, g.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                              Image.new("L", g.size, 90)))
    blob = _encode(rgb, "JPEG", quality=90)
    small = rgb.resize((400, 300), Image.Resampling.BOX)
    return blob, small


def test_48_megapixel_jpeg_accepted_and_downscaled_while_decoding(phone_jpeg):
    blob, small = phone_jpeg
    assert len(blob) <= uploads.MAX_UPLOAD_BYTES
    with Image.open(io.BytesIO(blob)) as im:
        plan = uploads.plan_decode(im, "phone.jpg", 224)
    # decoded at 1/8 scale: 0.75 megapixels, far under the 40-megapixel limit
    assert plan.jpeg_scale == 8 and plan.decoded == (1000, 750) and plan.reduce == 1
    x = uploads.load_upload(blob, "phone.jpg", "imagenet")
    assert x.shape == (1, 3, 224, 224)
    # The same picture shrunk without the JPEG shortcut gives the same input (smooth image).
    ref = uploads.load_upload(_encode(small, "PNG"), "ref.png", "imagenet")
    assert (x - ref).abs().max() < 6 / 255
    y = uploads.load_upload(blob, "phone.jpg", "mnist")
    assert y.shape == (1, 1, 28, 28)
    _still_works()


def test_phone_mpo_photo_decodes_as_a_jpeg():
    # Many phones write MPO (a JPEG followed by more pictures); it is shrunk while decoding too.
    g = Image.linear_gradient("L").resize((4000, 3000))
    buf = io.BytesIO()
    g.convert("RGB").save(buf, "MPO", save_all=True, append_images=[g.convert("RGB")], quality=80)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        assert im.format == "MPO"
        plan = uploads.plan_decode(im, "phone.jpg", 224)
    assert plan.format == "JPEG" and plan.jpeg_scale == 4 and plan.decoded == (1000, 750)
    x = uploads.load_upload(buf.getvalue(), "phone.jpg", "imagenet")
    assert x.shape == (1, 3, 224, 224)
    # the gradient runs top (black) to bottom (white); the centre crop keeps that order
    assert x[0, 0, 5].mean() < x[0, 0, -5].mean() - 0.3


@pytest.mark.parametrize("mode", ["RGBA", "I;16", "P"])
def test_strip_wise_shrinking_equals_converting_the_whole_image(mode):
    """A large image is converted and box-shrunk in strips; the result equals converting the
    whole image first (alpha composited on white, 16-bit scaled by 65535)."""
    rng = np.random.default_rng(5)
    h, w = 2600, 1900
    if mode == "RGBA":
        arr = rng.integers(0, 256, (h // 50, w // 50, 4), dtype=np.uint8)
        img = Image.fromarray(arr, "RGBA").resize((w, h), Image.Resampling.NEAREST)
    elif mode == "I;16":
        arr = (rng.integers(0, 65536, (h // 50, w // 50))).astype(np.uint16)
        img = Image.fromarray(arr).resize((w, h), Image.Resampling.NEAREST)
        assert img.mode.startswith("I;16")
    else:
        img = Image.fromarray(rng.integers(0, 256, (h // 50, w // 50, 3), dtype=np.uint8)).resize(
            (w, h), Image.Resampling.NEAREST).quantize(32)
    blob = _encode(img, "PNG")
    with Image.open(io.BytesIO(blob)) as im:
        plan = uploads.plan_decode(im, "x.png", 224)
    assert plan.reduce == 4  # 1900 // 448
    x = uploads.load_upload(blob, "x.png", "imagenet")
    whole = uploads._to_mode(Image.open(io.BytesIO(blob)), 3)
    ref = uploads.load_upload(_encode(whole.reduce(4), "PNG"), "ref.png", "imagenet")
    assert torch.allclose(x, ref, atol=1 / 255)
