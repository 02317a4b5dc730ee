"""Datasets: registry, paper defaults, loaders, bundled samples and upload validation.

Every image leaves this module as a float tensor in ``[0, 1]``: a batch is ``(N, C, H, W)``,
a single test-set item is ``(C, H, W)``. Normalisation belongs to the model wrappers
(``explorer.models``), never to the data.

Where files live: ``$EXPLORER_DATA`` if set, else ``data/`` at the repository root (git-ignored).
torchvision's layouts are used under that root (``MNIST/raw``, ``FashionMNIST/raw``,
``gtsrb/...``, ``flowers-102/...``), so ``torchvision.datasets`` finds imported files.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSETS_DIR = REPO_ROOT / "assets"


class DatasetUnavailable(RuntimeError):
    """The files of a dataset are not on this machine (and could not be downloaded)."""


class UploadError(ValueError):
    """An uploaded file was refused; the message says why and what is accepted."""


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaperDefaults:
    """Attack and evaluation settings of the paper for one dataset (SPEC §5).

    epsilon and step_size are in ``[0, 1]`` pixel units; attack_k / eval_k are pixel counts;
    steps is the number of attack iterations P; w the LENS window radius.
    """

    epsilon: float
    attack_k: int
    eval_k: int
    step_size: float
    steps: int
    w: int = 1
    notes: str = ""


@dataclass(frozen=True)
class DatasetInfo:
    """What the rest of the project needs to know about a dataset."""

    key: str
    name: str
    channels: int
    size: tuple[int, int]
    class_names: list[str] = field(repr=False)
    defaults: PaperDefaults
    description: str
    mean: tuple[float, ...] = field(repr=False, default=())
    std: tuple[float, ...] = field(repr=False, default=())
    torchvision_name: str | None = None  # class in torchvision.datasets
    import_hint: str = ""  # what `data import` expects for this dataset

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
GTSRB_CLASSES = [
    "Speed limit (20km/h)", "Speed limit (30km/h)", "Speed limit (50km/h)",
    "Speed limit (60km/h)", "Speed limit (70km/h)", "Speed limit (80km/h)",
    "End of speed limit (80km/h)", "Speed limit (100km/h)", "Speed limit (120km/h)",
    "No passing", "No passing for vehicles over 3.5 t", "Right-of-way at the next intersection",
    "Priority road", "Yield", "Stop", "No vehicles", "Vehicles over 3.5 t prohibited",
    "No entry", "General caution", "Dangerous curve to the left",
    "Dangerous curve to the right", "Double curve", "Bumpy road", "Slippery road",
    "Road narrows on the right", "Road work", "Traffic signals", "Pedestrians",
    "Children crossing", "Bicycles crossing", "Beware of ice/snow", "Wild animals crossing",
    "End of all speed and passing limits", "Turn right ahead", "Turn left ahead",
    "Ahead only", "Go straight or right", "Go straight or left", "Keep right", "Keep left",
    "Roundabout mandatory", "End of no passing", "End of no passing by vehicles over 3.5 t",
]
FLOWERS102_CLASSES = [
    "pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea",
    "english marigold", "tiger lily", "moon orchid", "bird of paradise", "monkshood",
    "globe thistle", "snapdragon", "colt's foot", "king protea", "spear thistle",
    "yellow iris", "globe-flower", "purple coneflower", "peruvian lily", "balloon flower",
    "giant white arum lily", "fire lily", "pincushion flower", "fritillary", "red ginger",
    "grape hyacinth", "corn poppy", "prince of wales feathers", "stemless gentian",
    "artichoke", "sweet william", "carnation", "garden phlox", "love in the mist",
    "mexican aster", "alpine sea holly", "ruby-lipped cattleya", "cape flower",
    "great masterwort", "siam tulip", "lenten rose", "barbeton daisy", "daffodil",
    "sword lily", "poinsettia", "bolero deep blue", "wallflower", "marigold", "buttercup",
    "oxeye daisy", "common dandelion", "petunia", "wild pansy", "primula", "sunflower",
    "pelargonium", "bishop of llandaff", "gaura", "geranium", "orange dahlia",
    "pink-yellow dahlia", "cautleya spicata", "japanese anemone", "black-eyed susan",
    "silverbush", "californian poppy", "osteospermum", "spring crocus", "bearded iris",
    "windflower", "tree poppy", "gazania", "azalea", "water lily", "rose", "thorn apple",
    "morning glory", "passion flower", "lotus", "toad lily", "anthurium", "frangipani",
    "clematis", "hibiscus", "columbine", "desert-rose", "tree mallow", "magnolia",
    "cyclamen", "watercress", "canna lily", "hippeastrum", "bee balm", "ball moss",
    "foxglove", "bougainvillea", "camellia", "mallow", "mexican petunia", "bromelia",
    "blanket flower", "trumpet creeper", "blackberry lily",
]


def _imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names, in index order.

    Read from ``assets/imagenet_classes.json`` (written once from torchvision's weight metadata,
    ``ResNet18_Weights.IMAGENET1K_V1.meta["categories"]``): importing ``torchvision.models`` here
    would add seconds to every start of the app.
    """
    names = json.loads((ASSETS_DIR / "imagenet_classes.json").read_text(encoding="utf-8"))
    if len(names) != 1000:
        raise RuntimeError(f"{ASSETS_DIR / 'imagenet_classes.json'} must list 1000 class names")
    return names


