import pytest

from qrobench.data.cifar10 import load_cifar10_test


@pytest.fixture(scope="session")
def model():
    """The zoo's adversarially trained res20-fp: attacks on it take the steps a real evaluation
    takes (on an untrained network nearly every point falls at the first step, which would
    flatter any attack that stops early)."""
    from qrobench.zoo.store import Zoo

    net, _ = Zoo().load("res20-fp")
    return net.eval().requires_grad_(False)


@pytest.fixture(scope="session")
def points():
    return load_cifar10_test(128)


# (numerator, denominator, what the ratio says): names as pytest-benchmark lists them
RATIOS = [
    ("test_torchattacks_pgd", "test_qrobench_pgd20[channels_last]", "pgd20: qrobench faster than torchattacks PGD"),
    ("test_qrobench_pgd20[channels_last]", "test_qrobench_pgd20_compiled",
     "pgd20: torch.compile vs eager (above 1: compiling helps; compile time excluded)"),
    ("test_gradient_pass_bound", "test_qrobench_pgd20[channels_last]",
     "pgd20: qrobench vs the 21-pass gradient bound (above 1: early stopping beats the bound)"),
    ("test_torchattacks_battery", "test_qrobench_battery[full]",
     "pgd20+cw: qrobench faster than torchattacks PGD + UPGD(margin)"),
    ("test_torchattacks_battery", "test_qrobench_battery[cascade]",
     "pgd20+cw --cascade: qrobench faster than torchattacks"),
    ("test_pyautoattack_direct", "test_qrobench_autoattack", "aa: qrobench faster than pyautoattack direct"),
    ("test_run_workers[1]", "test_run_workers[2]", "--workers 2 (gloo ranks) faster than one process"),
    ("test_enresnet20_pass[noise]", "test_resnet20_pass", "one gradient pass: EnResNet20 (2 members, noise) vs ResNet20"),
    ("test_enresnet20_pass[noise]", "test_enresnet20_pass[no-noise]",
     "one gradient pass: EnResNet20 with its Feynman-Kac noise vs the noise off"),
]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The speed-ups the README quotes, as ratios of means measured side by side in this run."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    by_name = {b.name: b for b in session.benchmarks if b.stats}
    lines = []
    for num, den, what in RATIOS:
        if num in by_name and den in by_name:
            a, b = by_name[num], by_name[den]
            ratio = a.stats.mean / b.stats.mean
            accs = [x.extra_info.get("robust_acc_pct") for x in (b, a)]
            acc = (f"   robust accuracy {accs[0]:.2f} % vs {accs[1]:.2f} %"
                   if None not in accs else "")
            lines.append(f"{ratio:6.2f}x  {what}  ({b.stats.mean:.2f} s vs {a.stats.mean:.2f} s){acc}")
    comp = by_name.get("test_qrobench_pgd20_compiled")
    if comp is not None and "compile_s" in comp.extra_info:
        lines.append(f"torch.compile: {comp.extra_info['compile_s']:.1f} s to compile and run once (eager run included), "
                     f"{100 * comp.extra_info['agreement_with_eager']:.1f} % of points predicted as after eager pgd20")
    lines += _pass_bound_lines(by_name) + _whole_process_lines(by_name)
    if lines:
        import platform

        import torch

        terminalreporter.write_sep("-", f"ratios (means, one run; {platform.processor() or 'cpu'}, "
                                        f"{torch.get_num_threads()} threads)")
        for line in lines:
            terminalreporter.write_line(line)


def _pass_bound_lines(by_name) -> list[str]:
    """test_pass_bound.py: the engine's gradient images per second beside the replay of the same
    passes on the bare model, and beside full-batch fwd+bwd (test_gradient_pass_bound)."""
    b = by_name.get("test_engine_pass_bound")
    if b is None or "share" not in b.extra_info:
        return []
    i = b.extra_info
    line = (f"{100 * i['share']:5.1f} %  engine's share of the pass bound, pgd20+cw: {i['engine_images_per_s']:.0f} vs "
            f"{i['bound_images_per_s']:.0f} gradient images/s for the {i['grad_images']} it made "
            f"(median of 3 interleaved rounds)")
    full = by_name.get("test_gradient_pass_bound")
    if full is not None:
        line += f"; bare fwd+bwd at the full batch: {21 * 128 / full.stats.mean:.0f} images/s"
    return [line]


def _whole_process_lines(by_name) -> list[str]:
    """test_whole_process.py: qrobench run vs the torchattacks script, median of interleaved pairs,
    once per gradient precision of qrobench's attacks (torchattacks is fp32 in both)."""
    import statistics

    lines = []
    for name, b in by_name.items():
        if not name.startswith("test_whole_process_battery") or "median_pair_ratio" not in b.extra_info:
            continue
        i = b.extra_info
        lines += [f"{i['median_pair_ratio']:6.2f}x  pgd20+cw, whole processes, n = {i['n']}, qrobench gradients in "
                  f"{i.get('grad_precision', 'fp32')}: qrobench run faster than torchattacks "
                  f"PGD + UPGD(margin) (median of {len(i['qrobench_s'])} interleaved pairs; medians "
                  f"{statistics.median(i['qrobench_s']):.1f} s vs {statistics.median(i['torchattacks_s']):.1f} s)"
                  f"   robust accuracy {i['robust_acc_pct']:.2f} % vs {i['torchattacks_robust_acc_pct']:.2f} %",
                  "         pairs (qrobench s / torchattacks s): " + ", ".join(
                      f"{q:.1f} / {t:.1f}" for q, t in zip(i["qrobench_s"], i["torchattacks_s"], strict=True))]
    return lines
