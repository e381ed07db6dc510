"""Common corruptions (Hendrycks & Dietterich, ICLR 2019): accuracy on CIFAR-10-C, scored the
way RobustBench's corruptions track scores it.

Each (corruption, severity) pair is one column of the record (``gaussian_noise@3``): the
first n test images with that corruption, classified plainly, so a column is the accuracy on
the corrupted images, NOT the points correct both clean and corrupted (the ε-ball records'
robust ≤ clean does not hold here). The headline is the mean over the columns (15
corruptions × 5 severities: RobustBench's number), in the record's ``corruptions`` summary
with the means per corruption and per severity. ``worst_case_acc`` keeps its meaning for the
record's machinery: points correct clean and under every column.

Data: the official CIFAR-10-C arrays whenever the folder is there (data/cifar10c.py), else a
generated CIFAR-10-C-style set (data/corruptions/), named as such in the record.
"""

from __future__ import annotations

import time

import torch
import torch.nn as nn

from ..data.cifar10 import EvalData
from ..data.cifar10c import BENCHMARK, EXTRA, SEVERITIES, SOURCE, find_cifar10c, load_cifar10c
from ..engine.journal import Journal
from ..engine.outcomes import decode_mask, encode_mask
from ..engine.results import Result, SeedResult
from ..engine.seeding import CLEAN, predict
from ..errors import QrobenchError
from ..models.noise import is_stochastic
from ..protocol import default_repeats
from ..quant.measure import measure_weights
from .record import weight_threat_result

THREAT_MODEL = "corruptions"
SOURCES = ("auto", "official", "generated")
ALL = BENCHMARK + EXTRA
SEVERITY_LEVELS = tuple(range(1, SEVERITIES + 1))
METRIC = ("mean over the (corruption, severity) columns of the plain accuracy on the corrupted images "
          "(RobustBench's corruptions track); a column is not ANDed with clean accuracy")


def column_name(corruption: str, severity: int) -> str:
    return f"{corruption}@{severity}"


def check_corruptions(names) -> tuple[str, ...]:
    """Known CIFAR-10-C corruption names, each once; a one-line error otherwise."""
    names = tuple(names)
    unknown = [c for c in names if c not in ALL]
    if unknown:
        raise QrobenchError(f"unknown corruption(s) {', '.join(map(repr, unknown))}; CIFAR-10-C has "
                            f"{', '.join(BENCHMARK)} (benchmark) and {', '.join(EXTRA)} (extra)")
    if not names or len(set(names)) != len(names):
        raise QrobenchError(f"corruptions must name each corruption once, at least one: got {list(names)}")
    return names


def _column_stream(corruption: str, severity: int) -> int:
    """The noise stream of a column, fixed by the corruption and severity, not by its position,
    so a run over some corruptions and a run over all draw the same noise for the same column."""
    return 1 + ALL.index(corruption) * SEVERITIES + severity - 1


def _generated(corruption: str, severity: int, n: int | None, data_dir):
    try:
        from ..data.corruptions import load_generated
    except ImportError:
        raise QrobenchError("no official CIFAR-10-C folder found and this qrobench has no corruption "
                            "generator (qrobench.data.corruptions); download the official release into "
                            "<data-dir>/CIFAR-10-C") from None
    return load_generated(corruption, severity, n=n, data_dir=data_dir)


def resolve_source(source: str, data_dir=None) -> str:
    """``official`` or ``generated``: ``auto`` is the official arrays where their folder is present."""
    if source not in SOURCES:
        raise QrobenchError(f"corruption source must be one of {', '.join(SOURCES)}, got {source!r}")
    if source == "auto":
        return "official" if find_cifar10c(data_dir) is not None else "generated"
    return source


def load_corrupted(corruption: str, severity: int, n: int | None = None, data_dir=None,
                   source: str = "auto") -> EvalData:
    """The first ``n`` test images under ``corruption`` at ``severity``: the official arrays
    (``official``), the generated set (``generated``), or the official ones where present (``auto``)."""
    check_corruptions([corruption])
    if resolve_source(source, data_dir) == "official":
        return load_cifar10c(corruption, severity, n, data_dir)
    return _generated(corruption, severity, n, data_dir)


def _source_label(data: EvalData) -> str:
    """The record's name for where a column came from: official or generated."""
    if data.source.startswith(SOURCE):
        return SOURCE
    from ..data.corruptions import GENERATED_SOURCE
    return GENERATED_SOURCE if data.source.startswith(GENERATED_SOURCE) else data.source