_IDX_HINT = (
    "the four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
    "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; plain or .gz)"
)

DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        key="mnist",
        name="MNIST",
        channels=1,
        size=(28, 28),
        class_names=MNIST_CLASSES,
        defaults=PaperDefaults(epsilon=0.3, attack_k=200, eval_k=100, step_size=0.01, steps=100),
        description="Handwritten digits 0-9, 28×28 grayscale (60k train / 10k test).",
        mean=(0.1307,),
        std=(0.3081,),
        torchvision_name="MNIST",
        import_hint=_IDX_HINT,
    ),
    "fashion_mnist": DatasetInfo(
        key="fashion_mnist",
        name="Fashion-MNIST",
        channels=1,
        size=(28, 28),
        class_names=FASHION_CLASSES,
        defaults=PaperDefaults(
            epsilon=0.1, attack_k=100, eval_k=100, step_size=0.01, steps=100,
            notes="α is not given by the paper; 0.01 is this project's choice.",
        ),
        description="Zalando clothing images in 10 classes, 28×28 grayscale (60k / 10k).",
        mean=(0.2860,),
        std=(0.3530,),
        torchvision_name="FashionMNIST",
        import_hint=_IDX_HINT,
    ),
    "gtsrb": DatasetInfo(
        key="gtsrb",
        name="GTSRB",
        channels=3,
        size=(32, 32),
        class_names=GTSRB_CLASSES,
        defaults=PaperDefaults(
            epsilon=8 / 255, attack_k=100, eval_k=100, step_size=1 / 255, steps=100,
            notes="α and P are not given by the paper; 1/255 and 100 are this project's choice.",
        ),
        description="German Traffic Sign Recognition Benchmark, 43 classes, resized to 32×32 RGB.",
        mean=(0.3403, 0.3121, 0.3214),
        std=(0.2724, 0.2608, 0.2669),
        torchvision_name="GTSRB",
        import_hint="the unpacked torchvision GTSRB folder (containing GTSRB/Training and "
        "GTSRB/Final_Test with GT-final_test.csv)",
    ),
    "flowers102": DatasetInfo(
        key="flowers102",
        name="Flowers-102",
        channels=3,
        size=(128, 128),
        class_names=FLOWERS102_CLASSES,
        defaults=PaperDefaults(
            epsilon=8 / 255, attack_k=1000, eval_k=1000, step_size=1 / 255, steps=100,
            notes="The paper's 'Flower' is the 17-class Oxford set; torchvision ships Flowers-102.",
        ),
        description="Oxford Flowers-102, 102 flower species, resized and centre-cropped to 128×128 RGB.",
        mean=(0.4330, 0.3819, 0.2964),
        std=(0.2945, 0.2465, 0.2734),
        torchvision_name="Flowers102",
        import_hint="the folder with jpg/, imagelabels.mat and setid.mat",
    ),
    "imagenet": DatasetInfo(
        key="imagenet",
        name="ImageNet",
        channels=3,
        size=(224, 224),
        class_names=_imagenet_classes(),
        defaults=PaperDefaults(
            epsilon=8 / 255, attack_k=1000, eval_k=1000, step_size=0.5 / 255, steps=300,
            notes="The paper sweeps ε over 1, 2, 4, 8 (/255) and reports w = 1, 2, 3.",
        ),
        description="ImageNet-1k (ILSVRC 2012) classes, 224×224 RGB; bundled photos from scikit-image.",
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        torchvision_name="ImageNet",
        import_hint="an ImageNet validation folder in torchvision's ImageNet layout "
        "(ILSVRC2012_img_val.tar and ILSVRC2012_devkit_t12.tar.gz)",
    ),
}


