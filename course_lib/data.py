"""Offline data loaders.

Every loader looks for its files in this order and never downloads when the
files are already on the machine:

1. the folder named by the environment variable ``COURSE_DATA``, if set;
2. the system path of a Debian package (Fashion-MNIST) or an installed Python
   package that ships the file (scanpy for ``pbmc68k_reduced``);
3. the user cache ``~/.cache/course_lib``;
4. a download into that cache, which works where the network exists (Colab).

When all four fail the loader raises :class:`DataNotFoundError` with a message
saying which data set is missing and how to get it.

Each loader returns an :class:`ArrayData`: ``X`` (float32), ``y`` (int64 labels,
or float positions for the manifold generators), ``class_names`` and
``feature_names``.
"""
from __future__ import annotations

import gzip
import importlib.util
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
PBMC_FILE = "10x_pbmc68k_reduced.h5ad"
PBMC_URL = "https://raw.githubusercontent.com/scverse/scanpy/1.11.5/src/scanpy/datasets/" + PBMC_FILE


class DataNotFoundError(FileNotFoundError):
    """A data set is not on this machine and could not be downloaded."""


@dataclass
class ArrayData:
    """A data set as arrays: samples in the rows of ``X``, one label per row in ``y``."""

    X: np.ndarray
    y: np.ndarray
    class_names: list = field(default_factory=list)
    feature_names: list | None = None
    name: str = ""

    def __len__(self) -> int:
        return len(self.X)

    def __iter__(self):
        # Allows ``X, y = load_digits()``.
        return iter((self.X, self.y))

    def __repr__(self) -> str:
        return (f"ArrayData(name={self.name!r}, X={self.X.shape} {self.X.dtype}, "
                f"y={self.y.shape}, classes={len(self.class_names)})")


def cache_dir() -> Path:
    """The user cache for downloaded or extracted data: ``~/.cache/course_lib``."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "course_lib"


def _search_dirs(*system_dirs) -> list:
    dirs = []
    if os.environ.get("COURSE_DATA"):
        dirs.append(Path(os.environ["COURSE_DATA"]))
    dirs.extend(Path(d) for d in system_dirs if d is not None)
    dirs.append(cache_dir())
    return dirs


def _find(filenames, dirs, subdir: str = "") -> Path | None:
    """The first folder in ``dirs`` (or its ``subdir``) that holds all ``filenames``."""
    for d in dirs:
        for candidate in (d / subdir, d) if subdir else (d,):
            if all((candidate / f).is_file() for f in filenames):
                return candidate
    return None


def _download(url: str, target: Path, timeout: float = 30.0) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
        shutil.copyfileobj(response, out)
    partial.replace(target)


# ---------------------------------------------------------------- Fashion-MNIST

def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format: big-endian header, then raw uint8)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:  # 0x08 = unsigned byte, the only type these files use
        raise ValueError(f"{path} is not an unsigned-byte IDX file (magic {magic:#x})")
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _fashion_mnist_dir() -> Path:
    files = [f for pair in FASHION_MNIST_FILES.values() for f in pair]
    found = _find(files, _search_dirs(FASHION_MNIST_SYSTEM_DIR), subdir="fashion-mnist")
    if found is not None:
        return found
    # Last resort: torchvision's downloader, which needs the network.
    target = cache_dir() / "fashion-mnist"
    try:
        from torchvision.datasets import FashionMNIST

        for train in (True, False):
            FashionMNIST(root=str(target / "tv"), train=train, download=True)
        raw = target / "tv" / "FashionMNIST" / "raw"
        for f in files:
            shutil.copy(raw / f, target / f)
        return target
    except Exception as err:  # no network, or no torchvision
        raise DataNotFoundError(
            "Fashion-MNIST was not found in $COURSE_DATA, in "
            f"{FASHION_MNIST_SYSTEM_DIR} or in {target}, and could not be downloaded ({err}). "
            "On Debian run `sudo apt-get install dataset-fashion-mnist`; elsewhere put the four "
            f"files {files} in {target}."
        ) from None


def load_fashion_mnist(split: str = "train", n: int | None = None, flatten: bool = False,
                       seed: int = 0) -> ArrayData:
    """Fashion-MNIST: 28x28 grey-scale images of clothes in 10 classes.

    ``split`` is ``"train"`` (60 000 images) or ``"test"`` (10 000). ``n`` draws a
    random, class-stratified-in-expectation subset of that size (``seed`` fixes
    it). Pixels are float32 in [0, 1], shaped ``(n, 1, 28, 28)``, or ``(n, 784)``
    with ``flatten=True``.
    """
    if split not in FASHION_MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = _fashion_mnist_dir()
    image_file, label_file = FASHION_MNIST_FILES[split]
    images = _read_idx(folder / image_file)
    labels = _read_idx(folder / label_file).astype(np.int64)
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(images):
            raise ValueError(f"n must be an int between 1 and {len(images)}, got {n!r}")
        idx = np.sort(np.random.default_rng(seed).choice(len(images), size=n, replace=False))
        images, labels = images[idx], labels[idx]
    X = images.astype(np.float32) / 255.0
    X = X.reshape(len(X), -1) if flatten else X[:, None, :, :]
    return ArrayData(X, labels, list(FASHION_MNIST_CLASSES), None, f"fashion-mnist-{split}")


# ---------------------------------------------------------------- scikit-learn sets

def load_digits() -> ArrayData:
    """scikit-learn's handwritten digits: 1797 images of 8x8 pixels (values 0..16)."""
    from sklearn.datasets import load_digits as sk_load

    d = sk_load()
    return ArrayData(d.data.astype(np.float32), d.target.astype(np.int64),
                     [str(c) for c in d.target_names], None, "digits")


