"""Datasets: registry, paper defaults, loaders and bundled samples.

Uploads are decoded in ``explorer.uploads``, local files imported by ``explorer.data_import``
(both reachable from here, see the end of this module).

Every image leaves this module as a float tensor in ``[0, 1]``: a batch is ``(N, C, H, W)``,
a single test-set item is ``(C, H, W)``. Normalisation belongs to the model wrappers
(``explorer.models``), never to the data.

Where files live: ``$EXPLORER_DATA`` if set, else ``data/`` at the repository root (git-ignored).
torchvision's layouts are used under that root (``MNIST/raw``, ``FashionMNIST/raw``,
``gtsrb/...``, ``flowers-102/...``), so ``torchvision.datasets`` finds imported files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "ASSETS_DIR", "DATASETS", "FASHION_CLASSES", "FLOWERS102_CLASSES", "GTSRB_CLASSES",
    "IDX_FILES", "IDX_MAGIC", "IMAGENET_PHOTOS", "MNIST_CLASSES", "REPO_ROOT",
    "SAMPLES_PER_CLASS", "DatasetInfo", "DatasetUnavailable", "IdxError", "PaperDefaults",
    "Samples", "as_tensors", "build_bundled_samples", "data_root", "dataset_status",
    "expected_location", "get_dataset", "idx_header_problem", "idx_layout", "import_command", "load_samples",
    "load_test_set", "load_train_set", "parse_idx", "test_set_count",
]
# Uploads (validation, decoding) live in explorer.uploads and dataset imports in
# explorer.data_import; both build on this module's registry.

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSETS_DIR = REPO_ROOT / "assets"


class DatasetUnavailable(RuntimeError):
    """The files of a dataset are not on this machine (and could not be downloaded)."""


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaperDefaults:
    """Attack and evaluation settings of the paper for one dataset (the paper's attack settings,
    docs/metrics.md).

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
    where = expected_location(info, root)
    return DatasetUnavailable(
        f"{info.name} is not downloaded ({why}). Put {info.import_hint} in {where}, "
        f"or run `{import_command(info.key)}` with DIR the folder that holds them."
    )


def expected_location(info: DatasetInfo, root: Path) -> Path:
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
    where = expected_location(info, base)
    if info.key in ("mnist", "fashion_mnist"):
        for stem in IDX_FILES:
            problem = idx_header_problem(where / stem)
            if problem and (where / stem).exists():
                raise _damaged(info, problem)
    try:
        if info.key in ("mnist", "fashion_mnist"):
            return cls(str(base), train=train, transform=tf, download=download)
        if info.key == "gtsrb":
            return cls(str(base), split="train" if train else "test", transform=tf, download=download)
        if info.key == "flowers102":
            return cls(str(base), split="train" if train else "test", transform=tf, download=download)
        return cls(str(base / "imagenet"), split="train" if train else "val", transform=tf)
    except Exception as exc:  # torchvision signals missing and damaged files in many ways
        if download:
            raise _unavailable(info, base, f"download failed: {exc}") from None
        if _has_files(where) and not (isinstance(exc, RuntimeError) and "not found" in str(exc)):
            raise _damaged(info, f"files in {where} could not be read "
                                 f"({type(exc).__name__}: {str(exc)[:300]})") from None
        raise _unavailable(info, base, "files not found") from None


def _has_files(folder: Path) -> bool:
    try:
        return folder.is_dir() and any(folder.iterdir())
    except OSError:
        return False


def _damaged(info: DatasetInfo, problem: str) -> DatasetUnavailable:
    return DatasetUnavailable(
        f"{info.name} is damaged or incomplete: {problem}. Import the files again with "
        f"`{import_command(info.key)}` ({info.import_hint})."
    )


# --------------------------------------------------------------------------------------
# IDX files (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------------------

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
IDX_MAGIC = {"images": 2051, "labels": 2049}  # unsigned bytes; 3 dims for images, 1 for labels


class IdxError(ValueError):
    """An IDX file is malformed; the message names the file and what was expected."""