def get_dataset(dataset: str) -> DatasetInfo:
    """The registry entry for ``dataset``; ValueError naming the known keys otherwise."""
    try:
        return DATASETS[dataset]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown dataset {dataset!r}; known datasets: {', '.join(DATASETS)}"
        ) from None


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where dataset files live: ``root`` if given, else ``$EXPLORER_DATA``, else ``data/``."""
    if root is not None:
        return Path(root)
    env = os.environ.get("EXPLORER_DATA")
    return Path(env) if env else REPO_ROOT / "data"


def import_command(dataset: str) -> str:
    return f"python -m explorer data import {dataset} DIR"


def _unavailable(info: DatasetInfo, root: Path, why: str) -> DatasetUnavailable:
    where = _expected_location(info, root)
    return DatasetUnavailable(
        f"{info.name} is not downloaded ({why}). Put {info.import_hint} in {where}, "
        f"or run `{import_command(info.key)}` with DIR the folder that holds them."
    )


def _expected_location(info: DatasetInfo, root: Path) -> Path:
    if info.key in ("mnist", "fashion_mnist"):
        return root / info.torchvision_name / "raw"
    if info.key == "gtsrb":
        return root / "gtsrb"
    if info.key == "flowers102":
        return root / "flowers-102"
    return root / "imagenet"


# --------------------------------------------------------------------------------------
# Test / train sets
# --------------------------------------------------------------------------------------


def _transform(info: DatasetInfo):
    from torchvision import transforms as T

    steps = []
    if info.key in ("gtsrb", "flowers102", "imagenet"):
        side = min(info.size)
        steps += [T.Resize(side), T.CenterCrop(info.size)]
    if info.channels == 3:
        steps.append(T.Lambda(lambda im: im.convert("RGB")))
    steps.append(T.ToTensor())
    return T.Compose(steps)


def _load_split(dataset: str, train: bool, root, download: bool):
    info = get_dataset(dataset)
    base = data_root(root)
    import torchvision.datasets as tvd

    cls = getattr(tvd, info.torchvision_name)
    tf = _transform(info)
    try:
        if info.key in ("mnist", "fashion_mnist"):
            return cls(str(base), train=train, transform=tf, download=download)
        if info.key == "gtsrb":
            return cls(str(base), split="train" if train else "test", transform=tf, download=download)
        if info.key == "flowers102":
            return cls(str(base), split="train" if train else "test", transform=tf, download=download)
        return cls(str(base / "imagenet"), split="train" if train else "val", transform=tf)
    except (RuntimeError, OSError, FileNotFoundError) as exc:
        why = "files not found" if not download else f"download failed: {exc}"
        raise _unavailable(info, base, why) from None


def load_test_set(dataset: str, root=None, download: bool = False):
    """The test split as a torch Dataset of (``(C, H, W)`` tensor in [0, 1], int label).

    Offline and without files: DatasetUnavailable saying where the files go.
    ``download=True`` lets torchvision fetch the files (needs internet).
    """
    return _load_split(dataset, False, root, download)


def load_train_set(dataset: str, root=None, download: bool = False):
    """The training split, same item format as :func:`load_test_set`."""
    return _load_split(dataset, True, root, download)


def as_tensors(ds, limit: int | None = None, start: int = 0
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole dataset (or its ``limit`` items from position ``start``) as ``x (N, C, H, W)`` in
    [0, 1], labels (N,).

    MNIST-style datasets are read straight from their uint8 arrays (fast); others item by item.
    """
    n = len(ds) if limit is None else min(start + limit, len(ds))
    data = getattr(ds, "data", None)
    targets = getattr(ds, "targets", None)
    if isinstance(data, torch.Tensor) and data.dim() == 3 and targets is not None:
        x = data[start:n].unsqueeze(1).float().div_(255.0)
        y = torch.as_tensor(targets[start:n]).long()
        return x, y
    xs, ys = [], []
    for i in range(start, n):
        xi, yi = ds[i]
        xs.append(xi)
        ys.append(int(yi))
    return torch.stack(xs), torch.tensor(ys, dtype=torch.long)


# --------------------------------------------------------------------------------------
# Importing local files (`python -m explorer data import DATASET DIR`)
# --------------------------------------------------------------------------------------

_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_IDX_MAGIC = {"images": 2051, "labels": 2049}


