"""The studies beside the leaderboard: quantization sweeps, AT-vs-natural sensitivity, per-layer
weights, and the Findings that test the seed papers' claims against them.

Three layers, each importing only the ones before it: data.py gathers the numbers, findings.py
derives the verdicts, render.py formats both. The names below are the package's public face.
"""

from .data import at_chance, fullset_table, layer_groups, pair_models, read_sweeps, sweep_table
from .findings import (
    Finding,
    Studies,
    _lgmp_finding,
    _lgmp_finetuned_finding,
    _sensitivity_finding,
    _tradeoff_findings,
    collect_studies,
)
from .render import json_doc, per_layer_rows

__all__ = ["Finding", "Studies", "_lgmp_finding", "_lgmp_finetuned_finding", "_sensitivity_finding",
           "_tradeoff_findings", "at_chance", "collect_studies", "fullset_table", "json_doc",
           "layer_groups", "pair_models", "per_layer_rows", "read_sweeps", "sweep_table"]
