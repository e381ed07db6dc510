import torch
import torch.nn as nn

from qrobench.cli import main
from qrobench.models import create_model
from qrobench.quant import quantized_layers
from qrobench.quant.lipschitz import conv_operator_norm, plan_mixed_precision
from qrobench.train.export import export_to_zoo
from qrobench.zoo import Zoo


def test_power_iteration_matches_the_exact_operator_norm():
    torch.manual_seed(0)
    for stride in (1, 2):
        c = nn.Conv2d(2, 3, 3, stride=stride, padding=1, bias=False)
        basis = torch.eye(2 * 6 * 6).reshape(-1, 2, 6, 6)
        matrix = c(basis).reshape(72, -1).T.detach()
        exact = float(torch.linalg.matrix_norm(matrix, 2))
        est = conv_operator_norm(c.weight.detach(), c, (2, 6, 6), iters=300)
        assert abs(est - exact) / exact < 0.01


def test_plan_meets_the_budget_and_more_bits_lower_the_bound():
    torch.manual_seed(0)
    m = create_model("preact_resnet", depth=8)
    p3, p4, p6 = (plan_mixed_precision(m, b) for b in (3.0, 4.0, 6.0))
    for p, budget in ((p3, 3.0), (p4, 4.0), (p6, 6.0)):
        assert p["avg_bits"] <= budget + 1e-9
        assert p["avg_bits"] > budget - 1.0  # the budget is nearly used up
    assert p6["bound_sum"] < p4["bound_sum"] < p3["bound_sum"]


def test_quantize_command_exports_a_loadable_mixed_model(tmp_path, capsys):
    torch.manual_seed(0)
    fp = create_model("preact_resnet", depth=8)
    export_to_zoo(fp, "res8-fp", "preact_resnet", {"depth": 8}, "fp", "test", {}, tmp_path)
    # quantize expects a zoo-style name; register the tiny architecture under the res20 token's rules
    assert main(["quantize", "res20-mixed", "--from", "res8-fp", "--avg-bits", "4", "--zoo-dir", str(tmp_path)]) == 0
    model, card = Zoo(tmp_path).load("res20-mixed")
    bits = card.arch_args["layer_bits"]
    assert card.precision == "mixed" and set(bits.values()) <= {2, 3, 4, 5, 6, 8}
    for name, layer in quantized_layers(model):
        assert len(torch.unique(layer.weight)) <= 2 ** bits[name] - 1
    assert "qrobench-LGMP" in card.recipe