def load_iris() -> ArrayData:
    """Fisher's iris: 150 flowers, 4 measurements, 3 species (it holds one duplicate pair)."""
    from sklearn.datasets import load_iris as sk_load

    d = sk_load()
    return ArrayData(d.data.astype(np.float32), d.target.astype(np.int64),
                     list(d.target_names), list(d.feature_names), "iris")


def load_swiss_roll(n_samples: int = 1500, noise: float = 0.05, seed: int = 0) -> ArrayData:
    """The swiss roll: a 2-D sheet rolled up in 3-D. ``y`` is the position along the roll."""
    from sklearn.datasets import make_swiss_roll

    X, t = make_swiss_roll(n_samples=n_samples, noise=noise, random_state=seed)
    return ArrayData(X.astype(np.float32), t.astype(np.float32), [], ["x", "y", "z"], "swiss-roll")


def load_s_curve(n_samples: int = 1500, noise: float = 0.05, seed: int = 0) -> ArrayData:
    """The S-curve: a 2-D sheet bent into an S in 3-D. ``y`` is the position along the S."""
    from sklearn.datasets import make_s_curve

    X, t = make_s_curve(n_samples=n_samples, noise=noise, random_state=seed)
    return ArrayData(X.astype(np.float32), t.astype(np.float32), [], ["x", "y", "z"], "s-curve")


def gaussian_grid_centres(grid_size: int = 5, spacing: float = 2.0) -> np.ndarray:
    """The centres of the grid mixture: ``grid_size**2`` points (i, j) * spacing, centred on 0, row by row.

    The default is the 5 x 5 grid {-4, -2, 0, 2, 4}^2 of the ALI paper (Dumoulin et al., 2017).
    """
    if isinstance(grid_size, bool) or not isinstance(grid_size, (int, np.integer)) or grid_size < 1:
        raise ValueError(f"grid_size must be a positive int, got {grid_size!r}")
    if not spacing > 0:
        raise ValueError(f"spacing must be a positive number, got {spacing!r}")
    ticks = (np.arange(grid_size) - (grid_size - 1) / 2) * spacing
    return np.array([(a, b) for a in ticks for b in ticks], dtype=np.float64)


