"""CIFAR-10-C-style corruptions generated offline: the corruptions track without the 2.9 GB download.

The 15 benchmark corruptions and 4 extras of Hendrycks & Dietterich (ICLR 2019), re-implemented
with numpy, scipy and Pillow at the parameters of their ``make_cifar_c.py`` (table:
``params.PARAMS``). The random draws differ from theirs and some library steps are
re-implemented (below), so a generated set is *like* the published arrays, never equal to
them; it is labelled ``GENERATED_SOURCE`` wherever it is used.

Choices:
- Motion blur and snow: the original calls ImageMagick's MotionBlurImage through Wand. Here
  the same one-sided Gaussian sum along the angle, edge-clamped, is done in numpy
  (``filters.motion_blur``): no system library to install.
- Frost: the five frost pictures the original uses are vendored, already reduced to the
  original's 0.2 scale (130 kB), under ``frost/`` with their Apache-2.0 licence and a NOTICE.
  Installing ``imagecorruptions`` for them would pull OpenCV and scikit-image.
- Seeding: image k's corruption is drawn from a generator seeded by (seed, corruption,
  severity, k), so it does not depend on the batch or on n.
"""

from __future__ import annotations

from ..cifar10c import BENCHMARK, EXTRA
from .apply import CORRUPTIONS, check_corruption, corrupt
from .cache import GENERATED_SOURCE, default_cache_dir, generate_set, load_generated
from .params import GENERATOR_VERSION, PARAMS, params_hash

__all__ = ["BENCHMARK", "CORRUPTIONS", "EXTRA", "GENERATED_SOURCE", "GENERATOR_VERSION", "PARAMS",
           "check_corruption", "corrupt", "default_cache_dir", "generate_set", "load_generated", "params_hash"]
