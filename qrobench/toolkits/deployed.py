"""A deployed model that cannot be differentiated, attacked through its differentiable twin (BPDA).

Integer kernels and ONNX Runtime sessions give logits but no input gradient. The wrapper's
forward returns the *deployed* logits — so every decision (which points are clean-correct,
when a point is fooled, the final score, a black-box attack's queries) is the deployed
model's — while the gradient is the twin's: ``twin(x) + (deployed(x) − twin(x)).detach()``
(backward pass differentiable approximation, Athalye et al. 2018). Without a gradient asked
for, only the deployed model runs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn


class DeployedModel(nn.Module):
    def __init__(self, deployed: Callable[[torch.Tensor], torch.Tensor], twin: nn.Module, *,
                 execution: dict, twin_info: dict, name: str | None = None):
        super().__init__()
        self.twin = twin
        # not a submodule: .to(cuda) must not move integer kernels or a runtime session
        object.__setattr__(self, "deployed", deployed)
        self.execution = dict(execution)  # runtime, version, engine / provider, device
        self.twin_info = dict(twin_info)  # what the twin is and where it came from
        if name is not None:
            self.name = name

    @torch.no_grad()
    def run_deployed(self, x: torch.Tensor) -> torch.Tensor:
        out = self.deployed(x.detach().to("cpu", memory_format=torch.contiguous_format))
        return out.to(x.device, torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (torch.is_grad_enabled() and x.requires_grad):
            return self.run_deployed(x)
        t = self.twin(x)
        return t + (self.run_deployed(x) - t).detach()

    @torch.no_grad()
    def twin_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.twin(x)


def is_deployed(model: nn.Module) -> bool:
    return isinstance(model, DeployedModel)


class Materialised(nn.Module):
    """A toolkit model's equivalent with its quantized weights computed once (a toolkit that
    re-quantizes on every forward is slow to attack); the engine checks its logits against
    the toolkit's own forward on the evaluated points before trusting it."""

    def __init__(self, fast: nn.Module, reference: nn.Module, *, how: str, atol: float = 1e-4):
        super().__init__()
        self.fast = fast
        object.__setattr__(self, "reference", reference)  # the toolkit's own module, not moved
        self.how = how
        self.atol = atol  # |Δ logit| allowed, relative to 1 + max |logit|
        self.use_reference = False  # set by the engine when the check fails

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_reference:
            ref = self.reference.to(x.device)
            return ref(x)
        return self.fast(x)