def load_gaussian_grid(n_samples: int = 10000, grid_size: int = 5, spacing: float = 2.0, std: float = 0.05,
                       seed: int = 0) -> ArrayData:
    """A mixture of ``grid_size**2`` equally weighted isotropic Gaussians N(c_k, std^2 I) centred on a grid.

    The test bed of mode collapse: 25 well-separated modes in 2-D. ``y`` is each sample's component k,
    the row of :func:`gaussian_grid_centres` it was drawn around.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    if not std > 0:
        raise ValueError(f"std must be a positive number, got {std!r}")
    centres = gaussian_grid_centres(grid_size, spacing)
    rng = np.random.default_rng(seed)
    k = rng.integers(len(centres), size=n_samples)
    X = centres[k] + std * rng.standard_normal((n_samples, 2))
    names = [f"({a:g}, {b:g})" for a, b in centres]
    return ArrayData(X.astype(np.float32), k.astype(np.int64), names, ["x1", "x2"], f"gaussian-grid-{grid_size}x{grid_size}")


# ---------------------------------------------------------------- single-cell RNA-seq

def _pbmc_path() -> Path:
    scanpy_dir = None
    spec = importlib.util.find_spec("scanpy")
    if spec is not None and spec.origin:
        scanpy_dir = Path(spec.origin).parent / "datasets"
    found = _find([PBMC_FILE], _search_dirs(scanpy_dir))
    if found is not None:
        return found / PBMC_FILE
    target = cache_dir() / PBMC_FILE
    try:
        _download(PBMC_URL, target)
        return target
    except (urllib.error.URLError, OSError) as err:
        raise DataNotFoundError(
            f"The single-cell data set pbmc68k_reduced ({PBMC_FILE}) was not found in $COURSE_DATA, "
            f"in an installed scanpy or in {cache_dir()}, and could not be downloaded ({err}). "
            "It ships inside the scanpy wheel: run `make data`, or "
            "`pip download --no-deps scanpy==1.11.5 -d /tmp/sc && "
            f"unzip -j /tmp/sc/scanpy-*.whl scanpy/datasets/{PBMC_FILE} -d {cache_dir()}`."
        ) from None


def _decode(values) -> list:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def load_pbmc68k_reduced(layer: str = "log") -> ArrayData:
    """700 blood cells (PBMC) by 765 genes, with the cell type of each cell.

    This is scanpy's ``pbmc68k_reduced``, read with ``h5py`` alone.

    ``layer="log"`` gives the log-normalised expression, log(1 + counts per
    10 000), non-negative; ``layer="scaled"`` gives each gene centred to mean 0
    and scaled to unit variance (clipped at 10), the matrix scanpy runs PCA on.
    ``y`` indexes ``class_names``, the 10 bulk cell types the cells were sorted
    into; ``feature_names`` are the gene symbols.
    """
    import h5py

    if layer not in ("log", "scaled"):
        raise ValueError(f"layer must be 'log' or 'scaled', got {layer!r}")
    with h5py.File(_pbmc_path(), "r") as f:
        obs = f["obs"][:]
        class_names = _decode(f["uns/bulk_labels_categories"][:])
        if layer == "scaled":
            X = f["X"][:]
            genes = _decode(f["var"]["index"])
        else:
            # raw.X is stored as a CSR matrix: rebuild it densely (700 x 765 is small).
            data, indices, indptr = (f["raw.X"][k][:] for k in ("data", "indices", "indptr"))
            shape = tuple(f["raw.X"].attrs["h5sparse_shape"])
            X = np.zeros(shape, dtype=np.float32)
            rows = np.repeat(np.arange(shape[0]), np.diff(indptr))
            X[rows, indices] = data
            genes = _decode(f["raw.var"]["index"])
    return ArrayData(X.astype(np.float32), obs["bulk_labels"].astype(np.int64),
                     class_names, genes, f"pbmc68k_reduced-{layer}")
