"""Build script for the compiled quant core.

Every ``.pyx`` file under ``hourmm_core/`` is compiled; there is no pure-Python
fallback at import time, so a missing compiler fails the install loudly instead
of shipping slow code to production.
"""
import importlib.util
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

ROOT = Path(__file__).parent
QUANT = ROOT / "hourmm_core" / "quant"


def _vmath() -> dict[str, list]:
    """glibc's vector erfc/log (libmvec) when a probe program compiles and links against it, else
    plain libm (hourmm_core/quant/vmath_probe.py, hmm_vmath.h). Loaded by path: the package's
    compiled modules do not exist yet."""
    spec = importlib.util.spec_from_file_location("hourmm_vmath_probe", QUANT / "vmath_probe.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.libmvec_flags()



def _extensions() -> list[Extension]:
    exts = []
    vm = _vmath()
    # the hand-written C headers (hmm_vmath.h ...): a changed header rebuilds every extension, as
    # cythonize only tracks .pyx/.pxd and the generated .c does not change when a header does
    headers = [str(h.relative_to(ROOT)) for h in sorted(QUANT.glob("*.h"))]
    for pyx in sorted(ROOT.glob("hourmm_core/**/*.pyx")):
        rel = pyx.relative_to(ROOT).with_suffix("")
        exts.append(
            Extension(
                ".".join(rel.parts),
                [str(pyx.relative_to(ROOT))],
                depends=headers,
                include_dirs=[np.get_include(), str(QUANT.relative_to(ROOT))],   # hmm_vmath.h
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"), *vm["define_macros"]],
                libraries=vm["libraries"],
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
