"""Uploaded images: limits checked from the header, decoding within a memory budget, and
conversion to a dataset's input.

Every limit is checked from the file's size and header, before a pixel is decoded:

- the file: at most ``MAX_UPLOAD_BYTES`` (20 MB) of PNG, JPEG, WebP, BMP or GIF (first frame);
- the shape: the longer side at most ``MAX_UPLOAD_ASPECT`` (10) times the shorter one. The
  model sees a centre square, and without this bound a 1×2,000,000 strip would be resized to
  28×56,000,000 before the crop;
- the decoded size: at most ``MAX_UPLOAD_PIXELS`` (40 megapixels). A JPEG is decoded at 1/2,
  1/4 or 1/8 of its size (libjpeg's DCT scaling, PIL's ``draft``) whenever the smaller image
  still covers twice the model input, so a 48-megapixel phone photo decodes to 0.75 megapixels;
  the 40-megapixel limit then applies to that decoded size. A JPEG header may declare at most
  ``MAX_JPEG_PIXELS`` (80 megapixels);
- the memory: the decoder's working memory, estimated from the header (measured factors in
  ``_BYTES_PER_PIXEL``; progressive JPEGs hold all their DCT coefficients), plus the shrunken
  copy must fit ``UPLOAD_MEMORY_BUDGET`` (256 MiB). ``benchmarks/bench_upload.py`` measures
  the peak memory of the worst accepted uploads against it.

After decoding, the image is shrunk by an integer box filter to at least twice the model
input and converted to the dataset's channels, strip by strip, so only the decoded image, one
strip and the shrunken copy are alive at once. Then it is resized (shorter side) and
centre-cropped to the dataset's size.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageFile, UnidentifiedImageError

from .data import get_dataset

__all__ = [
    "ALLOWED_UPLOADS", "MAX_JPEG_PIXELS", "MAX_UPLOAD_ASPECT", "MAX_UPLOAD_BYTES",
    "MAX_UPLOAD_PIXELS", "MAX_WEBP_PIXELS", "UPLOAD_EXTENSIONS", "UPLOAD_FORMATS",
    "UPLOAD_MEMORY_BUDGET", "DecodePlan", "UploadError", "load_upload", "plan_decode",
]


class UploadError(ValueError):
    """An uploaded file was refused; the message says why and what is accepted."""


MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_PIXELS = 40_000_000
MAX_UPLOAD_ASPECT = 10
MAX_JPEG_PIXELS = 80_000_000
UPLOAD_MEMORY_BUDGET = 256 * 1024 * 1024
UPLOAD_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP", "BMP": "BMP", "GIF": "GIF"}
UPLOAD_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")

# Peak bytes the decoder holds per decoded pixel, measured with PIL 13 alone on 40-megapixel
# files (benchmarks/README.md, "Uploads"): PIL keeps 3- and 4-channel images at 4 bytes a
# pixel; the WebP decoder holds its canvas, the decoded frame and PIL's copy at once (~15.5).
_BYTES_PER_PIXEL = {"WEBP": 16}
_DEFAULT_BYTES_PER_PIXEL = 4
_STRIP_PIXELS = 500_000  # pixels converted at a time while shrinking
_STRIP_BYTES = 24 * _STRIP_PIXELS  # a strip and its copies (RGBA: convert, white, composite, RGB)

MAX_WEBP_PIXELS = (UPLOAD_MEMORY_BUDGET - _STRIP_BYTES) // (_BYTES_PER_PIXEL["WEBP"] + 1)
MAX_WEBP_PIXELS = MAX_WEBP_PIXELS // 1_000_000 * 1_000_000  # a round figure for the messages

ALLOWED_UPLOADS = (
    f"allowed: PNG, JPEG, WebP, BMP or GIF (first frame), at most "
    f"{MAX_UPLOAD_BYTES // 2**20} MB, at most {MAX_UPLOAD_PIXELS // 1_000_000} megapixels "
    f"once decoded (WebP: {MAX_WEBP_PIXELS // 1_000_000}; JPEG photos up to "
    f"{MAX_JPEG_PIXELS // 1_000_000} megapixels are shrunk while decoding), sides at most "
    f"{MAX_UPLOAD_ASPECT}:1"
)


@dataclass(frozen=True)
class DecodePlan:
    """How an accepted upload is decoded: its declared size, the JPEG scale (1 = full size),
    the decoded size, the box-filter factor applied afterwards, and the estimated peak bytes."""

    format: str
    declared: tuple[int, int]
    jpeg_scale: int
    decoded: tuple[int, int]
    reduce: int
    memory_bytes: int


def _jpeg_coefficient_bytes(im, size: tuple[int, int]) -> int:
    """Bytes libjpeg holds for a progressive or multi-scan JPEG: every DCT coefficient
    (2 bytes) of every component, at full size whatever the output scale."""
    layers = getattr(im, "layer", None) or [("", 1, 1, 0)] * max(1, getattr(im, "layers", 3))
    hmax = max(layer[1] for layer in layers) or 1
    vmax = max(layer[2] for layer in layers) or 1
    w, h = size
    total = 0
    for _, hs, vs, _ in layers:
        total += (math.ceil(w * hs / hmax / 8) * 8) * (math.ceil(h * vs / vmax / 8) * 8)
    return 2 * total


def plan_decode(im, name: str, target_side: int) -> DecodePlan:
    """Check an opened (not yet decoded) image against the limits; UploadError if refused.

    ``target_side`` is the model input's shorter side: decoding aims at twice that.
    """
    # MPO (a JPEG with extra pictures, as many phones write) decodes as a JPEG.
    fmt = "JPEG" if im.format == "MPO" else (im.format or "?")
    w, h = im.size
    if w < 1 or h < 1:
        raise UploadError(f"{name} has no pixels ({w}×{h}); {ALLOWED_UPLOADS}")
    ratio = max(w, h) / min(w, h)
    if ratio > MAX_UPLOAD_ASPECT:
        raise UploadError(
            f"{name} is {w}×{h} pixels, {ratio:,.0f}:1; the longer side may be at most "
            f"{MAX_UPLOAD_ASPECT} times the shorter one (the model sees a centre square); "
            f"crop it first. {ALLOWED_UPLOADS[0].upper()}{ALLOWED_UPLOADS[1:]}"
        )
    work = 2 * target_side
    scale = 1
    if fmt == "JPEG":
        if w * h > MAX_JPEG_PIXELS:
            raise UploadError(
                f"{name} is {w}×{h} = {w * h / 1e6:.1f} megapixels; JPEG photos may have at "
                f"most {MAX_JPEG_PIXELS // 1_000_000} megapixels. Shrink it first; "
                f"{ALLOWED_UPLOADS}"
            )
        for s in (8, 4, 2):
            if min(w, h) // s >= work:
                scale = s
                break
    dw, dh = (w + scale - 1) // scale, (h + scale - 1) // scale
    limit = MAX_WEBP_PIXELS if fmt == "WEBP" else MAX_UPLOAD_PIXELS
    if dw * dh > limit:
        kind = "WebP images" if fmt == "WEBP" else "images"
        raise UploadError(
            f"{name} is {w}×{h} = {w * h / 1e6:.1f} megapixels; {kind} may have at most "
            f"{limit // 1_000_000} megapixels once decoded (a guard against decompression "
            f"bombs and memory exhaustion); {ALLOWED_UPLOADS}"
        )
    reduce = max(1, min(dw, dh) // work)
    per_pixel = _BYTES_PER_PIXEL.get(fmt, _DEFAULT_BYTES_PER_PIXEL)
    memory = dw * dh * per_pixel + math.ceil(dw / reduce) * math.ceil(dh / reduce) * 4
    memory += _STRIP_BYTES
    if fmt == "JPEG" and (im.info.get("progressive") or im.info.get("progression")):
        memory += _jpeg_coefficient_bytes(im, (w, h))
    if memory > UPLOAD_MEMORY_BUDGET:
        progressive = fmt == "JPEG" and (im.info.get("progressive") or im.info.get("progression"))
        raise UploadError(
            f"{name} ({w}×{h}, {'progressive ' if progressive else ''}"
            f"{UPLOAD_FORMATS.get(fmt, fmt)}) would need about {memory / 2**20:.0f} MiB to decode; "
            f"one upload may use at most {UPLOAD_MEMORY_BUDGET // 2**20} MiB. Save it smaller "
            f"(or as a baseline JPEG); {ALLOWED_UPLOADS}"
        )
    return DecodePlan(fmt, (w, h), scale, (dw, dh), reduce, memory)


def load_upload(data: bytes, filename: str, dataset: str, invert: bool = False) -> torch.Tensor:
    """Decode an uploaded image into ``(1, C, H, W)`` in [0, 1] for ``dataset``'s models.

    Converted to the dataset's channels (grayscale via luminance; transparency composited
    on white; EXIF rotation applied), resized (shorter side) and centre-cropped to its size.
    ``invert=True`` returns ``1 - x`` (dark strokes on white paper -> MNIST's white on black).
    UploadError, saying what was wrong and what is allowed (``ALLOWED_UPLOADS``): files over
    20 MB, unknown extensions, non-images, images beyond the shape, pixel or memory limits of
    the module docstring (checked from the header, before decoding), undecodable or
    truncated files.
    """
    info = get_dataset(dataset)
    name = filename or "upload"
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UploadError(f"{name}: expected the file's bytes, got {type(data).__name__}")
    size = len(data)
    if size > MAX_UPLOAD_BYTES:
        raise UploadError(
            f"{name} is {size / 2**20:.1f} MB; uploads must be at most "
            f"{MAX_UPLOAD_BYTES // 2**20} MB ({ALLOWED_UPLOADS})"
        )
    if size == 0:
        raise UploadError(f"{name} is empty (0 bytes); {ALLOWED_UPLOADS}")
    ext = os.path.splitext(name.lower())[1]
    if ext not in UPLOAD_EXTENSIONS:
        raise UploadError(
            f"{name}: extension {ext or '(none)'} is not accepted; allowed: "
            f"{', '.join(UPLOAD_EXTENSIONS)} ({ALLOWED_UPLOADS})"
        )
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        # Image.open reads the header only; every limit is checked before any decoding.
        im = Image.open(io.BytesIO(bytes(data)), formats=list(UPLOAD_FORMATS))
    except UnidentifiedImageError:
        raise UploadError(f"{name} is not an image in an accepted format; {ALLOWED_UPLOADS}") from None
    except Image.DecompressionBombError as exc:
        raise UploadError(
            f"{name} declares too many pixels (decompression bomb: {exc}); at most "
            f"{MAX_UPLOAD_PIXELS / 1e6:.0f} megapixels are accepted; {ALLOWED_UPLOADS}"
        ) from None
    except Exception as exc:  # malformed headers raise assorted errors
        raise UploadError(f"{name} could not be read ({exc}); {ALLOWED_UPLOADS}") from None
    # Lazy: torchvision pulls in torch._dynamo (~2 s of the app's first load); only uploads need it.
    from torchvision import transforms as T

    side = min(info.size)
    with im:
        plan = plan_decode(im, name, side)
        prep = T.Compose([T.Resize(side), T.CenterCrop(info.size), T.ToTensor()])
        try:  # decoding, shrinking and the final resize, all within the plan's bounds
            x = prep(_decode_small(im, plan, info.channels)).unsqueeze(0).clamp_(0.0, 1.0)
        except UploadError as exc:
            raise UploadError(f"{name} was refused while decoding: {exc}; {ALLOWED_UPLOADS}") from None
        except MemoryError:
            raise UploadError(
                f"{name}: the server has not enough free memory to decode it now; try again "
                f"or upload a smaller image ({ALLOWED_UPLOADS})"
            ) from None
        except Exception as exc:  # truncated data, corrupt streams, decoder limits
            raise UploadError(
                f"{name} is truncated or corrupt ({exc}); upload a complete file ({ALLOWED_UPLOADS})"
            ) from None
    return 1.0 - x if invert else x


_EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
}


def _decode_small(im, plan: DecodePlan, channels: int):
    """Decode ``im`` as planned and return it shrunk by ``plan.reduce``, in 'L' or 'RGB',
    upright (EXIF orientation applied)."""
    im.seek(0)  # first frame of an animation
    if plan.jpeg_scale > 1:
        w, h = plan.declared
        im.draft(im.mode, (w // plan.jpeg_scale, h // plan.jpeg_scale))
    im.load()
    if im.size != plan.decoded:  # the decoder disagrees with the plan: never exceed it
        raise UploadError(f"decoded to {im.size[0]}×{im.size[1]}, not the planned size")
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # an unreadable EXIF block only loses the rotation
        orientation = 1
    top = _integer_top(im)
    k = plan.reduce
    w, h = im.size
    # Strips of whole k-row blocks: the box filter sees the same blocks as on the whole image,
    # and converting (alpha compositing makes four copies) never holds more than one strip.
    out = Image.new("L" if channels == 1 else "RGB", ((w + k - 1) // k, (h + k - 1) // k))
    rows = max(k, _STRIP_PIXELS // max(w, 1) // k * k)
    for y in range(0, h, rows):
        strip = _to_mode(im.crop((0, y, w, min(h, y + rows))), channels, top)
        out.paste(strip.reduce(k) if k > 1 else strip, (0, y // k))
    transpose = _EXIF_TRANSPOSE.get(orientation)
    return out.transpose(transpose) if transpose is not None else out


def _integer_top(im) -> float | None:
    """The white level of a 16/32-bit or float image (65535 for 16-bit and for values above
    255, else 255), from the whole image so that every strip is scaled alike; None otherwise."""
    if im.mode not in ("I;16", "I;16B", "I;16L", "I", "F"):
        return None
    if im.mode.startswith("I;16"):
        return 65535.0
    return 65535.0 if im.getextrema()[1] > 255 else 255.0


def _to_mode(im, channels: int, top: float | None = None):
    """A PIL image in 'L' (channels=1) or 'RGB' (channels=3); alpha composited on white.
    ``top``: the white level of an integer or float image (:func:`_integer_top`)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = top or _integer_top(im)
        im = Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    return im.convert("L" if channels == 1 else "RGB")
