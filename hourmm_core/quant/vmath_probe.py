"""Build-time probe for glibc's vector math (libmvec), used by setup.py and benchmarks/floor_build.py.

``libmvec_flags()`` compiles AND links a tiny C program that calls the four libmvec routines the core
uses (``_ZGVbN2v_erfc/_log/_exp`` SSE2, ``_ZGVdN4v_erfc/_log/_exp`` AVX2) through hourmm_core/quant/hmm_vmath.h,
with setuptools' own compiler object (the one that builds the extensions). Only when that works does
it return ``({"define_macros": [("HOURMM_LIBMVEC", "1")], "libraries": ["mvec", "m"]})``; anywhere
else (not x86-64, musl, glibc < 2.35, no compiler, MSVC) it returns empty lists and the header falls
back to plain libm erfc/log. ``HOURMM_NO_LIBMVEC=1`` in the environment forces the fallback (to build
and test the scalar path on a machine that has libmvec). Loaded by file path (no package import:
the compiled modules do not exist yet when setup.py runs).
"""
from __future__ import annotations

import os
import platform
import sys
import tempfile
from pathlib import Path

try:                     # the compiler object setuptools builds the extensions with (setuptools >= 68)
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler
except ImportError:      # no setuptools (e.g. a runtime image): the probe reports no libmvec
    new_compiler = customize_compiler = None

HERE = Path(__file__).resolve().parent

_PROBE = r"""
#include "hmm_vmath.h"
#ifndef HOURMM_LIBMVEC
#error "probe needs HOURMM_LIBMVEC"
#endif
int main(void) {
    double x[5] = {0.1, 0.5, 1.5, 2.5, 3.5}, y[5];
    hmm_erfc_n(x, y, 5);
    hmm_log_n(y, y, 5);
    hmm_exp_n(y, y, 5);
    return (hmm_erfc(0.5) > 0.0 && hmm_log(2.0) > 0.0 && y[0] < 0.0) ? 0 : 1;
}
"""

EMPTY: dict[str, list] = {"define_macros": [], "libraries": []}


def libmvec_flags(verbose: bool = False) -> dict[str, list]:
    """Extension keyword arguments that switch the core to libmvec, or empty lists (scalar libm)."""
    if os.environ.get("HOURMM_NO_LIBMVEC", "") not in ("", "0"):
        return {k: list(v) for k, v in EMPTY.items()}
    if platform.machine().lower() not in ("x86_64", "amd64") or not sys.platform.startswith("linux"):
        return {k: list(v) for k, v in EMPTY.items()}
    if new_compiler is None:
        return {k: list(v) for k, v in EMPTY.items()}
    macros = [("HOURMM_LIBMVEC", "1")]
    with tempfile.TemporaryDirectory(prefix="hourmm_vmath_") as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(_PROBE)
        cc = new_compiler()
        customize_compiler(cc)
        devnull = os.open(os.devnull, os.O_WRONLY)
        saved = (os.dup(1), os.dup(2))
        if not verbose:          # a failed probe is expected on many platforms: keep its chatter out
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
        try:
            objs = cc.compile([str(src)], output_dir=tmp, macros=macros, include_dirs=[str(HERE)],
                              extra_postargs=["-O2"])
            cc.link_executable(objs, "probe", output_dir=tmp, libraries=["mvec", "m"])
        except Exception:  # noqa: BLE001 - CompileError/LinkError/missing compiler: scalar fallback
            return {k: list(v) for k, v in EMPTY.items()}
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in (*saved, devnull):
                os.close(fd)
    return {"define_macros": macros, "libraries": ["mvec", "m"]}


if __name__ == "__main__":
    print(libmvec_flags(verbose=True))
