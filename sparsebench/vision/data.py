"""Image data: scikit-learn's bundled digits (offline) and CIFAR-10/100 in their on-disk format.

Splits are fixed and deterministic (they do not depend on the job's seed), and
each split's hash is recorded in every result.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class ImageSplits:
    train_x: torch.Tensor  # float32 (n, c, h, w), normalised with training statistics
    train_y: torch.Tensor  # int64 (n,)
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    source: str

    def info(self) -> dict:
        def digest(x, y):
            h = hashlib.sha256(x.numpy().tobytes())
            h.update(y.numpy().tobytes())
            return h.hexdigest()

        return {
            "source": self.source,
            "image_shape": list(self.train_x.shape[1:]),
            "num_classes": self.num_classes,
            "train": len(self.train_y), "val": len(self.val_y), "test": len(self.test_y),
            "train_sha256": digest(self.train_x, self.train_y),
            "test_sha256": digest(self.test_x, self.test_y),
        }


def _normalise(x: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    dims = (0, 2, 3)
    mean = train.mean(dims, keepdim=True)
    std = train.std(dims, keepdim=True).clamp_min(1e-6)
    return (x - mean) / std


def stratified_split(y: np.ndarray, fractions: tuple[float, float, float], seed: int) -> tuple[np.ndarray, ...]:
    """Indices of train/val/test, stratified by class, from a fixed seed (not the job's)."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[], [], []]
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        n_val = round(fractions[1] * len(idx))
        n_test = round(fractions[2] * len(idx))
        parts[2].extend(idx[:n_test])
        parts[1].extend(idx[n_test:n_test + n_val])
        parts[0].extend(idx[n_test + n_val:])
    return tuple(np.sort(np.array(p, dtype=np.int64)) for p in parts)


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's ``load_digits()`` images and targets, read from the file it ships.

    Importing ``sklearn.datasets`` costs a job ~1.5 s; the data is one gzipped CSV
    (64 pixel columns, then the label) inside the installed package, which
    ``load_digits`` reads the same way (tests check the arrays are equal).
    """
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the digits task reads scikit-learn's bundled digits data: pip install scikit-learn")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    data = np.loadtxt(path, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)


def digits_splits(val_fraction: float = 0.1, test_fraction: float = 0.2, split_seed: int = 0) -> ImageSplits:
    """The 1,797 8x8 handwritten digits bundled with scikit-learn (values 0..16, one channel)."""
    images, target = _digits_arrays()
    x = torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = np.asarray(target, dtype=np.int64)
    tr, va, te = stratified_split(y, (1 - val_fraction - test_fraction, val_fraction, test_fraction), split_seed)
    yt = torch.from_numpy(y)
    return ImageSplits(_normalise(x[tr], x[tr]), yt[tr], _normalise(x[va], x[tr]), yt[va],
                       _normalise(x[te], x[tr]), yt[te], 10, "sklearn.datasets.load_digits")


# -- CIFAR (the python pickle batches torchvision downloads and reads) ----------
CIFAR = {
    "cifar10": {"folder": "cifar-10-batches-py", "train": [f"data_batch_{i}" for i in range(1, 6)],
                "test": ["test_batch"], "labels": "labels", "classes": 10},
    "cifar100": {"folder": "cifar-100-python", "train": ["train"], "test": ["test"],
                 "labels": "fine_labels", "classes": 100},
}


def _check_published_md5(path: Path, which: str) -> None:
    """Refuse a CIFAR batch whose MD5 is not the one published with the dataset (torchvision's lists)."""
    import torchvision.datasets as tvd

    from sparsebench.errors import ConfigError

    cls = tvd.CIFAR10 if which == "cifar10" else tvd.CIFAR100
    published = dict(cls.train_list + cls.test_list)
    digest = hashlib.md5(Path(path).read_bytes(), usedforsecurity=False).hexdigest()
    if digest != published.get(Path(path).name):
        raise ConfigError(f"{path}: checksum md5={digest} is not the published {which} file's "
                          f"({published.get(Path(path).name)}); refusing to unpickle it. Allowed: the original "
                          f"{cls.__name__} batches (download=true fetches them)")


def read_cifar(root: Path, which: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 3, 32, 32) uint8 and labels of one split, read from CIFAR's on-disk batches."""
    spec = CIFAR[which]
    folder = Path(root) / spec["folder"]
    xs, ys = [], []
    for name in spec[split]:
        path = folder / name
        if not path.exists():
            raise FileNotFoundError(
                f"{path} is missing: put {which} under {root} (torchvision.datasets."
                f"{'CIFAR10' if which == 'cifar10' else 'CIFAR100'}(root, download=True) does) "
                "or set the task's download=true")
        _check_published_md5(path, which)  # a pickle runs code: only the published files are read
        with open(path, "rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
        xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(entry[spec["labels"]], dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def cifar_splits(root: Path, which: str, val_size: int = 5000, split_seed: int = 0, download: bool = False,
                 limit: int | None = None) -> ImageSplits:
    """CIFAR-10/100: the official test set, and a fixed stratified validation split of the training set."""
    if download:
        import torchvision

        cls = torchvision.datasets.CIFAR10 if which == "cifar10" else torchvision.datasets.CIFAR100
        cls(str(root), train=True, download=True)
        cls(str(root), train=False, download=True)
    x, y = read_cifar(root, which, "train")
    xt, yt = read_cifar(root, which, "test")
    if limit:
        x, y, xt, yt = x[:limit], y[:limit], xt[:limit], yt[:limit]
    frac = val_size / len(y)
    tr, va, _ = stratified_split(y, (1 - frac, frac, 0.0), split_seed)
    xf = torch.from_numpy(x).float() / 255.0
    xtf = torch.from_numpy(xt).float() / 255.0
    yy = torch.from_numpy(y)
    return ImageSplits(_normalise(xf[tr], xf[tr]), yy[tr], _normalise(xf[va], xf[tr]), yy[va],
                       _normalise(xtf, xf[tr]), torch.from_numpy(yt), CIFAR[which]["classes"], f"{which}:{root}")


def random_crop(x: torch.Tensor, g: torch.Generator, pad: int) -> torch.Tensor:
    """Zero-pad by ``pad`` pixels and crop back to the original size at a random offset per image."""
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    rows = dy[:, None] + torch.arange(h)[None, :]  # (n, h)
    cols = dx[:, None] + torch.arange(w)[None, :]  # (n, w)
    return padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def random_shift(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Digits: translate by up to one pixel (no flips: a mirrored digit is another symbol)."""
    return random_crop(x, g, pad=1)


def random_crop_flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """The standard CIFAR augmentation: 4-pixel pad and random crop, random horizontal flip."""
    out = random_crop(x, g, pad=4)
    flip = torch.rand(len(x), generator=g) < 0.5
    out[flip] = out[flip].flip(-1)
    return out
