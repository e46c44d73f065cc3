"""Files named by a config are untrusted: no code runs from them; prepare uses the configured task."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from fake_results import sparsebench


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_cifar_batch_is_refused_before_unpickling(tmp_path):
    from sparsebench.errors import ConfigError
    from sparsebench.vision.data import read_cifar

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "pwned"
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"]:
        (folder / name).write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(ConfigError, match="data_batch_1.*checksum"):
        read_cifar(tmp_path, "cifar10", "train")
    assert not marker.exists()


def test_every_torch_load_passes_weights_only_explicitly(root):
    offenders = []
    for path in list((root / "sparsebench").rglob("*.py")) + list((root / "methods").rglob("*.py")) \
            + list((root / "tasks").rglob("*.py")):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if "torch.load(" in line and "weights_only=True" not in line:
                offenders.append(f"{path.relative_to(root)}:{i}")
    assert not offenders


def test_prepare_uses_the_configured_task_parameters(tmp_path):
    root = tmp_path / "my-cifar"
    proc = sparsebench("prepare", "--task", "vision-cifar10", "--params", json.dumps({"root": str(root)}),
                       "--out", tmp_path / "prepared.json")
    assert proc.returncode != 0 and "unrecognized" not in proc.stderr, proc.stderr[-2000:]
    assert f"{root}/cifar-10-batches-py" in proc.stderr, proc.stderr[-2000:]  # the configured root, not the default


def test_the_workflow_passes_each_task_its_configured_parameters_at_prepare(root):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-n", "-p", "--forceall", "--cores", "1",
                           "results/prepared/lm-smollm2.json", "--configfile", "config/ci.yaml"],
                          cwd=root, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(ln for ln in proc.stdout.splitlines() if "sparsebench prepare" in ln)
    assert "--params" in line and '"window": 128' in line, line
