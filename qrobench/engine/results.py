"""The result record: one typed, versioned JSON file per evaluation (docs/protocol.md §9).

The engine builds a :class:`Result` complete (the command and protocol that produced it are
passed in, not patched on afterwards); ``merge``, ``check``, ``submit`` and the reports read
and write results only through this module. Files written before the record had a type
(schema ``qrobench-result-v1``) load through :func:`migrate`, the one place that knows
older layouts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import QrobenchError
from ..files import atomic_write_text
from ..protocol import (
    CLEAN_ACC_FLOOR,
    DEFAULT_DATASET,
    DEFAULT_THREAT_MODEL,
    precision_bits,
    threat_model_of_norm,
)
from .outcomes import decode_mask, encode_mask

RESULT_SCHEMA = "qrobench-result-v2"
LEGACY_SCHEMAS = ("qrobench-result-v1",)
RESULT_SCHEMAS = (RESULT_SCHEMA, *LEGACY_SCHEMAS)
REQUIRED_FIELDS = ("model", "n", "eps", "clean_acc", "robust_acc", "worst_case_acc")
LOW_CLEAN_FLAG = "low-clean-accuracy"
# A randomised model's ``score_draw``: each batch's columns are scored under its clean pass's noise draw.
SHARED_SCORE_DRAW = "every column under the clean pass's noise draw"


class _ReadsLikeAMapping:
    """``result["clean_acc"]`` as well as ``result.clean_acc``: results were plain dicts once,
    and RobustBench-style code indexes them."""

    def __getitem__(self, key: str):
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:  # an optional part that is absent is not "in"
        return isinstance(key, str) and key in self.__dataclass_fields__ and \
            (key not in _OPTIONAL or getattr(self, key) is not None)

    def get(self, key: str, default=None):
        return getattr(self, key, default) if key in self.__dataclass_fields__ else default


@dataclass
class Spread(_ReadsLikeAMapping):
    """Sample standard deviation over seeds (0 for one seed)."""

    clean_acc: float = 0.0
    robust_acc: dict[str, float] = field(default_factory=dict)
    worst_case_acc: float = 0.0


@dataclass
class SeedResult(_ReadsLikeAMapping):
    """One seed's pass over the battery; the aggregate fields of a Result derive from these."""

    seed: int
    clean_acc: float
    robust_acc: dict[str, float]
    worst_case_acc: float
    wall_time_s: dict[str, float] = field(default_factory=dict)
    clean_time_s: float = 0.0
    zero_grad_frac: dict[str, float] = field(default_factory=dict)
    # per-point masks (outcomes.py): "clean" and each attack; None in files written before them
    outcomes: dict[str, str] | None = None

    @classmethod
    def from_masks(cls, seed: int, clean, robust: dict, **extra) -> SeedResult:
        """A seed's record from its per-point masks. Accuracies are exact fractions (counts over
        n in double precision), so robust <= clean holds exactly and shards or merges that
        assemble the same masks give the same numbers."""
        clean = np.asarray(clean.cpu() if hasattr(clean, "cpu") else clean, dtype=bool)
        masks = {k: np.asarray(v.cpu() if hasattr(v, "cpu") else v, dtype=bool) for k, v in robust.items()}
        n = len(clean)
        worst = clean.copy()
        for m in masks.values():
            worst &= m
        return cls(seed=seed, clean_acc=int(clean.sum()) / n,
                   robust_acc={k: int(m.sum()) / n for k, m in masks.items()},
                   worst_case_acc=int(worst.sum()) / n,
                   outcomes={"clean": encode_mask(clean), **{k: encode_mask(m) for k, m in masks.items()}},
                   **extra)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if d["outcomes"] is None:
            del d["outcomes"]
        return d