def idx_layout(header: bytes, path) -> tuple[str, list[int]]:
    """(kind, dims) from an IDX header; IdxError naming ``path`` otherwise."""
    if len(header) < 8:
        raise IdxError(f"{path} is too short to be an IDX file ({len(header)} bytes)")
    magic = int.from_bytes(header[:4], "big")
    kind = {v: k for k, v in IDX_MAGIC.items()}.get(magic)
    if kind is None:
        raise IdxError(
            f"{path} is not an IDX file of unsigned bytes (magic number {magic}; expected "
            f"{IDX_MAGIC['images']} for images or {IDX_MAGIC['labels']} for labels)"
        )
    ndim = 3 if kind == "images" else 1
    if len(header) < 4 + 4 * ndim:
        raise IdxError(f"{path} is too short to be an IDX {kind} file")
    return kind, [int.from_bytes(header[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]


def parse_idx(blob: bytes, path, kind: str | None = None) -> np.ndarray:
    """The uint8 array of an uncompressed IDX file's bytes: ``(N, H, W)`` images or ``(N,)``
    labels. IdxError naming ``path`` for a wrong magic number (or not ``kind``), a wrong
    length (truncated or padded)."""
    magic = int.from_bytes(blob[:4], "big")
    if kind is not None and len(blob) >= 4 and magic != IDX_MAGIC[kind]:
        raise IdxError(
            f"{path} is not an IDX {kind} file (magic number {magic}, expected {IDX_MAGIC[kind]})"
        )
    _, dims = idx_layout(blob[:16], path)
    offset = 4 + 4 * len(dims)
    expected = offset + int(np.prod(dims, dtype=np.int64))
    if len(blob) != expected:
        raise IdxError(
            f"{path} is truncated or padded: {len(blob)} bytes, expected {expected} for shape {dims}"
        )
    return np.frombuffer(blob, dtype=np.uint8, offset=offset).reshape(dims)


def idx_header_problem(path: Path) -> str | None:
    """Why the uncompressed IDX file at ``path`` cannot be read (missing, wrong magic number,
    wrong length), from its header and size only; None when it looks complete."""
    try:
        with open(path, "rb") as f:
            header = f.read(16)
        size = path.stat().st_size
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror or exc})"
    try:
        _, dims = idx_layout(header, path)
    except IdxError as exc:
        return str(exc)
    expected = 4 + 4 * len(dims) + int(np.prod(dims, dtype=np.int64))
    if size != expected:
        return f"{path} is truncated or padded: {size} bytes, expected {expected} for shape {dims}"
    return None


def test_set_count(dataset: str, root=None) -> int | None:
    """The number of test images from the IDX headers alone (MNIST and Fashion-MNIST), without
    importing torchvision or reading the pixels; None where that cannot be said cheaply (another
    dataset, or files that :func:`load_test_set` would refuse: then it gives the reason)."""
    info = get_dataset(dataset)
    if info.key not in ("mnist", "fashion_mnist"):
        return None
    where = expected_location(info, data_root(root))
    # The rule of load_test_set (any present file must be whole), and the test files present.
    for stem in IDX_FILES:
        if idx_header_problem(where / stem) and ((where / stem).exists()
                                                 or stem in IDX_FILES[2:]):
            return None
    with open(where / "t10k-labels-idx1-ubyte", "rb") as f:
        return idx_layout(f.read(8), where)[1][0]


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


def _damaged_asset(path: Path, exc: Exception) -> DatasetUnavailable:
    return DatasetUnavailable(
        f"the bundled file {path} is damaged ({type(exc).__name__}: {str(exc)[:200]}); restore "
        f"it with `git checkout -- {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}` "
        f"or rebuild it with `python -m explorer data build-samples`"
    )


def load_samples(dataset: str, root=None) -> Samples:
    """The bundled sample images of ``dataset`` (offline).

    GTSRB / Flowers-102 ship no samples: their first test images per class are used when the
    dataset is present, otherwise DatasetUnavailable with the import command.
    """
    info = get_dataset(dataset)
    if info.key in ("mnist", "fashion_mnist"):
        npz, _ = _samples_paths(info.key)
        try:
            with np.load(npz) as f:
                images, labels, indices = f["images"], f["labels"], f["indices"]
        except Exception as exc:  # zipfile, zlib, pickle-refusal and key errors alike
            raise _damaged_asset(npz, exc) from None
        x = torch.from_numpy(images).float().div_(255.0).unsqueeze(1)
        names = [f"test #{int(i)}: {info.class_names[int(l)]}" for i, l in zip(indices, labels)]
        return Samples(x, torch.from_numpy(labels).long(), names, [int(i) for i in indices])
    if info.key == "imagenet":
        from PIL import Image

        folder = ASSETS_DIR / "imagenet"
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
            items = list(manifest["items"])
        except Exception as exc:
            raise _damaged_asset(folder / "manifest.json", exc) from None
        xs, labels, names = [], [], []
        for item in items:
            try:
                with Image.open(folder / item["file"]) as im:
                    arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
            except Exception as exc:
                raise _damaged_asset(folder / str(item.get("file")), exc) from None
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
