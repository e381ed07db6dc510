"""Model cards: one JSON file per checkpoint, validated field by field."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ModelCardError
from ..files import atomic_write_text

REQUIRED_FIELDS = {
    "name": str,
    "architecture": str,
    "arch_args": dict,
    "ensemble": int,
    "noise_coef": (int, float),
    "precision": str,
    "quantizer": str,
    "recipe": str,
    "dataset": str,
    "sha256": str,
    "file": str,
    "license": str,
    "reference": str,
}


FORMATS = ("torch", "brevitas", "torch-ao", "onnx")


@dataclass
class ModelCard:
    name: str
    architecture: str
    arch_args: dict
    ensemble: int
    noise_coef: float
    precision: str
    quantizer: str  # e.g. "ternary, ref convention (kept |w| sum / total count)"
    recipe: str  # short training recipe summary
    dataset: str
    sha256: str
    file: str
    license: str
    reference: str
    training: dict = field(default_factory=dict)  # command, budget, time, selection, init
    extra: dict = field(default_factory=dict)
    # how the model is stored and run: "torch" (qrobench layers, any nn.Module), "brevitas",
    # "torch-ao" (int8 kernels, attacked through a twin), "onnx" (an ONNX Runtime session)
    format: str = "torch"
    runtime: dict = field(default_factory=dict)  # e.g. {"runtime": "onnxruntime", "provider": ...}
    path: Path | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: dict, source: str = "<card>") -> ModelCard:
        if not isinstance(d, dict):
            raise ModelCardError(f"model card {source} must be a JSON object")
        missing = [k for k in REQUIRED_FIELDS if k not in d]
        if missing:
            raise ModelCardError(
                f"model card {source} is missing field(s) {', '.join(missing)}; "
                f"a card needs: {', '.join(REQUIRED_FIELDS)}"
            )
        for k, t in REQUIRED_FIELDS.items():
            if not isinstance(d[k], t) or isinstance(d[k], bool):
                tn = t.__name__ if isinstance(t, type) else "number"
                raise ModelCardError(
                    f"model card {source}: field {k!r} must be a {tn}, got {type(d[k]).__name__}"
                )
        sha = d["sha256"]
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ModelCardError(f"model card {source}: 'sha256' must be 64 lowercase hex digits")
        known = set(REQUIRED_FIELDS) | {"training", "extra", "format", "runtime"}
        extra = dict(d.get("extra", {}))
        extra.update({k: v for k, v in d.items() if k not in known})
        fmt = d.get("format", "torch")
        if fmt not in FORMATS:
            raise ModelCardError(f"model card {source}: 'format' must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return cls(**{k: d[k] for k in REQUIRED_FIELDS}, training=dict(d.get("training", {})),
                   extra=extra, format=fmt, runtime=dict(d.get("runtime", {})))

    @classmethod
    def read(cls, path: str | Path) -> ModelCard:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ModelCardError(f"model card {path} is not valid JSON ({e}); fix or re-export it") from e
        card = cls.from_dict(d, str(path))
        card.path = path
        return card

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("path")
        if d["format"] == "torch" and not d["runtime"]:  # the cards written before formats existed
            d.pop("format")
            d.pop("runtime")
        return d

    def write(self, path: str | Path) -> None:
        path = Path(path)
        atomic_write_text(path, json.dumps(self.as_dict(), indent=2, sort_keys=False) + "\n")
        self.path = path

    def checkpoint_path(self) -> Path:
        base = self.path.parent if self.path is not None else Path(".")
        return base / self.file