def _find_idx(src: Path, stem: str) -> Path | None:
    """``stem`` or ``stem.gz`` anywhere under ``src`` (also the 't10k-images.idx3-ubyte' spelling)."""
    spellings = {stem, stem.replace("-idx", ".idx")}
    for path in sorted(src.rglob("*")):
        if not path.is_file():
            continue
        name = path.name[:-3] if path.name.endswith(".gz") else path.name
        if name in spellings:
            return path
    return None


def _read_maybe_gz(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path} is a damaged .gz file ({exc}); re-download it") from None
    return raw


def _check_idx(blob: bytes, stem: str, path: Path) -> None:
    kind = "images" if "images" in stem else "labels"
    ndim = 3 if kind == "images" else 1
    if len(blob) < 4 + 4 * ndim:
        raise ValueError(f"{path} is too short to be an IDX {kind} file")
    magic = int.from_bytes(blob[:4], "big")
    if magic != _IDX_MAGIC[kind]:
        raise ValueError(
            f"{path} is not an IDX {kind} file (magic number {magic}, expected {_IDX_MAGIC[kind]})"
        )
    dims = [int.from_bytes(blob[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if len(blob) != expected:
        raise ValueError(
            f"{path} is truncated or padded: {len(blob)} bytes, expected {expected} for shape {dims}"
        )


def import_dataset(dataset: str, src: str | os.PathLike, root=None) -> Path:
    """Copy local dataset files from ``src`` into the data root, where the loaders look.

    MNIST / Fashion-MNIST: the four IDX files, plain or ``.gz``, anywhere under ``src``; they
    are checked (magic number, size) and written uncompressed to ``ROOT/<Name>/raw``.
    GTSRB / Flowers-102 / ImageNet: the folder is copied as is to the torchvision location.
    Returns the destination folder. ValueError when files are missing or malformed.
    """
    info = get_dataset(dataset)
    src = Path(src)
    if not src.is_dir():
        raise ValueError(f"{src} is not a folder; give the folder that holds the {info.name} files")
    base = data_root(root)
    dest = _expected_location(info, base)
    if info.key in ("mnist", "fashion_mnist"):
        found = {stem: _find_idx(src, stem) for stem in _IDX_FILES}
        missing = [stem for stem, path in found.items() if path is None]
        if missing:
            raise ValueError(
                f"{src} lacks {', '.join(missing)} (plain or .gz); {info.name} needs {_IDX_HINT}"
            )
        blobs = {}
        for stem, path in found.items():
            blob = _read_maybe_gz(path)
            _check_idx(blob, stem, path)
            blobs[stem] = blob
        dest.mkdir(parents=True, exist_ok=True)
        for stem, blob in blobs.items():
            (dest / stem).write_bytes(blob)
        # torchvision's legacy processed/ cache would shadow new raw files: drop it.
        shutil.rmtree(dest.parent / "processed", ignore_errors=True)
        return dest
    if not any(src.iterdir()):
        raise ValueError(f"{src} is empty; {info.name} needs {info.import_hint}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dest, dirs_exist_ok=True)
    return dest


def dataset_status(dataset: str, root=None) -> str:
    """'available' or the DatasetUnavailable message (without raising)."""
    try:
        load_test_set(dataset, root)
    except DatasetUnavailable as exc:
        return str(exc)
    return "available"


# --------------------------------------------------------------------------------------
# Bundled samples (assets/)
# --------------------------------------------------------------------------------------


@dataclass
class Samples:
    """A batch of sample images: x ``(N, C, H, W)`` in [0, 1]; labels (N,) with -1 = unknown;
    a display name and the test-set index (None when not from the test set) per image."""

    x: torch.Tensor
    labels: torch.Tensor
    names: list[str]
    indices: list[int | None]

    def __len__(self) -> int:
        return len(self.names)


SAMPLES_PER_CLASS = 20

# skimage.data photos bundled for ImageNet, with the ImageNet-1k class where one applies.
IMAGENET_PHOTOS: tuple[tuple[str, str | None, str], ...] = (
    ("chelsea", "tabby", "Chelsea the cat (scikit-image)"),
    ("coffee", "espresso", "a cup of coffee (scikit-image)"),
    ("astronaut", None, "astronaut Eileen Collins (scikit-image; no ImageNet class)"),
    ("rocket", None, "a rocket on its launch pad (scikit-image; no exact ImageNet class)"),
    ("camera", "tripod", "the cameraman and his camera on a tripod, grayscale (scikit-image)"),
    ("hubble_deep_field", None, "Hubble deep field (scikit-image; no ImageNet class)"),
)


def _samples_paths(dataset: str) -> tuple[Path, Path]:
    return ASSETS_DIR / f"{dataset}-samples.npz", ASSETS_DIR / f"{dataset}-samples.json"


def build_bundled_samples(root=None, per_class: int = SAMPLES_PER_CLASS) -> list[Path]:
    """(Re)write the bundled samples in assets/ from the local datasets and scikit-image.

    MNIST-style: the first ``per_class`` test images of every class, in test-set order
    (no selection by any model), stored as uint8 in one compressed .npz plus a JSON manifest.
    ImageNet: scikit-image photos, resized (shorter side) and centre-cropped to 224×224 PNGs.
    """
    from PIL import Image

    written = []
    ASSETS_DIR.mkdir(exist_ok=True)
    for key in ("mnist", "fashion_mnist"):
        info = DATASETS[key]
        ds = load_test_set(key, root)
        targets = torch.as_tensor(ds.targets)
        chosen = []
        for c in range(info.num_classes):
            chosen += torch.nonzero(targets == c).flatten()[:per_class].tolist()
        chosen.sort()
        images = ds.data[chosen].numpy().astype(np.uint8)
        labels = targets[chosen].numpy().astype(np.int64)
        npz, manifest = _samples_paths(key)
        np.savez_compressed(npz, images=images, labels=labels, indices=np.array(chosen))
        manifest.write_text(json.dumps({
            "dataset": key,
            "source": f"torchvision.datasets.{info.torchvision_name} test split",
            "selection": f"the first {per_class} test images of each class, in test-set order",
            "items": [
                {"index": int(i), "label": int(l), "class": info.class_names[int(l)]}
                for i, l in zip(chosen, labels)
            ],
        }, indent=1) + "\n")
        written += [npz, manifest]

    import skimage.data
    from torchvision import transforms as T

    info = DATASETS["imagenet"]
    folder = ASSETS_DIR / "imagenet"
    folder.mkdir(exist_ok=True)
    prep = T.Compose([T.Resize(min(info.size)), T.CenterCrop(info.size)])
    items = []
    for func, cls, description in IMAGENET_PHOTOS:
        arr = getattr(skimage.data, func)()
        img = Image.fromarray(arr).convert("RGB")
        path = folder / f"{func}.png"
        prep(img).save(path, optimize=True)
        label = info.class_names.index(cls) if cls else -1
        items.append({"file": path.name, "name": func, "label": label, "class": cls,
                      "description": description})
        written.append(path)
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({
        "dataset": "imagenet",
        "source": f"scikit-image data (skimage.data), resized and centre-cropped to {info.size}",
        "items": items,
    }, indent=1) + "\n")
    written.append(manifest)
    return written


def load_samples(dataset: str, root=None) -> Samples:
    """The bundled sample images of ``dataset`` (offline).

    GTSRB / Flowers-102 ship no samples: their first test images per class are used when the
    dataset is present, otherwise DatasetUnavailable with the import command.
    """
    info = get_dataset(dataset)
    if info.key in ("mnist", "fashion_mnist"):
        npz, _ = _samples_paths(info.key)
        with np.load(npz) as f:
            images, labels, indices = f["images"], f["labels"], f["indices"]
        x = torch.from_numpy(images).float().div_(255.0).unsqueeze(1)
        names = [f"test #{int(i)}: {info.class_names[int(l)]}" for i, l in zip(indices, labels)]
        return Samples(x, torch.from_numpy(labels).long(), names, [int(i) for i in indices])
    if info.key == "imagenet":
        from PIL import Image

        folder = ASSETS_DIR / "imagenet"
        manifest = json.loads((folder / "manifest.json").read_text())
        xs, labels, names = [], [], []
        for item in manifest["items"]:
            with Image.open(folder / item["file"]) as im:
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
            xs.append(torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0))
            labels.append(item["label"])
            names.append(f"{item['name']}" + (f" ({item['class']})" if item["class"] else ""))
        return Samples(torch.stack(xs), torch.tensor(labels), names, [None] * len(names))
    # GTSRB / Flowers: from the local test set when present.
    ds = load_test_set(info.key, root)
    per_class, seen, xs, labels, idx = 2, {}, [], [], []
    for i in range(len(ds)):
        xi, yi = ds[i]
        if seen.get(int(yi), 0) < per_class:
            seen[int(yi)] = seen.get(int(yi), 0) + 1
            xs.append(xi)
            labels.append(int(yi))
            idx.append(i)
        if len(seen) == info.num_classes and all(v >= per_class for v in seen.values()):
            break
    names = [f"test #{i}: {info.class_names[l]}" for i, l in zip(idx, labels)]
    return Samples(torch.stack(xs), torch.tensor(labels), names, idx)


# --------------------------------------------------------------------------------------
# Uploads
# --------------------------------------------------------------------------------------

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_PIXELS = 40_000_000
UPLOAD_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP", "BMP": "BMP", "GIF": "GIF"}
UPLOAD_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
_ALLOWED_TEXT = "PNG, JPEG, WebP, BMP or GIF (first frame), at most 20 MB and 40 megapixels"


def load_upload(data: bytes, filename: str, dataset: str, invert: bool = False) -> torch.Tensor:
    """Decode an uploaded image into ``(1, C, H, W)`` in [0, 1] for ``dataset``'s models.

    Converted to the dataset's channels (grayscale via luminance; transparency composited
    on white; EXIF rotation applied), resized (shorter side) and centre-cropped to its size.
    ``invert=True`` returns ``1 - x`` (dark strokes on white paper -> MNIST's white on black).
    Refused with
    UploadError: files over 20 MB, images over 40 megapixels (checked from the header,
    before decoding), unknown extensions, non-images, undecodable or truncated files.
    """
    from PIL import Image, ImageFile, UnidentifiedImageError
    from torchvision import transforms as T

    info = get_dataset(dataset)
    name = filename or "upload"
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UploadError(f"{name}: expected the file's bytes, got {type(data).__name__}")
    size = len(data)
    if size > MAX_UPLOAD_BYTES:
        raise UploadError(
            f"{name} is {size / 2**20:.1f} MB; uploads must be at most "
            f"{MAX_UPLOAD_BYTES // 2**20} MB ({_ALLOWED_TEXT})"
        )
    if size == 0:
        raise UploadError(f"{name} is empty; upload a {_ALLOWED_TEXT} file")
    ext = os.path.splitext(name.lower())[1]
    if ext not in UPLOAD_EXTENSIONS:
        raise UploadError(
            f"{name}: extension {ext or '(none)'} is not accepted; allowed: "
            f"{', '.join(UPLOAD_EXTENSIONS)} ({_ALLOWED_TEXT})"
        )
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        # Image.open reads the header only; the pixel count is checked before any decoding.
        im = Image.open(io.BytesIO(bytes(data)), formats=list(UPLOAD_FORMATS))
    except UnidentifiedImageError:
        raise UploadError(
            f"{name} is not an image in an accepted format; upload a {_ALLOWED_TEXT} file"
        ) from None
    except Image.DecompressionBombError:
        raise UploadError(
            f"{name} declares too many pixels (decompression bomb); at most "
            f"{MAX_UPLOAD_PIXELS / 1e6:.0f} megapixels are accepted"
        ) from None
    except Exception as exc:  # malformed headers raise assorted errors
        raise UploadError(f"{name} could not be read ({exc}); upload a {_ALLOWED_TEXT} file") from None
    with im:
        w, h = im.size
        if w * h > MAX_UPLOAD_PIXELS:
            raise UploadError(
                f"{name} is {w}×{h} = {w * h / 1e6:.1f} megapixels; at most "
                f"{MAX_UPLOAD_PIXELS / 1e6:.0f} megapixels are accepted (decompression-bomb guard)"
            )
        if w < 1 or h < 1:
            raise UploadError(f"{name} has no pixels ({w}×{h})")
        try:
            from PIL import ImageOps

            im.seek(0)  # first frame of an animation
            im.load()
            rgb = _to_mode(ImageOps.exif_transpose(im) if im.format == "JPEG" else im, info.channels)
        except Exception as exc:  # truncated data, corrupt streams
            raise UploadError(
                f"{name} is truncated or corrupt ({exc}); upload a complete {_ALLOWED_TEXT} file"
            ) from None
    prep = T.Compose([T.Resize(min(info.size)), T.CenterCrop(info.size), T.ToTensor()])
    x = prep(rgb).unsqueeze(0).clamp_(0.0, 1.0)
    return 1.0 - x if invert else x


def _to_mode(im, channels: int):
    """A PIL image in 'L' (channels=1) or 'RGB' (channels=3); alpha composited on white."""
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    return im.convert("L" if channels == 1 else "RGB")