@dataclass
class Result(_ReadsLikeAMapping):
    """Everything one evaluation measured and how; accuracies are fractions of ``n``."""

    model: str
    card_sha256: str | None = None
    architecture: str = ""
    ensemble: int = 1
    precision: str = ""
    recipe: str | None = None
    dataset: str = DEFAULT_DATASET
    split: str = "test"
    n: int = 0
    first_index: int = 0
    eps: float = 0.0
    norm: str = "Linf"
    threat_model: str = DEFAULT_THREAT_MODEL  # protocol.THREAT_MODELS: what eps bounds
    attacks: dict[str, dict] = field(default_factory=dict)  # name -> settings, in battery order
    clean_acc: float = 0.0
    robust_acc: dict[str, float] = field(default_factory=dict)
    worst_case_acc: float = 0.0
    stochastic: bool = False
    repeats: int = 1
    std: Spread = field(default_factory=Spread)
    # weight statistics, measured when the run was made (reports never rebuild networks)
    sparsity: float | None = None
    channel_sparsity: float | None = None
    size_bytes: int | None = None
    fp32_bytes: int | None = None
    compression: float | None = None
    bits: float | None = None  # mean bits per quantizable conv weight (mixed: size-weighted)
    n_params: int | None = None
    seed: int = 0
    batch_size: int | None = None
    device: str = ""
    device_name: str = ""
    threads: int | None = None
    channels_last: bool | None = None
    versions: dict = field(default_factory=dict)
    data_source: str = ""
    wall_time_s: dict[str, float] = field(default_factory=dict)
    clean_time_s: float = 0.0
    total_time_s: float = 0.0
    zero_grad_frac: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    per_seed: list[SeedResult] = field(default_factory=list)
    timestamp: str = ""
    command: str | None = None  # the command line that wrote the file (None only in v1 files)
    # optional parts, written only when present
    protocol: dict | None = None  # a named protocol the run followed, e.g. qrobench check's
    weights: dict | None = None  # per-layer bit-widths and zero channels behind the statistics
    submission: dict | None = None  # how a submitted checkpoint was loaded and checked
    merged_from: list[dict] | None = None  # the runs a merged file combines
    diagnostics: dict | None = None  # gradient-masking findings (engine/diagnostics.py, qrobench diagnose)
    shard: dict | None = None  # {"index", "count", "n"}: this file holds shard index/count of n points
    # True: each attack ran only on the points every earlier attack failed to break (--cascade),
    # so robust_acc[a] is the accuracy after the attacks up to a, and only the last is the battery's
    cascade: bool | None = None
    # --cascade-from (engine/cascade_from.py): attack -> the attacks of an earlier run whose survivors
    # alone it attacked, so its outcomes are cumulative over those too and its own accuracy is unknown
    cascade_from: dict[str, list[str]] | None = None
    # a randomised model: how each column's scoring pass drew the model's noise. SHARED_SCORE_DRAW:
    # every column of a batch under the clean pass's draw (docs/protocol.md §6.4); None in a
    # randomised model's record: each column under a draw of its own (records made before the change)
    score_draw: str | None = None
    # a post-training quantization of a float zoo model (qrobench sweep): source, method, bits
    sweep: dict | None = None
    # a toolkit model evaluated as deployed: format, execution (runtime, version, engine), the
    # differentiable twin, clean twin agreement, twin→deployed transfer per attack, and the
    # materialised-forward equivalence check (engine/deployment.py)
    deployment: dict | None = None
    # a weight attack's outcome that is not an accuracy (threats/bit_flip.py: flips needed, trajectory)
    weight_threat: dict | None = None
    # threat model corruptions (threats/corruptions.py): the headline ``mean`` over the
    # (corruption, severity) columns (plain accuracy on corrupted images, not ANDed with clean;
    # ``mean_std`` over seeds) and the means per corruption and per severity; derived in summarize
    corruptions: dict | None = None
    # the CPU of a run on the CPU: name, torch's vector ISA and the int8 dot-product class, which
    # changes a deployed int8 model's logits (engine/hardware.py)
    cpu: dict | None = None
    schema: str = RESULT_SCHEMA

    # -- aggregation -----------------------------------------------------------------------

    def summarize(self) -> Result:
        """Recompute mean, std, times and the clean-accuracy flag from ``per_seed`` (in place).

        One function for a fresh run and for merged seeds, so seeds measured apart combine into
        exactly the numbers of one multi-seed run."""
        runs = self.per_seed
        if not runs:
            raise ValueError("a result needs at least one seed")
        names = list(self.attacks) or list(runs[0].robust_acc)
        self.clean_acc, clean_std = _mean_std([r.clean_acc for r in runs])
        self.worst_case_acc, worst_std = _mean_std([r.worst_case_acc for r in runs])
        robust, robust_std = {}, {}
        for a in names:
            robust[a], robust_std[a] = _mean_std([r.robust_acc[a] for r in runs])
        self.robust_acc = robust
        self.std = Spread(clean_std, robust_std, worst_std)
        self.wall_time_s = {a: _mean_std([r.wall_time_s.get(a, 0.0) for r in runs])[0] for a in names}
        self.clean_time_s = _mean_std([r.clean_time_s for r in runs])[0]
        self.zero_grad_frac = {a: _mean_std([r.zero_grad_frac.get(a, 0.0) for r in runs])[0]
                               for a in names if any(a in r.zero_grad_frac for r in runs)}
        self.repeats = len(runs)
        self.seed = runs[0].seed
        if self.threat_model == "corruptions":
            self.corruptions = {**(self.corruptions or {}), **self._corruption_summary(names)}  # keeps "metric"
        flags = set(self.flags) - {LOW_CLEAN_FLAG}
        if self.clean_acc < CLEAN_ACC_FLOOR:
            flags.add(LOW_CLEAN_FLAG)  # robust numbers of a broken model mean little
        self.flags = sorted(flags)
        return self

    def _corruption_summary(self, names: list[str]) -> dict:
        """Mean over the columns (mean ± std over seeds), and the means per corruption and severity."""
        mean, std = _mean_std([statistics.fmean(r.robust_acc[a] for a in names) for r in self.per_seed])
        groups: dict[str, dict[str, list[float]]] = {"corruption": {}, "severity": {}}
        for a in names:
            for key, by in groups.items():
                by.setdefault(str(self.attacks.get(a, {}).get(key, "?")), []).append(self.robust_acc[a])
        return {"mean": mean, "mean_std": std, "columns": len(names),
                "per_corruption": {k: statistics.fmean(v) for k, v in groups["corruption"].items()},
                "per_severity": {k: statistics.fmean(v) for k, v in groups["severity"].items()}}

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.per_seed]

    # -- per-point outcomes ----------------------------------------------------------------

    @property
    def has_outcomes(self) -> bool:
        return bool(self.per_seed) and all(s.outcomes for s in self.per_seed)

    def _require_outcomes(self) -> None:
        if not self.has_outcomes:
            raise QrobenchError(f"the result for {self.model} holds no per-point outcomes (written by "
                                f"qrobench {self.qrobench_version or '< 0.2'}); re-run it to get them")

    def masks(self, name: str) -> list[np.ndarray]:
        """Per seed, the points that were correct (``"clean"``) or survived attack ``name``."""
        self._require_outcomes()
        if name != "clean" and name not in self.attacks:
            raise QrobenchError(f"{self.model} was not measured under {name!r}; attacks: {', '.join(self.attacks)}")
        return [decode_mask(s.outcomes[name], self.n) for s in self.per_seed]

    def cumulative_over(self, name: str) -> list[str]:
        """The other attacks whose breaks the outcomes of attack ``name`` already count: the earlier
        ones of a --cascade run and those of the run a --cascade-from run continued; [] where its
        outcomes are its own."""
        names = list(self.attacks)
        earlier = names[:names.index(name)] if self.cascade and name in names else []
        return earlier + [a for a in (self.cascade_from or {}).get(name, []) if a not in earlier]

    def own_attacks(self) -> list[str]:
        """The attacks whose accuracy is their own, not cumulative over other attacks."""
        return [a for a in self.attacks if not self.cumulative_over(a)]

    def check_worst_case_set(self, attacks, what: str) -> None:
        """A worst case over ``attacks`` is exact only if every cumulative attack among them comes
        with the attacks it counts; refuse otherwise."""
        chosen = set(attacks)
        for a in attacks:
            hidden = [b for b in self.cumulative_over(a) if b not in chosen]
            if hidden:
                raise QrobenchError(f"{what}: the outcomes of {a} in {self.model}'s file already count "
                                    f"{', '.join(hidden)} (--cascade / --cascade-from), so {a} cannot be "
                                    f"used without {'it' if len(hidden) == 1 else 'them'}")

    def worst_case_masks(self, attacks=None) -> list[np.ndarray]:
        """Per seed, the points robust to every attack of ``attacks`` (default: the whole battery)."""
        names = list(self.attacks) if attacks is None else list(attacks)
        per_attack = [self.masks(a) for a in names]
        out = []
        for i, clean in enumerate(self.masks("clean")):
            m = clean.copy()
            for masks in per_attack:
                m &= masks[i]
            out.append(m)
        return out

    def worst_case_over(self, attacks) -> tuple[float, float]:
        """Mean and std over seeds of the worst case over a subset of the measured attacks."""
        return _mean_std([int(m.sum()) / self.n for m in self.worst_case_masks(attacks)])

    def point_scores(self, attacks=None) -> np.ndarray:
        """Per point, the fraction of seeds in which it is robust to ``attacks`` (0 or 1 for one seed)."""
        return np.mean(np.stack(self.worst_case_masks(attacks)), axis=0)

    @property
    def qrobench_version(self) -> str:
        return str(self.versions.get("qrobench", ""))

    # -- (de)serialisation -----------------------------------------------------------------

    def to_dict(self) -> dict:
        d = {"schema": self.schema}
        for f in dataclasses.fields(self):
            if f.name == "schema":
                continue
            v = getattr(self, f.name)
            if v is None and f.name in _OPTIONAL:
                continue
            d[f.name] = dataclasses.asdict(v) if dataclasses.is_dataclass(v) else \
                [x.as_dict() for x in v] if f.name == "per_seed" else v
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "<result>") -> Result:
        d = migrate(d, source)
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        kwargs["std"] = Spread(**{k: v for k, v in (d.get("std") or {}).items()
                                  if k in Spread.__dataclass_fields__})
        try:
            kwargs["per_seed"] = [SeedResult(**{k: v for k, v in r.items() if k in SeedResult.__dataclass_fields__})
                                  for r in d.get("per_seed") or []]
        except TypeError as e:
            raise QrobenchError(f"{source}: a per-seed entry is incomplete ({e})") from None
        return cls(**kwargs)


