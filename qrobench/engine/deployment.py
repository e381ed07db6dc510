"""What the engine measures about a toolkit model besides its accuracy.

A deployed model attacked through a twin (BPDA) is only as well attacked as the twin is
faithful, so the record carries how far they agree on clean points (argmax agreement, largest
logit difference) and how often an adversarial example that fools the twin also fools the
deployed model (the transfer rate). A materialised forward is trusted only after its logits
match the toolkit's own on every evaluated point. Counts are per batch, so they are journaled
with the batch and add up over shards.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import QrobenchError
from ..toolkits.deployed import DeployedModel, Materialised
from ..toolkits.formats import model_format


def agreement_counts(model: DeployedModel, x: torch.Tensor, deployed_logits: torch.Tensor) -> dict:
    twin = model.twin_logits(x)
    return {"points": len(x), "agree": int((twin.argmax(1) == deployed_logits.argmax(1)).sum()),
            "max_abs_logit_diff": float((twin - deployed_logits).abs().max()) if len(x) else 0.0}


def transfer_counts(model: DeployedModel, x_adv: torch.Tensor, y: torch.Tensor,
                    deployed_correct: torch.Tensor) -> dict:
    twin_fooled = model.twin_logits(x_adv).argmax(1) != y
    return {"twin_fooled": int(twin_fooled.sum()),
            "both_fooled": int((twin_fooled & ~deployed_correct.to(twin_fooled.device)).sum())}


def _add(total: dict, part: dict | None) -> None:
    for k, v in (part or {}).items():
        total[k] = max(total.get(k, 0.0), v) if k.startswith("max") else total.get(k, 0) + v


def _rated(agree: dict, transfer: dict) -> tuple[dict, dict]:
    if agree:
        agree["rate"] = agree["agree"] / agree["points"] if agree.get("points") else None
    for t in transfer.values():
        t["rate"] = t["both_fooled"] / t["twin_fooled"] if t.get("twin_fooled") else None
    return agree, transfer


def combine(records: list[dict | None], same_clean_points: bool) -> dict | None:
    """One ``deployment`` record for merged results: counts add up over shards and seeds; files
    holding other attacks of the same run share their clean points, counted once."""
    records = [r for r in records if r]
    if not records:
        return None
    out = {k: v for k, v in records[0].items() if k not in ("agreement", "transfer")}
    if "agreement" not in records[0]:
        return out
    agree: dict = {}
    for r in records[:1] if same_clean_points else records:
        _add(agree, {k: v for k, v in r.get("agreement", {}).items() if k != "rate"})
    transfer: dict = {}
    for r in records:
        for a, t in r.get("transfer", {}).items():
            _add(transfer.setdefault(a, {}), {k: v for k, v in t.items() if k != "rate"})
    out["agreement"], out["transfer"] = _rated(agree, transfer)
    return out


def summarise(model: nn.Module, clean_parts: list[dict], attack_parts: dict[str, list[dict]],
              equivalence: dict | None) -> dict | None:
    """The result's ``deployment`` record (None for a plain torch model)."""
    if isinstance(model, DeployedModel):
        agree: dict = {}
        for p in clean_parts:
            _add(agree, p)
        transfer = {}
        for a, parts in attack_parts.items():
            t: dict = {}
            for p in parts:
                _add(t, p)
            if t:
                transfer[a] = t
        agree, transfer = _rated(agree, transfer)
        return {"format": model_format(model), "execution": model.execution, "twin": model.twin_info,
                "gradients": "BPDA: deployed logits forward, twin gradient backward",
                "agreement": agree, "transfer": transfer}
    if isinstance(model, Materialised):
        return {"format": model_format(model), "execution": {"runtime": "torch", "torch": torch.__version__,
                                                             "materialised": model.how},
                "equivalence": equivalence}
    return None


@torch.no_grad()
def check_materialised(model: Materialised, x: torch.Tensor, batch_size: int, device) -> dict:
    """Compare the materialised logits with the toolkit's own on the evaluated points; on a
    mismatch the toolkit's forward is used (slow but exact) and the record says so."""
    ref = model.reference.to(device).eval()
    diff, scale = 0.0, 0.0
    for s in range(0, len(x), batch_size):
        xb = x[s:s + batch_size].to(device)
        a, b = model.fast(xb), ref(xb)
        diff = max(diff, float((a - b).abs().max()))
        scale = max(scale, float(b.abs().max()))
    tol = model.atol * (1.0 + scale)
    passed = diff <= tol
    model.use_reference = not passed
    return {"points": len(x), "max_abs_logit_diff": diff, "tolerance": tol,
            "rule": f"|Δ logit| ≤ {model.atol:g}·(1 + max |logit|)", "passed": passed,
            "evaluated_with": "materialised" if passed else "toolkit forward (materialised did not match)"}


def require_gradients(model: nn.Module, x: torch.Tensor, attacks: dict) -> None:
    """A white-box attack on a model without input gradient fails deep inside autograd; say
    what to do instead."""
    white = [a for a, atk in attacks.items() if getattr(atk, "white_box", True)]
    if not white or isinstance(model, DeployedModel):
        return
    xg = x[:2].clone().requires_grad_(True)
    with torch.enable_grad(), torch.random.fork_rng(devices=[]):  # the run's random stream untouched
        try:
            out = model(xg)
        except RuntimeError as e:
            raise QrobenchError(f"the model fails when its input requires a gradient ({str(e)[:160]}); "
                                "gradient attacks need a differentiable twin: pass --twin") from e
    if not (isinstance(out, torch.Tensor) and out.requires_grad):
        raise QrobenchError(
            f"the model gives no gradient with respect to its input (integer kernels or a runtime?), so "
            f"{', '.join(white)} cannot attack it; give a differentiable twin (--twin a zoo model or "
            "package.module:factory; qrobench.toolkits.prepare(model, twin=...)) to attack it by BPDA, "
            "or run black-box attacks only (--attacks square)")
