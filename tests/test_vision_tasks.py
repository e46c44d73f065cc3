"""Vision tasks: the fixed digits split, CIFAR read from its on-disk format (a local fixture), the models."""

import pickle

import numpy as np
import pytest
import torch

from sparsebench import registry
from sparsebench.errors import ConfigError
from sparsebench.vision.data import digits_splits, random_crop_flip, random_shift


def test_digits_split_is_fixed_stratified_and_disjoint():
    a, b = digits_splits(), digits_splits()
    assert (len(a.train_y), len(a.val_y), len(a.test_y)) == (1259, 179, 359)  # 70/10/20 % per class
    assert torch.equal(a.test_x, b.test_x) and a.info()["test_sha256"] == b.info()["test_sha256"]
    rows = {tuple(x.flatten().tolist()) for x in a.test_x}
    assert not any(tuple(x.flatten().tolist()) in rows for x in a.train_x)
    for y in (a.train_y, a.val_y, a.test_y):
        assert set(y.tolist()) == set(range(10))


def test_vision_evaluation_records_each_test_image_as_a_sample_whose_mean_is_top1():
    task = registry.task("vision-digits").cls()
    torch.manual_seed(0)
    metrics, samples = task.evaluate_with_samples(task.load_model())  # untrained: near chance, still real
    top1 = samples["top1"]
    assert top1["unit"] == "item" and len(top1["values"]) == 359 and set(top1["values"]) <= {0.0, 100.0}
    assert sum(top1["values"]) / 359 == pytest.approx(metrics["top1"])


def test_digits_shift_augmentation_moves_by_at_most_one_pixel_and_never_flips():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 4, 4] = 1.0
    for seed in range(20):
        y = random_shift(x, torch.Generator().manual_seed(seed))
        r, c = divmod(int(y.flatten().argmax()), 8)
        assert abs(r - 4) <= 1 and abs(c - 4) <= 1 and y.sum() == 1


def write_cifar_fixture(root, which, n_train_per_file, n_test, classes):
    rng = np.random.default_rng(0)
    if which == "cifar10":
        folder, label_key = root / "cifar-10-batches-py", "labels"
        files = {f"data_batch_{i}": n_train_per_file for i in range(1, 6)} | {"test_batch": n_test}
    else:
        folder, label_key = root / "cifar-100-python", "fine_labels"
        files = {"train": 5 * n_train_per_file, "test": n_test}
    folder.mkdir(parents=True)
    for name, n in files.items():
        entry = {"data": rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8),
                 label_key: [int(v) for v in np.arange(n) % classes]}
        with open(folder / name, "wb") as fh:
            pickle.dump(entry, fh)


def publish_fixture_checksums(monkeypatch, root, which):
    """Make the fixture's files the 'published' ones: the loader unpickles only files whose MD5 is listed."""
    import hashlib

    import torchvision.datasets as tvd

    cls = tvd.CIFAR10 if which == "cifar10" else tvd.CIFAR100
    folder = root / ("cifar-10-batches-py" if which == "cifar10" else "cifar-100-python")

    def md5s(entries):
        return [[name, hashlib.md5((folder / name).read_bytes()).hexdigest()] for name, _ in entries]

    monkeypatch.setattr(cls, "train_list", md5s(cls.train_list))
    monkeypatch.setattr(cls, "test_list", md5s(cls.test_list))


@pytest.mark.parametrize("task_name,which,classes", [("vision-cifar10", "cifar10", 10),
                                                     ("vision-cifar100", "cifar100", 100)])
def test_cifar_task_reads_the_on_disk_pickle_batches_and_trains_a_step(tmp_path, monkeypatch, task_name, which,
                                                                       classes):
    write_cifar_fixture(tmp_path, which, 40, 30, classes)
    publish_fixture_checksums(monkeypatch, tmp_path, which)
    task = registry.task(task_name).cls.build({"root": str(tmp_path), "val_size": 20 if classes == 10 else 100,
                                               "epochs": 1, "batch_size": 64}, "test")
    s = task.splits()
    assert s.train_x.shape[1:] == (3, 32, 32) and s.num_classes == classes
    assert len(s.train_y) + len(s.val_y) == 200 and len(s.test_y) == 30
    torch.manual_seed(0)
    model = task.load_model()
    layers = task.prunable_layers(model)
    assert "conv1" in layers and "fc" in layers and layers["conv1"].stride == (1, 1)
    out = model(s.train_x[:2])
    assert out.shape == (2, classes)
    x = random_crop_flip(s.train_x[:4], torch.Generator().manual_seed(0))
    assert x.shape == s.train_x[:4].shape


def test_cifar_vit_tiny_takes_32_pixel_images_in_4_pixel_patches(tmp_path):
    write_cifar_fixture(tmp_path, "cifar10", 10, 10, 10)
    task = registry.task("vision-cifar10").cls.build({"root": str(tmp_path), "val_size": 10, "model": "vit_tiny"}, "t")
    model = task.build_model(10, 3)
    assert model.patch_embed.num_patches == 64
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_cifar_without_data_names_the_missing_path_and_never_downloads(tmp_path):
    task = registry.task("vision-cifar10").cls.build({"root": str(tmp_path)}, "t")
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py.*download"):
        task.splits()


def test_vision_task_parameters_are_validated_with_key_and_allowed_values():
    with pytest.raises(ConfigError, match="model"):
        registry.task("vision-cifar10").cls.build({"model": "resnet50"}, "tasks.vision-cifar10")
    with pytest.raises(ConfigError, match="channels"):
        registry.task("vision-digits").cls.build({"channels": [8, 8]}, "tasks.vision-digits")


@pytest.mark.slow
def test_vision_digits_dense_reaches_97_percent_test_accuracy(tmp_path):
    from sparse_training_helpers import make_job_result

    result = make_job_result("dense-train", 0.0, tmp_path)
    assert result["metrics"]["top1"] >= 97.0
