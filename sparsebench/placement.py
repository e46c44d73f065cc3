"""Where a job's model and data live: the hardware profile's device and dtype, applied by the core.

Every family asks its :class:`~sparsebench.runner.JobContext` to place the model
(``ctx.place(model)``); the context records what actually ran (device name,
parameter dtype, whether decoder blocks were offloaded to the host) and the
runner writes that record into result.json. A job on a non-CPU profile whose
family never placed its model is an error, not a silent CPU run.

Offloading (``offload=True``): the weights stay in host memory in the profile's
dtype; everything outside the decoder blocks (embeddings, final norm, LM head,
rotary tables) moves to the device; each decoder block moves to the device for
its own forward and back afterwards (:func:`streamed`). That is how
SparseGPT's reference pipeline (``llama.py``) fits a model larger than the GPU:
peak device memory is one block plus the activations.
Whether a calibrated pruning job offloads is :func:`decide_offload`'s call: as the
method's authors run it (SparseGPT's ``llama.py`` always offloads; Wanda and the
methods built on its code load the whole model onto the GPU with
``device_map="auto"``, which spills to the host only when it does not fit),
unless the profile's ``offload`` forces it on or off.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from sparsebench.environment import cpu_model
from sparsebench.errors import ConfigError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def torch_dtype(name: str, where: str = "hardware.dtype") -> torch.dtype:
    if name not in DTYPES:
        raise ConfigError(f"{where}={name!r} is not a supported dtype; allowed: {', '.join(DTYPES)}")
    return DTYPES[name]


# a resident model may take this share of the device's free memory; the rest is for the calibration
# activations (which move to the host when they do not fit: pruning.calibration.activations_home) and
# one block's statistics
RESIDENT_SHARE = 0.5


def decide_offload(mode: str, authors: str, weight_bytes: int, free_bytes: int | None) -> tuple[bool, str]:
    """``(offload, why)`` for a calibrated pruning job on an accelerator.

    ``mode``: the profile's ``offload`` ("auto", "always", "never"); ``authors``: how the method's
    authors place the model ("offload": block at a time from the host; "resident": the whole model on the
    device when it fits); ``weight_bytes``: the model's parameters in the profile's dtype; ``free_bytes``:
    the device's free memory.
    """
    if mode == "always":
        return True, "profile offload=always"
    if mode == "never":
        return False, "profile offload=never"
    if authors == "offload":
        return True, "the method's authors offload (one block at a time on the device)"
    gib = 2**30
    if free_bytes is not None and weight_bytes > RESIDENT_SHARE * free_bytes:
        return True, (f"weights {weight_bytes / gib:.1f} GiB > {RESIDENT_SHARE:.0%} of the device's free "
                      f"{free_bytes / gib:.1f} GiB")
    return False, (f"the method's authors keep the model on the device; weights {weight_bytes / gib:.1f} GiB "
                   f"fit in {RESIDENT_SHARE:.0%} of the free {(free_bytes or 0) / gib:.1f} GiB")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype: torch.dtype

    @classmethod
    def of(cls, profile) -> "Placement":
        return cls(torch.device(profile.device), torch_dtype(profile.dtype, f"hardware/{profile.name}.yaml: dtype"))


def record(model: nn.Module, offloaded: bool, device: torch.device, autocast: torch.dtype | None = None) -> dict:
    """What ran: the device the forward passes used, the parameters' dtype, offloading."""
    params = list(model.parameters())
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in params if p.is_floating_point()})
    rec = {
        "device": str(device),
        "device_name": device_name(device),
        "dtype": dtypes[0] if len(dtypes) == 1 else dtypes,
        "offloaded": bool(offloaded),
    }
    if autocast is not None:
        rec["autocast"] = str(autocast).removeprefix("torch.")
    return rec


