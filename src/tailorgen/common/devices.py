"""The device a command or a training run uses, checked against this machine: one rule for both.

torch is imported only when a GPU is asked for (or "auto" is resolved): importing it takes a second,
and the CLI checks ``--device`` while it parses the arguments.
"""

from __future__ import annotations

DEVICES = "cpu, cuda, cuda:N (N a GPU index) or auto (cuda if there is one, else cpu)"


def check_device(device: str, resolve_auto: bool = True) -> str:
    """``device`` in lower case if this machine has it ("auto" becomes cuda or cpu unless
    ``resolve_auto`` is false); otherwise ValueError naming the device and what is allowed."""
    name = str(device).strip().lower()
    if name == "cpu" or (name == "auto" and not resolve_auto):
        return name
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    kind, _, index = name.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ValueError(f"device: {device!r} is not a device; allowed: {DEVICES}")
    import torch

    if not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} asked for, but this machine has no CUDA GPU; allowed here: cpu, auto")
    if index and int(index) >= torch.cuda.device_count():
        raise ValueError(
            f"device: {device!r} asked for, but this machine has {torch.cuda.device_count()} CUDA GPU(s): "
            f"allowed: cpu, cuda, cuda:0..cuda:{torch.cuda.device_count() - 1}, auto"
        )
    return name
