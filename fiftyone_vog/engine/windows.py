"""Windows: named subsets of the checkpoints, each scored with its own mean."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import VoGError


def thirds(num_checkpoints: int) -> dict[str, list[int]]:
    """``early`` / ``middle`` / ``late``: the first, middle and last third of the checkpoints
    (the middle one takes the remainder), as in the paper's Fig. 1 stages."""
    k = num_checkpoints
    a, b = k // 3, k - k // 3
    return {"early": list(range(a)), "middle": list(range(a, b)), "late": list(range(b, k))}


def normalize_windows(windows: Mapping[str, Sequence[int]] | None, num_checkpoints: int) -> dict[str, list[int]]:
    """Validate windows: names → sorted, unique, in-range checkpoint indices (negatives allowed)."""
    out: dict[str, list[int]] = {}
    for name, idx in (windows or {}).items():
        idx = list(idx)
        if not idx:
            raise VoGError(f"window {name!r} names no checkpoints")
        norm = []
        for i in idx:
            if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
                raise VoGError(f"window {name!r}: checkpoint index {i!r} is not an integer")
            if not -num_checkpoints <= i < num_checkpoints:
                raise VoGError(
                    f"window {name!r} names checkpoint index {i}, but only {num_checkpoints} "
                    f"checkpoints were given (valid: 0..{num_checkpoints - 1})"
                )
            norm.append(int(i) % num_checkpoints)
        if len(set(norm)) != len(norm):
            raise VoGError(f"window {name!r} names the same checkpoint twice: {idx}")
        out[name] = sorted(norm)
    return out
