"""``cw-paper``: the EnResNet / quantization papers' own C&W evaluation (a paper protocol).

Named after Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks" (IEEE
S&P 2017, arXiv 1608.04644), but reimplemented from the authors' evaluation code
(docs/protocol.md §6.2) and much weaker than real C&W: it exists only so that measured
numbers can be set beside the published ones (Wang et al., EnResNet, NeurIPS 2019; Li, Wang
& Xin, arXiv 2008.13305). Never use it as evidence of robustness; use ``cw``.

Settings: Adam (lr 6e-4, 50 iterations) on ‖x′ − x‖² + c·max(Z_true − Z_t, 0), c = 10, t the
runner-up class on the clean input, x′ clipped to [0, 1] after each step; then
x_adv = x + 0.031·(x* − x), projected onto the ε-ball and [0, 1]. Deterministic: draws
nothing from ``generator``. Returns that x_adv for every point, successful or not.

Example::

    atk = create_attack("cw-paper", model, eps=8/255)
    x_adv = atk(x, y)
"""

from __future__ import annotations

import torch

from .base import Attack, register_attack
from .gradient import project


@register_attack("cw-paper")
class CWPaper(Attack):
    def __init__(self, model, iterations: int = 50, lr: float = 6e-4, c: float = 10.0,
                 scale: float = 0.031, **kwargs):
        super().__init__(model, **kwargs)
        self.iterations, self.lr, self.c, self.scale = int(iterations), float(lr), float(c), float(scale)

    def settings(self):
        return {**super().settings(), "optimizer": "adam", "iterations": self.iterations,
                "lr": self.lr, "c": self.c, "final_scale": self.scale, "target": "runner-up class"}

    def perturb(self, x, y, generator=None):
        x = x.detach()
        with torch.no_grad():
            logits = self.model(x)
            other = logits.clone()
            other.scatter_(1, y[:, None], float("-inf"))
            target = other.argmax(1)
        w = x.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=self.lr)
        for _ in range(self.iterations):
            with torch.enable_grad():
                z = self.model(w)
                zy = z.gather(1, y[:, None]).squeeze(1)
                zt = z.gather(1, target[:, None]).squeeze(1)
                dist = (w - x).flatten(1).pow(2).sum(1)
                loss = (dist + self.c * torch.clamp(zy - zt, min=0)).sum()
                opt.zero_grad()
                loss.backward()
            opt.step()
            with torch.no_grad():
                w.clamp_(0.0, 1.0)
        x_star = w.detach()
        return project(x + self.scale * (x_star - x), x, self.eps)
