"""Shards: a fixed partition of the first n test points into contiguous runs of whole batches.

Batch b always holds test points [b·B, (b+1)·B) (B = ``--batch-size``) and draws all of its
randomness from (seed, attack, b) (``seeding.py``). A shard is a contiguous range of whole
batches, so a point's outcome depends neither on the number of shards nor on which process or
machine ran its shard, and the shard files merge (``qrobench merge``) into exactly the result
of one process. Shard ``I/K`` (I counts from 0) holds batches ⌊I·nb/K⌋ … ⌊(I+1)·nb/K⌋ − 1 of
the nb = ⌈n/B⌉ batches.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import QrobenchError

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        m = _SHARD.match(str(text))
        if not m:
            raise QrobenchError(f"--shard must look like I/K (shard I of K, I counting from 0), got {text!r}")
        shard = cls(int(m.group(1)), int(m.group(2)))
        if shard.count < 1 or not 0 <= shard.index < shard.count:
            raise QrobenchError(f"--shard {text}: the shard index counts from 0, so it must be one of "
                                f"0/{max(shard.count, 1)} … {max(shard.count, 1) - 1}/{max(shard.count, 1)}")
        return shard

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def batches(self, n: int, batch_size: int) -> range:
        """The global indices of this shard's batches."""
        nb = n_batches(n, batch_size)
        if self.count > nb:
            raise QrobenchError(f"--shard {self}: {n} points make only {nb} batch(es) of {batch_size}, "
                                f"too few for {self.count} shards; use a smaller --batch-size or fewer shards")
        return range(self.index * nb // self.count, (self.index + 1) * nb // self.count)


WHOLE = Shard(0, 1)


def n_batches(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


def batch_points(b: int, n: int, batch_size: int) -> tuple[int, int]:
    """The test points [start, stop) of batch ``b``."""
    return b * batch_size, min((b + 1) * batch_size, n)


def shard_points(batches: range, n: int, batch_size: int) -> tuple[int, int]:
    return batch_points(batches.start, n, batch_size)[0], batch_points(batches.stop - 1, n, batch_size)[1]