_OPTIONAL = ("protocol", "weights", "submission", "merged_from", "diagnostics", "shard", "cascade", "cascade_from",
             "score_draw", "sweep",
             "deployment", "weight_threat", "corruptions", "cpu")


def _mean_std(values: list[float]) -> tuple[float, float]:
    return float(statistics.fmean(values)), float(statistics.stdev(values)) if len(values) > 1 else 0.0


def migrate(d: dict, source: str = "<result>") -> dict:
    """A result dict of any known schema, in the current layout (a new dict; ``d`` is kept)."""
    if not isinstance(d, dict) or d.get("schema") not in RESULT_SCHEMAS:
        raise QrobenchError(f"{source} is not a qrobench result file (schema one of "
                            f"{', '.join(RESULT_SCHEMAS)}, as 'qrobench run' writes)")
    missing = [k for k in REQUIRED_FIELDS if k not in d]
    if missing:
        raise QrobenchError(f"result {source} lacks field(s) {', '.join(missing)}; re-run the evaluation "
                            "that produced it or move it out of the results folder")
    d = dict(d)
    if d["schema"] == "qrobench-result-v1":
        # v1: qrobench check stored its protocol apart, submit its weight measurement under
        # another name, and bits could be missing (then the precision token decides).
        if "check_protocol" in d:
            d["protocol"] = {"name": "check", **d.pop("check_protocol")}
        if "quant_measurement" in d:
            d["weights"] = d.pop("quant_measurement")
        if not isinstance(d.get("bits"), (int, float)):
            d["bits"] = precision_bits(d.get("precision"))
        d["schema"] = RESULT_SCHEMA
    # files written before threat model and data set were axes: the norm decides the threat
    # model, and every such file measured CIFAR-10
    if "threat_model" not in d:
        try:
            d["threat_model"] = threat_model_of_norm(d.get("norm", "Linf"))
        except ValueError as e:
            raise QrobenchError(f"{source}: {e}") from None
    d.setdefault("dataset", DEFAULT_DATASET)
    return d


def is_result_dict(d) -> bool:
    """Whether parsed JSON is a result record (of any schema this version reads)."""
    return isinstance(d, dict) and d.get("schema") in RESULT_SCHEMAS


def default_output_path(model: str, results_dir: str | os.PathLike = "results/runs") -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", model)
    path = Path(results_dir) / f"{safe}__{stamp}.json"
    k = 1
    while path.exists():
        path = Path(results_dir) / f"{safe}__{stamp}-{k}.json"
        k += 1
    return path


def write_result(result: Result, path: str | os.PathLike) -> Path:
    """Write ``result`` as JSON, atomically: a failure never leaves half a file."""
    return atomic_write_text(path, json.dumps(result.to_dict(), indent=2) + "\n")


def read_result(path: str | os.PathLike) -> Result:
    """Load a result file of any known schema; a clear error for anything else."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise QrobenchError(f"result file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise QrobenchError(f"cannot read {path} as a result JSON ({e})") from None
    return Result.from_dict(d, str(path))