@torch.no_grad()
def evaluate_corruptions(model: nn.Module, n: int = 1000, *, corruptions=BENCHMARK, severities=SEVERITY_LEVELS,
                         source: str = "auto", seed: int = 0, repeats: int | None = None, batch_size: int = 500,
                         card=None, command: str | None = None, data_dir=None, clean: EvalData | None = None,
                         journal: Journal | None = None) -> Result:
    """The corruption record of ``model`` on the first ``n`` test points (see the module docstring).

    ``repeats``: seeds of a randomised model's test-time noise (default: 3 for a randomised model,
    1 otherwise, as for the attacks); ``clean``: the clean points (default: the CIFAR-10 test set);
    ``journal``: finished columns are kept there and read back on resume."""
    corruptions = check_corruptions(corruptions)
    severities = tuple(severities)
    if not severities or any(s not in SEVERITY_LEVELS for s in severities) or len(set(severities)) != len(severities):
        raise QrobenchError(f"severities are distinct levels 1-{SEVERITIES}, got {list(severities)}")
    source = resolve_source(source, data_dir)  # once: every column from the same source
    stochastic = is_stochastic(model)
    repeats = default_repeats(stochastic) if repeats is None else repeats
    if repeats < 1:
        raise QrobenchError(f"repeats must be at least 1, got {repeats}")
    if clean is None:
        from ..data.registry import load_test_set
        clean = load_test_set("cifar10", n, data_dir)
    clean = EvalData(clean.x[:n], clean.y[:n], clean.source)
    n = len(clean)
    model = model.cpu().eval()
    stats = measure_weights(model)
    dev = torch.device("cpu")
    seeds = [seed + r for r in range(repeats)]
    t0 = time.perf_counter()

    def correct(x, y, s, stream):
        return predict(model, x, batch_size, dev, (s, stream, 0)).cpu() == y

    def column(data: EvalData, name: str, s: int, stream: int):
        """One seed's mask and time on one column: from the journal when a killed run finished it."""
        done = journal.get(s, name, 0) if journal is not None else None
        if done is not None:
            return torch.from_numpy(decode_mask(done["mask"], n)), done["time"]
        t = time.perf_counter()
        mask = correct(data.x, data.y, s, stream)
        seconds = time.perf_counter() - t
        if journal is not None:
            journal.record(s, name, 0, encode_mask(mask.numpy()), seconds)
        return mask, seconds

    t = time.perf_counter()
    clean_masks = [correct(clean.x, clean.y, s, CLEAN) for s in seeds]
    clean_time = (time.perf_counter() - t) / len(seeds)
    masks = {s: {} for s in seeds}
    times = {s: {} for s in seeds}
    settings = {}
    for c in corruptions:
        for sev in severities:
            name = column_name(c, sev)
            data = load_corrupted(c, sev, n, data_dir, source)
            if not torch.equal(data.y, clean.y):
                raise QrobenchError(f"the labels of {data.source} differ from the clean test labels; the corrupted "
                                    "set must hold the test images in their original order")
            settings[name] = {"corruption": c, "severity": sev, "source": _source_label(data), "data": data.source}
            for s in seeds:
                masks[s][name], times[s][name] = column(data, name, s, _column_stream(c, sev))
    runs = [SeedResult.from_masks(s, m, masks[s], wall_time_s=times[s], clean_time_s=clean_time)
            for s, m in zip(seeds, clean_masks, strict=True)]
    label = next(iter(settings.values()))["source"]
    record = EvalData(clean.x, clean.y, f"{label}; clean: {clean.source}")
    return weight_threat_result(model, card, stats, None, record, threat_model=THREAT_MODEL, attacks=settings,
                                per_seed=runs, batch_size=batch_size, command=command,
                                started=t0 - (journal.recovered_time_s if journal is not None else 0.0),
                                stochastic=stochastic, flags=[], corruptions={"metric": METRIC, "source": label})


def describe() -> str:
    """What ``qrobench attacks --threat-model corruptions`` prints."""
    here = find_cifar10c()
    data = f"official CIFAR-10-C in {here}" if here else "no official CIFAR-10-C folder found: the generated set"
    return (f"threat model {THREAT_MODEL}: common corruptions of the input (CIFAR-10-C, Hendrycks & Dietterich "
            f"2019); no attack battery runs under it.\n"
            f"benchmark ({len(BENCHMARK)}): {', '.join(BENCHMARK)}\n"
            f"extra ({len(EXTRA)}, on request): {', '.join(EXTRA)}\n"
            f"severities 1-{SEVERITIES}; metric: {METRIC}\n"
            f"data: {data} (--corruption-source auto|official|generated)\n"
            f"run: qrobench run --model M --threat-model {THREAT_MODEL} [--corruptions a,b] [--n 1000]")
