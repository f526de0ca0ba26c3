"""Where and in what precision a run computes: the device, the precision, autocast, the
``torchrun`` set-up, and the switch that turns progress bars off.

* :func:`pick_device`: ``auto`` is the GPU when there is one, else the CPU.
* :func:`resolve_precision`: bf16 autocast on GPUs with native bf16, fp16 autocast with a gradient
  scaler on older GPUs, fp32 on the CPU (the loss and the exponential of the log-rates always in fp32).
* :class:`Distributed`: several GPUs or nodes, when the same entry point is launched with ``torchrun``.
"""

from __future__ import annotations

import os

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: the GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"device: {name!r} is not a device name ({err}); expected auto, cpu, cuda, cuda:1, ...") \
            from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {name!r} asked for, but this machine has no GPU that torch can use; "
                         "use --device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device: {name!r} asked for, but only {torch.cuda.device_count()} GPU(s) are visible")
    return device


def resolve_precision(precision: str, device_type: str, capability: tuple[int, int] | None = None) -> str:
    """The precision a run computes in, "fp32", "bf16" or "fp16", from the setting, the device type
    ("cuda", "cpu", ...) and, on CUDA, the GPU's compute capability (major, minor).

    ``auto``: bf16 on a CUDA GPU with native bf16 (compute capability 8.0 or newer: A100, H100), fp16
    with a gradient scaler on older CUDA GPUs (T4 7.5, V100 7.0), fp32 elsewhere (the CPU has no
    native bf16; its bf16 is emulated and about 40 times slower). ``torch.cuda.is_bf16_supported()``
    is not consulted: it answers yes on a T4, through emulation. An explicit setting is kept, except
    bf16 on a CUDA GPU older than 8.0, which is an error.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    cuda = device_type == "cuda"
    if cuda and capability is None:
        raise ValueError("capability: a CUDA device needs its compute capability (major, minor)")
    native_bf16 = cuda and tuple(capability) >= (8, 0)
    if precision == "auto":
        return "bf16" if native_bf16 else "fp16" if cuda else "fp32"
    if precision == "bf16" and cuda and not native_bf16:
        raise ValueError(f"precision: bf16 needs a GPU with native bfloat16 (compute capability 8.0 or newer); "
                         f"this GPU has {capability[0]}.{capability[1]}, where bf16 is emulated. Use 'fp16' or "
                         "'auto' (fp16 with a gradient scaler) or 'fp32'")
    return precision


def device_precision(precision: str, device: torch.device) -> str:
    """:func:`resolve_precision` for a torch device (reads a CUDA GPU's compute capability)."""
    capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    return resolve_precision(precision, device.type, capability)


def autocast_dtype(precision: str, device: torch.device):
    """The autocast dtype of a precision setting on ``device`` (:func:`resolve_precision`); None for fp32."""
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[device_precision(precision, device)]


def progress_disabled() -> bool:
    """Whether the environment turns progress bars off (tqdm's own ``TQDM_DISABLE``, which an explicit
    ``disable=`` would otherwise override); the book's execution sets it."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false")


def training_device(name: str) -> tuple[torch.device, Distributed]:
    """The device a run trains on (:func:`pick_device`) and its ``torchrun`` context; under
    ``torchrun`` each rank trains on its own GPU."""
    device = pick_device(name)
    dist = Distributed(device)
    if dist.active and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    return device, dist


def training_module(model: torch.nn.Module, device: torch.device, dist: Distributed, compile: bool | str):
    """The module a training step calls: ``model`` wrapped for data parallelism under ``torchrun``,
    and compiled with ``torch.compile`` when ``compile`` is True (default mode) or a mode name."""
    net = model
    if dist.active:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)
    if compile:
        net = torch.compile(net, mode=None if compile is True else compile)
    return net


class Distributed:
    """``torchrun`` context: rank, world size; a single process when not launched by torchrun."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.active = self.world > 1
        if self.active and not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.active:
            torch.distributed.all_reduce(tensor)
        return tensor

    def check_replicas(self, model: torch.nn.Module) -> float:
        """Sum of all parameters; raises if the replicas of the ranks disagree."""
        total = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()
        if self.active:
            gathered = [torch.zeros_like(total) for _ in range(self.world)]
            torch.distributed.all_gather(gathered, total)
            values = [float(v) for v in gathered]
            if max(values) != min(values):
                raise RuntimeError(f"distributed replicas diverged: parameter sums {values}")
        return float(total)
