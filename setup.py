"""Build script for the compiled quant core.

Every ``.pyx`` file under ``hourmm_core/`` is compiled; there is no pure-Python
fallback at import time, so a missing compiler fails the install loudly instead
of shipping slow code to production.
"""
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

ROOT = Path(__file__).parent


def _extensions() -> list[Extension]:
    exts = []
    for pyx in sorted(ROOT.glob("hourmm_core/**/*.pyx")):
        rel = pyx.relative_to(ROOT).with_suffix("")
        exts.append(
            Extension(
                ".".join(rel.parts),
                [str(pyx.relative_to(ROOT))],
                include_dirs=[np.get_include()],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                # the inline budget lets GCC inline the per-tick steps (vol_step, feat_step, the
                # final MinutePricer methods) into the batch loops, so their state stays in registers
                extra_compile_args=["-O3", "-fno-math-errno", "--param", "max-inline-insns-single=2000",
                                    "--param", "inline-unit-growth=400", "--param", "large-function-growth=800"],
            )
        )
    return exts


setup(
    ext_modules=cythonize(
        _extensions(),
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
    ),
)
