"""Per-point outcomes: which of the n points survived, stored compactly in the result record.

A mask is a bit per point, in test-set order from ``first_index``: for ``"clean"`` whether
the model classified the point correctly, for an attack whether it was correct *and*
survived that attack. Packed with ``numpy.packbits`` (little bit order) and base64-encoded,
1,000 points take 168 characters. From the masks, the worst case over any subset of
attacks, attacks measured in separate runs, and paired comparisons of models on the same
points all follow without re-running anything (docs/protocol.md §9).
"""

from __future__ import annotations

import base64

import numpy as np
import torch

ENCODING = "base64(numpy.packbits(mask, bitorder='little'))"


def encode_mask(mask) -> str:
    a = mask.cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    return base64.b64encode(np.packbits(a.astype(bool), bitorder="little").tobytes()).decode("ascii")


def decode_mask(text: str, n: int) -> np.ndarray:
    """The boolean mask of ``n`` points stored as ``text``."""
    raw = np.frombuffer(base64.b64decode(text.encode("ascii"), validate=True), dtype=np.uint8)
    if len(raw) != (n + 7) // 8:
        raise ValueError(f"a mask of {len(raw)} bytes cannot hold exactly {n} points")
    return np.unpackbits(raw, bitorder="little")[:n].astype(bool)
