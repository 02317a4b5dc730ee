"""Dataset registry, bundled samples, `data import`, and upload validation (explorer.data)."""

from __future__ import annotations

import gzip
import io
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explorer import data, data_import, uploads
from explorer.__main__ import main as cli_main

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------


def test_registry_shapes_and_class_counts():
    expected = {
        "mnist": (1, (28, 28), 10),
        "fashion_mnist": (1, (28, 28), 10),
        "gtsrb": (3, (32, 32), 43),
        "flowers102": (3, (128, 128), 102),
        "imagenet": (3, (224, 224), 1000),
    }
    assert list(data.DATASETS) == list(expected)
    for key, (channels, size, classes) in expected.items():
        info = data.DATASETS[key]
        assert (info.channels, info.size, info.num_classes) == (channels, size, classes), key
        assert len(set(info.class_names)) == classes, f"{key}: duplicate class names"
        assert len(info.mean) == len(info.std) == channels


def test_imagenet_class_names_offline():
    names = data.DATASETS["imagenet"].class_names
    assert names[0] == "tench" and names[281] == "tabby" and names[967] == "espresso"


@pytest.mark.parametrize(
    "key, eps, attack_k, eval_k, step, steps",
    [
        ("mnist", 0.3, 200, 100, 0.01, 100),
        ("fashion_mnist", 0.1, 100, 100, 0.01, 100),
        ("gtsrb", 8 / 255, 100, 100, 1 / 255, 100),
        ("flowers102", 8 / 255, 1000, 1000, 1 / 255, 100),
        ("imagenet", 8 / 255, 1000, 1000, 0.5 / 255, 300),
    ],
)
def test_paper_defaults_follow_spec_table(key, eps, attack_k, eval_k, step, steps):
    d = data.DATASETS[key].defaults
    assert d.epsilon == pytest.approx(eps)
    assert (d.attack_k, d.eval_k, d.steps, d.w) == (attack_k, eval_k, steps, 1)
    assert d.step_size == pytest.approx(step)
    h, w = data.DATASETS[key].size
    assert 1 <= d.attack_k <= h * w and 1 <= d.eval_k <= h * w


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(ValueError, match="known datasets: mnist, fashion_mnist"):
        data.get_dataset("cifar10")


# --------------------------------------------------------------------------------------
# Bundled samples
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["mnist", "fashion_mnist"])
def test_bundled_samples_cover_every_class(key):
    s = data.load_samples(key)
    info = data.DATASETS[key]
    assert s.x.shape == (len(s), 1, *info.size) and s.x.dtype == torch.float32
    assert 0.0 <= s.x.min() and s.x.max() <= 1.0 and s.x.max() > 0.9
    counts = torch.bincount(s.labels, minlength=info.num_classes)
    assert counts.min() >= 10
    assert all(isinstance(i, int) and 0 <= i < 10000 for i in s.indices)
    assert len(set(s.indices)) == len(s)
    # Names carry the class; labels agree with the JSON manifest.
    import json

    manifest = json.loads((ROOT / "assets" / f"{key}-samples.json").read_text())
    assert [it["index"] for it in manifest["items"]] == s.indices
    assert [it["label"] for it in manifest["items"]] == s.labels.tolist()


