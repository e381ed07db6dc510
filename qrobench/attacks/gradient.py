"""Shared machinery of the gradient attacks: input gradients (with EOT) and L∞ projection."""

from __future__ import annotations

import torch
import torch.nn as nn


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, eot_iter: int = 1):
    """Gradient of the summed loss w.r.t. x, averaged over ``eot_iter`` forward passes
    (noise draws, for stochastic models); also returns the last logits."""
    grad = torch.zeros_like(x)
    logits = None
    for _ in range(eot_iter):
        xr = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = model(xr)
            loss = loss_fn(logits, y).sum()
            (g,) = torch.autograd.grad(loss, xr)
        grad += g
    return grad / eot_iter, logits.detach()


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)


def zero_grad_fraction(g: torch.Tensor) -> float:
    flat = g.flatten(1)
    bad = (flat.abs().amax(1) == 0) | ~torch.isfinite(flat).all(1)
    return float(bad.float().mean()) if len(flat) else 0.0
