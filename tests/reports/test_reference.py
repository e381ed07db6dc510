"""The published reference rows: the typed numbers are the poster's, the sizes are qrobench's own."""

import json
from pathlib import Path

import pytest

from qrobench.models import create_model
from qrobench.quant.measure import measure_weights

PUBLISHED = Path(__file__).resolve().parents[2] / "results" / "reference" / "published.json"
ROWS = json.loads(PUBLISHED.read_text())["rows"]


def test_published_reference_file_matches_protocol_section_7():
    d = json.loads(PUBLISHED.read_text())
    assert d["schema"] == "qrobench-reported-v1" and d["status"] == "reported" and "poster" in d["source"]
    got = {r["model"]: (r["clean_acc"], r["robust_acc"]["fgsm"], r["robust_acc"]["ifgsm20"],
                        r["robust_acc"]["cw-paper"]) for r in d["rows"]}
    assert got == {"ResNet20": (0.7511, 0.5089, 0.4603, 0.5873), "En1ResNet20": (0.7721, 0.5535, 0.4906, 0.6569),
                   "En2ResNet20": (0.8034, 0.5723, 0.5006, 0.6647), "En5ResNet20": (0.8252, 0.5892, 0.5148, 0.6773)}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["model"])
def test_stored_size_is_the_architectures_measured_size(row):
    """The reports never build networks, so a published float model's size is stored beside its
    numbers; it must be what qrobench measures for that architecture."""
    st = measure_weights(create_model(row["architecture"], **row["arch_args"]))
    assert row["size_bytes"] == st.size_bytes and st.compression == 1.0