@pytest.mark.parametrize("key", ["mnist", "fashion_mnist"])
def test_bundled_samples_equal_the_test_set_images(key):
    try:
        ds = data.load_test_set(key)
    except data.DatasetUnavailable:
        pytest.skip(f"{key} test set not present on this machine")
    s = data.load_samples(key)
    for j in (0, len(s) // 2, len(s) - 1):
        x, y = ds[s.indices[j]]
        assert y == s.labels[j].item()
        assert torch.equal(x, s.x[j])


def test_bundled_imagenet_photos():
    s = data.load_samples("imagenet")
    names = data.DATASETS["imagenet"].class_names
    assert s.x.shape[1:] == (3, 224, 224) and len(s) >= 4
    assert 0.0 <= s.x.min() and s.x.max() <= 1.0
    by_name = {n.split(" ")[0]: int(l) for n, l in zip(s.names, s.labels)}
    assert names[by_name["chelsea"]] == "tabby"
    assert names[by_name["coffee"]] == "espresso"
    assert by_name["astronaut"] == -1  # no ImageNet class applies


@pytest.mark.parametrize("key", ["gtsrb", "flowers102"])
def test_missing_dataset_says_where_files_go(key, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_DATA", str(tmp_path))
    for call in (lambda: data.load_samples(key), lambda: data.load_test_set(key)):
        with pytest.raises(data.DatasetUnavailable) as err:
            call()
        msg = str(err.value)
        assert "not downloaded" in msg
        assert f"python -m explorer data import {key} DIR" in msg
        assert str(tmp_path) in msg


# --------------------------------------------------------------------------------------
# `data import` with a tiny fake IDX set
# --------------------------------------------------------------------------------------


def _idx_images(arr: np.ndarray) -> bytes:
    n, h, w = arr.shape
    return struct.pack(">IIII", 2051, n, h, w) + arr.astype(np.uint8).tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def _write_fake_idx(folder: Path, n_train=6, n_test=4, gz=("train-images-idx3-ubyte",)):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    ytr = np.arange(n_train) % 10
    yte = (np.arange(n_test) * 3) % 10
    blobs = {
        "train-images-idx3-ubyte": _idx_images(train),
        "train-labels-idx1-ubyte": _idx_labels(ytr),
        "t10k-images-idx3-ubyte": _idx_images(test),
        "t10k-labels-idx1-ubyte": _idx_labels(yte),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in blobs.items():
        if name in gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
        else:
            (folder / name).write_bytes(blob)
    return test, yte


@pytest.mark.parametrize("key", ["mnist", "fashion_mnist"])
def test_data_import_puts_idx_files_where_the_loader_finds_them(key, tmp_path, capsys):
    src, root = tmp_path / "download" / "nested", tmp_path / "root"
    test, labels = _write_fake_idx(src, gz=("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
    with pytest.raises(data.DatasetUnavailable):
        data.load_test_set(key, root=root)
    assert cli_main(["data", "import", key, str(tmp_path / "download"), "--data-root", str(root),
                     "--unverified"]) == 0
    assert "imported" in capsys.readouterr().out
    ds = data.load_test_set(key, root=root)
    assert len(ds) == len(test)
    for i in range(len(test)):
        x, y = ds[i]
        assert x.shape == (1, 28, 28)
        assert y == labels[i]
        assert torch.equal(x, torch.from_numpy(test[i]).float().div(255).unsqueeze(0))
    assert len(data.load_train_set(key, root=root)) == 6


def test_data_import_refuses_missing_and_malformed_files(tmp_path, capsys):
    src = tmp_path / "src"
    _write_fake_idx(src)
    (src / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ValueError, match="lacks t10k-labels-idx1-ubyte"):
        data_import.import_dataset("mnist", src, root=tmp_path / "root")
    # wrong magic number
    (src / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2051, 4) + bytes(4))
    with pytest.raises(ValueError, match="not an IDX labels file"):
        data_import.import_dataset("mnist", src, root=tmp_path / "root")
    # truncated images
    (src / "t10k-labels-idx1-ubyte").write_bytes(_idx_labels(np.zeros(4)))
    blob = (src / "t10k-images-idx3-ubyte").read_bytes()
    (src / "t10k-images-idx3-ubyte").write_bytes(blob[:-10])
    with pytest.raises(ValueError, match="truncated"):
        data_import.import_dataset("mnist", src, root=tmp_path / "root")
    # CLI: a clear one-line error and exit status 2, nothing written
    assert cli_main(["data", "import", "mnist", str(tmp_path / "nope"), "--data-root", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "is not a folder" in err
    assert not (tmp_path / "r").exists()


def test_cli_error_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "explorer", "data", "import", "mnist", str(tmp_path / "missing")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "is not a folder" in proc.stderr


# --------------------------------------------------------------------------------------
# Uploads
# --------------------------------------------------------------------------------------


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width×height pixels, with a tiny (invalid) body."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt, ext", [("PNG", ".png"), ("JPEG", ".jpg"), ("WEBP", ".webp"), ("BMP", ".bmp")])
def test_upload_formats_accepted(fmt, ext):
    img = Image.new("RGB", (40, 40), (128, 128, 128))
    x = uploads.load_upload(_encode(img, fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {})), f"a{ext}", "mnist")
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32
    assert torch.allclose(x, torch.full_like(x, 128 / 255), atol=2 / 255)
    y = uploads.load_upload(_encode(img, fmt), f"b{ext.upper()}", "imagenet")
    assert y.shape == (1, 3, 224, 224)


def test_upload_gif_uses_first_frame():
    black, white = Image.new("L", (30, 30), 0), Image.new("L", (30, 30), 255)
    buf = io.BytesIO()
    black.save(buf, format="GIF", save_all=True, append_images=[white], duration=100)
    x = uploads.load_upload(buf.getvalue(), "anim.gif", "mnist")
    assert x.shape == (1, 1, 28, 28)
    assert x.max() < 0.01  # the black first frame, not the white second one


def test_upload_rgba_composited_on_white_and_grayscale_to_rgb():
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))  # fully transparent
    rgba.paste((0, 0, 0, 255), (16, 16, 48, 48))  # opaque black square in the middle
    x = uploads.load_upload(_encode(rgba, "PNG"), "t.png", "imagenet")
    assert x.shape == (1, 3, 224, 224)
    assert torch.allclose(x[0, :, 2, 2], torch.ones(3))  # transparent -> white
    assert torch.allclose(x[0, :, 112, 112], torch.zeros(3))  # opaque black stays black
    gray = Image.new("L", (50, 50), 200)
    y = uploads.load_upload(_encode(gray, "PNG"), "g.png", "imagenet")
    assert torch.allclose(y[0, 0], y[0, 1]) and torch.allclose(y[0, 1], y[0, 2])
    assert torch.allclose(y, torch.full_like(y, 200 / 255), atol=1e-6)
    rgb = Image.new("RGB", (50, 50), (255, 0, 0))
    z = uploads.load_upload(_encode(rgb, "PNG"), "r.png", "mnist")  # luminance of pure red
    assert torch.allclose(z, torch.full_like(z, 76 / 255), atol=1.5 / 255)


def test_upload_resize_and_centre_crop():
    # 4:1 wide image: outer quarters black, middle half white -> the square centre crop is white.
    img = Image.new("L", (400, 100), 0)
    img.paste(255, (100, 0, 300, 100))
    x = uploads.load_upload(_encode(img, "PNG"), "wide.png", "mnist")
    assert x.shape == (1, 1, 28, 28)
    assert x.min() > 0.99
    inverted = uploads.load_upload(_encode(img, "PNG"), "wide.png", "mnist", invert=True)
    assert torch.allclose(inverted, 1 - x)


def test_upload_jpeg_exif_rotation_applied():
    img = Image.new("L", (60, 30), 0)
    img.paste(255, (0, 0, 30, 30))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise for display
    x = uploads.load_upload(_encode(img, "JPEG", exif=exif, quality=95), "r.jpg", "imagenet")
    # displayed upright the image is 30 wide × 60 tall, white on top: the centre crop shows
    # the white/black boundary as a horizontal line.
    top, bottom = x[0, 0, :50].mean(), x[0, 0, -50:].mean()
    assert top > 0.9 and bottom < 0.1


def test_upload_too_large_refused():
    blob = b"\x89PNG\r\n\x1a\n" + bytes(20 * 1024 * 1024)
    with pytest.raises(uploads.UploadError, match=r"at most 20 MB"):
        uploads.load_upload(blob, "big.png", "mnist")


@pytest.mark.parametrize("side", [7000, 60000])
def test_upload_decompression_bomb_refused_from_header(side):
    blob = _png_header_only(side, side)
    assert len(blob) < 200
    t0 = time.perf_counter()
    with pytest.raises(uploads.UploadError, match="megapixels") as err:
        uploads.load_upload(blob, "bomb.png", "imagenet")
    assert time.perf_counter() - t0 < 2.0
    assert "40" in str(err.value)


def test_upload_truncated_png_refused():
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    blob = _encode(img, "PNG")
    with pytest.raises(uploads.UploadError, match="truncated or corrupt"):
        uploads.load_upload(blob[: len(blob) // 2], "cut.png", "imagenet")


def test_upload_non_images_refused():
    with pytest.raises(uploads.UploadError, match="not an image"):
        uploads.load_upload(b"hello, this is a text file\n" * 10, "notes.png", "mnist")
    with pytest.raises(uploads.UploadError, match="extension .tiff is not accepted; allowed: .png"):
        uploads.load_upload(_encode(Image.new("L", (8, 8)), "TIFF"), "a.tiff", "mnist")
    with pytest.raises(uploads.UploadError, match="empty"):
        uploads.load_upload(b"", "e.png", "mnist")
    with pytest.raises(ValueError, match="unknown dataset"):
        uploads.load_upload(_encode(Image.new("L", (8, 8)), "PNG"), "a.png", "svhn")


def test_upload_error_is_a_value_error():
    assert issubclass(uploads.UploadError, ValueError)
    assert issubclass(data.DatasetUnavailable, RuntimeError)


def _fake_flowers(src: Path, monkeypatch) -> None:
    """A 3-image Flowers-102 folder; its .mat files stand in for the published ones (whose md5
    the import pins) by patching the pinned checksums."""
    import hashlib

    from scipy.io import savemat

    from explorer import data_import

    (src / "jpg").mkdir(parents=True)
    for i in (1, 2, 3):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(src / "jpg" / f"image_{i:05d}.jpg")
    savemat(src / "imagelabels.mat", {"labels": np.array([[1, 5, 5]])})
    savemat(src / "setid.mat", {"trnid": np.array([[1]]), "valid": np.array([[2]]),
                                "tstid": np.array([[3]])})
    monkeypatch.setattr(data_import, "FLOWERS_MAT_MD5", {
        name: hashlib.md5((src / name).read_bytes()).hexdigest()
        for name in ("imagelabels.mat", "setid.mat")})


def test_data_import_copies_an_image_folder_into_place(tmp_path, monkeypatch):
    src = tmp_path / "flowers"
    _fake_flowers(src, monkeypatch)
    dest = data_import.import_dataset("flowers102", src, root=tmp_path / "root")
    assert dest == tmp_path / "root" / "flowers-102"
    assert (dest / "jpg" / "image_00001.jpg").is_file() and (dest / "setid.mat").is_file()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is empty"):
        data_import.import_dataset("gtsrb", tmp_path / "empty", root=tmp_path / "root")


def test_imagenet_class_names_match_torchvision():
    """The shipped class-name list (read without importing torchvision.models) is torchvision's."""
    from torchvision.models import ResNet18_Weights

    from explorer import data

    assert data.DATASETS["imagenet"].class_names == list(
        ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def test_moved_names_stay_reachable_from_data():
    """Upload and import code lives in its own modules; ``data.NAME`` still reaches it."""
    from explorer import data_import, uploads

    assert uploads.load_upload is uploads.load_upload and uploads.UploadError is uploads.UploadError
    assert data_import.import_dataset is data_import.import_dataset
    assert uploads.MAX_UPLOAD_BYTES == 20 * 2**20
    assert not hasattr(data, "no_such_name")
    for name in data.__all__:
        assert getattr(data, name) is not None, name


@pytest.mark.parametrize("key", ["mnist", "fashion_mnist"])
def test_the_test_set_count_from_the_headers_equals_the_loaded_set(key, tmp_path, capsys):
    src, root = tmp_path / "download", tmp_path / "root"
    assert data.test_set_count(key, root=root) is None  # no files
    test, _ = _write_fake_idx(src, n_test=7, gz=())
    assert cli_main(["data", "import", key, str(src), "--data-root", str(root),
                     "--unverified"]) == 0
    assert data.test_set_count(key, root=root) == len(data.load_test_set(key, root=root)) == 7
    # a damaged file: no count (load_test_set then says why)
    raw = data.expected_location(data.get_dataset(key), root)
    (raw / "train-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, 6) + bytes(2))
    assert data.test_set_count(key, root=root) is None
    with pytest.raises(data.DatasetUnavailable):
        data.load_test_set(key, root=root)
    assert data.test_set_count("imagenet", root=root) is None  # not from headers
