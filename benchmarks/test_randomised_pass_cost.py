"""What one gradient pass of the zoo's randomised model costs beside a ResNet20's: the cost
estimates for the EnResNets' remaining compute (README, "What each track costs") scale from it.

An En2ResNet20 runs two ResNet20 members, and each member adds Feynman-Kac noise after every
residual block (a normal draw, the batch tensor's std and its backward), so it costs more than
twice a ResNet20 pass. Each benchmark is one forward + input-gradient pass of 100 points in
channels_last with the weights frozen, as an attack step makes; the zoo's trained weights, and
the EnResNet once more with its noise switched off (coef 0), which prices the noise alone.
"""

import pytest
import torch

from qrobench.models.noise import FeynmanKacNoise
from qrobench.zoo.store import Zoo

GROUP = "one gradient pass, 100 points: EnResNet20 vs ResNet20"


def _net(name: str, noise: bool = True):
    net, _ = Zoo().load(name)
    net = net.eval().requires_grad_(False).to(memory_format=torch.channels_last)
    if not noise:
        for m in net.modules():
            if isinstance(m, FeynmanKacNoise):
                m.coef = 0.0
    return net


def _pass(net, x):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(net(x).logsumexp(1).sum(), x)
    return g


@pytest.fixture(scope="module")
def batch(points):
    return points.x[:100].clone().to(memory_format=torch.channels_last)


@pytest.mark.benchmark(group=GROUP)
def test_resnet20_pass(benchmark, batch):
    net = _net("res20-fp")
    g = benchmark.pedantic(_pass, args=(net, batch), rounds=5, warmup_rounds=1)
    assert g.shape == batch.shape and g.abs().sum() > 0


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("noise", [True, False], ids=["noise", "no-noise"])
def test_enresnet20_pass(benchmark, batch, noise):
    net = _net("enres20-fp", noise)
    g = benchmark.pedantic(_pass, args=(net, batch), rounds=5, warmup_rounds=1)
    assert g.shape == batch.shape and g.abs().sum() > 0
