"""One device policy and one precision vocabulary for every torch component: encoding
(:func:`~negsample.encode`), the teacher scorers (``CrossEncoderScorer``,
``EmbeddingScorer``) and :class:`~negsample.TorchIndex`.

Devices (:func:`resolve_devices`):

- ``None`` or ``"auto"``: every visible CUDA GPU (a component that can use only one takes
  ``cuda:0``), else Apple's ``"mps"``, else ``"cpu"``;
- ``"cuda"``: every visible CUDA GPU (an error when torch sees none);
- ``"cuda:N"``, ``"mps"``, ``"cpu"`` (or a ``torch.device``): that device, checked;
- a list (``["cuda:0", "cuda:2"]``): those devices, each checked.

Precisions (:func:`resolve_precision`): ``"float32"``, ``"float16"``, ``"bfloat16"``; the
spellings ``fp32``, ``float``, ``fp16``, ``half``, ``bf16`` and torch dtypes
(``torch.float16``) are accepted and normalised to those three names, the names written
in cache keys, run settings and saved indexes. ``None`` or ``"auto"``: float16 on a GPU
(CUDA or MPS), float32 on the CPU (half-precision arithmetic is slow and less exact there).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._optional import require
from .errors import InputError

__all__ = [
    "PRECISIONS",
    "PRECISION_NAMES",
    "check_device",
    "check_precision",
    "resolve_devices",
    "resolve_precision",
]

#: The canonical precision names.
PRECISIONS = ("float32", "float16", "bfloat16")
_ALIASES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}
#: Every accepted spelling (the canonical names and their aliases), e.g. for a CLI choice.
PRECISION_NAMES = (*PRECISIONS, *(a for a in _ALIASES if a not in PRECISIONS))


def check_precision(precision: Any) -> str | None:
    """The canonical name of ``precision``, or ``None`` for ``None``/``"auto"`` (decided
    by the device: see :func:`resolve_precision`).

    Raises
    ------
    ValueError
        naming the accepted spellings.
    """
    if precision is None:
        return None
    name = str(precision).removeprefix("torch.").strip().lower()
    if name == "auto":
        return None
    if name not in _ALIASES:
        raise InputError(
            f"precision must be one of {PRECISIONS} (or {', '.join(PRECISION_NAMES[3:])}, "
            f"'auto', None), got {precision!r}"
        )
    return _ALIASES[name]


def resolve_precision(precision: Any, devices: str | Sequence[str] | None) -> str:
    """The precision a component runs in on ``devices``: ``precision`` normalised when
    given, else float16 when every device is a GPU (``cuda*`` or ``mps``), float32
    otherwise. Decided from the names; only ``None``/``"auto"`` asks torch which devices
    it sees (:func:`resolve_devices`).

    Examples
    --------
    >>> resolve_precision("bf16", "cpu"), resolve_precision(None, ["cuda:0", "cuda:1"])
    ('bfloat16', 'float16')
    """
    checked = check_precision(precision)
    if checked is not None:
        return checked
    names = [devices] if devices is None or isinstance(devices, str) else list(devices)
    if any(d is None or str(d).strip().lower() == "auto" for d in names):
        names = list(resolve_devices(None))
    gpu = bool(names) and all(str(d).strip().lower().startswith(("cuda", "mps")) for d in names)
    return "float16" if gpu else "float32"


def _mps_available(torch: Any) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def check_device(torch: Any, name: Any) -> str:
    """``name`` as a canonical device string (``"cpu"``, ``"cuda:N"``, ``"mps"``), once
    torch is known to be able to use it.

    Raises
    ------
    ValueError
        naming the device when torch cannot use it (no CUDA build, no such GPU...).
    """
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"device {name!r} is not a torch device name: {exc}") from exc
    if dev.type == "cpu":
        return "cpu"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                f"device {str(name)!r}: torch sees no CUDA GPU (torch.cuda.is_available() is "
                f"False; torch {torch.__version__}); use device='auto' or 'cpu'"
            )
        idx = 0 if dev.index is None else dev.index
        if idx >= torch.cuda.device_count():
            raise InputError(
                f"device {str(name)!r}: only {torch.cuda.device_count()} CUDA GPU(s) are visible"
            )
        return f"cuda:{idx}"
    if dev.type == "mps":
        if not _mps_available(torch):
            raise InputError(f"device {str(name)!r}: torch's MPS backend is not available")
        return "mps"
    raise InputError(
        f"device must be 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a list of them, got {name!r}"
    )


def resolve_devices(spec: Any = None, *, multi: bool = True) -> list[str]:
    """The devices a component runs on, by the one rule of this module.

    Parameters
    ----------
    spec : ``None``/``"auto"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, ``"cpu"``, a
        ``torch.device``, or a list of those names (not empty).
    multi : whether the component can use several devices (data parallel over GPUs);
        ``False``: ``"auto"`` and ``"cuda"`` give ``["cuda:0"]``, and a list of more than
        one device is refused.

    Returns
    -------
    The device names, canonical (``"cuda:0"``, never ``"cuda"``), at least one.

    Raises
    ------
    ValueError
        for an unknown name, a device torch cannot use, or an empty list.
    """
    torch = require("torch", "running a model or an index on a device")
    if spec is not None and not isinstance(spec, str) and isinstance(spec, Sequence):
        names = [check_device(torch, d) for d in spec]
        if not names:
            raise InputError("device: an empty list of devices")
        if not multi and len(names) > 1:
            raise InputError(f"this component runs on one device, got {list(spec)!r}")
        return names
    name = "auto" if spec is None else spec
    if isinstance(name, str):
        key = name.strip().lower()
        if key in ("auto", "cuda"):
            if torch.cuda.is_available() and torch.cuda.device_count() > 0:
                n = torch.cuda.device_count() if multi else 1
                return [f"cuda:{i}" for i in range(n)]
            if key == "cuda":
                check_device(torch, "cuda:0")  # raises: names what torch lacks
            return ["mps"] if _mps_available(torch) else ["cpu"]
    return [check_device(torch, name)]
