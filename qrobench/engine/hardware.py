"""The CPU a run used, as far as it can change the numbers.

Float kernels differ between instruction sets only in rounding. Integer kernels can differ in
value: on x86 CPUs without a VNNI int8 dot product (AVX2 only, or AVX-512 without VNNI), the
u8×s8 kernels of ONNX Runtime (and FBGEMM's) add pairs of products in 16 bits with
saturation (``vpmaddubsw``), so an int8 model whose 8-bit weights use their full range
computes other logits there than on a VNNI or AMX CPU (docs/protocol.md §8.8). A
deployed int8 model's record therefore names the CPU's int8 dot-product class, and pieces
measured on different classes are not merged (engine/merge.py).
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch

# x86 int8 dot products, strongest first (/proc/cpuinfo flags); arm: the SDOT/UDOT extension
_INT8_DOT = (("amx_int8", "amx"), ("avx512_vnni", "avx512-vnni"), ("avx_vnni", "avx-vnni"),
             ("asimddp", "arm-dotprod"))


def _cpuinfo() -> tuple[str, set[str]]:
    name, flags = "", set()
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return name, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and not name:
            name = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return name, flags


@functools.cache
def cpu_info() -> dict:
    """{"name", "capability" (torch's vector ISA), "int8_dot" (amx | avx512-vnni | avx-vnni |
    arm-dotprod | none | unknown)}. ``unknown`` where the flags cannot be read (not Linux)."""
    name, flags = _cpuinfo()
    dot = next((label for flag, label in _INT8_DOT if flag in flags), "none" if flags else "unknown")
    return {"name": name or platform.processor() or platform.machine() or "cpu",
            "capability": torch.backends.cpu.get_cpu_capability(), "int8_dot": dot}


INT8_RUNTIMES = ("torch-int8", "onnxruntime")  # deployment.execution.runtime values on integer kernels


def recorded_cpus(result) -> list[dict | None]:
    """The CPUs a record names: one, or each distinct one of a merged record's pieces
    (``{"several": [...]}``); None stands for pieces written before qrobench recorded the CPU."""
    c = getattr(result, "cpu", None)
    return list(c["several"]) if isinstance(c, dict) and "several" in c else [c]


def int8_class(result) -> str | None:
    """The int8 dot-product class a deployed int8 model's record was measured with; None for
    other models and for records written before qrobench recorded the CPU. A merged record
    answers for the pieces that recorded theirs, so that merging it further is checked too
    ("a+b" if they differ, which then matches no single class)."""
    dep = getattr(result, "deployment", None) or {}
    if (dep.get("execution") or {}).get("runtime") not in INT8_RUNTIMES:
        return None
    classes = sorted({c.get("int8_dot") for c in recorded_cpus(result) if c and c.get("int8_dot")})
    return "+".join(classes) if classes else None