def place(model: nn.Module, placement: Placement, blocks: nn.ModuleList | None = None,
          cast: bool = True) -> nn.Module:
    """Move ``model`` to the placement's device (cast to its dtype unless ``cast`` is False).

    With ``blocks`` (the decoder blocks): the offloaded layout. Only the input embedding and the buffers
    (rotary tables) move; the blocks and every other weight (final norm, LM head: 2 GB at 70B) stay on
    the host and run on the device one module at a time (:func:`streamed`).
    """
    if cast:
        model.to(dtype=placement.dtype)
    if blocks is None:
        return model.to(placement.device)
    inside = {id(m) for m in blocks.modules()}
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if emb is not None:
        emb.to(placement.device)
    for module in model.modules():
        if id(module) in inside:
            continue
        for key, b in list(module._buffers.items()):
            if b is not None:
                module._buffers[key] = b.to(placement.device)
    return model


def host_modules(model: nn.Module, blocks: nn.ModuleList) -> list[nn.Module]:
    """The modules outside ``blocks`` whose own weights are on the host (offloaded layout)."""
    inside = {id(m) for m in blocks.modules()}
    out = []
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if id(module) not in inside and own and own[0].device.type == "cpu":
            out.append(module)
    return out


def streamed(model: nn.Module, blocks: nn.ModuleList, device: torch.device, with_blocks: bool = True):
    """Context: the offloaded model runs on ``device``, each host module (and block) moved there for its
    own forward and back after it."""
    modules = host_modules(model, blocks) + (list(blocks) if with_blocks else [])
    return stream_modules(modules, device)


@contextlib.contextmanager
def stream_modules(modules, device: torch.device):
    """While active, each of ``modules`` moves to ``device`` for its forward and back to the host after it."""
    if device.type == "cpu":
        yield
        return
    host = torch.device("cpu")

    def pre(module, _args):
        module.to(device)

    def post(module, _args, _out):
        module.to(host)

    handles = [h for m in modules for h in (m.register_forward_pre_hook(pre), m.register_forward_hook(post))]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


class DeviceVisit:
    """A module's stay on the device (:func:`visit_device`). :meth:`back` returns it to the host: a tensor
    the visit left unchanged gets its host tensor back by reference (no device-to-host copy: Wanda, DSnoT
    and masks alone never touch the weights); a changed one (SparseGPT's updates) and any tensor created
    on the device (masks, EoRA factors) are copied. Unchanged is checked, not assumed: against a device
    copy taken on arrival (one more block on the device). ``check_unchanged=False`` (a method that rewrites
    every weight it prunes) takes no copy and copies every parameter back."""

    def __init__(self, module: nn.Module, device: torch.device, check_unchanged: bool = True):
        self.module, self.host = module, torch.device("cpu")
        # (param, host data, device copy or None)
        self.arrived: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
        for p in module.parameters():
            host = p.data
            p.data = host.to(device, non_blocking=True)
            self.arrived.append((p, host, p.data.clone() if check_unchanged else None))
        module.to(device)  # buffers

    def back(self) -> None:
        restored = set()
        for p, host, copy in self.arrived:
            if copy is None:
                continue
            if p.data.shape == copy.shape and p.data.dtype == copy.dtype and torch.equal(p.data, copy):
                p.data = host
                restored.add(id(p))
        self.arrived.clear()
        for p in self.module.parameters():
            if id(p) not in restored:
                p.data = p.data.to(self.host)
        self.module.to(self.host)  # buffers, and anything still on the device


def visit_device(module: nn.Module, device: torch.device, check_unchanged: bool = True) -> DeviceVisit:
    """Move ``module`` to ``device`` for a while; ``.back()`` returns it to the host (see :class:`DeviceVisit`)."""
    return DeviceVisit(module, device, check_unchanged)


def module_device(model: nn.Module) -> torch.device:
    """Where the model's inputs go: the device of its first parameter outside any offloaded block
    (the input embedding), which is the device its forward runs on."""
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if emb is not None:
        return emb.weight.device
    return next(model.parameters()).device


@contextlib.contextmanager
def one_thread(device: torch.device = torch.device("cpu")):
    """Per-layer pruning is a long series of small tensor ops (SparseGPT's column walk, DSnoT's swaps):
    on CPU, thread synchronisation costs more than it saves (10x slower with 2 threads on a busy host)."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
