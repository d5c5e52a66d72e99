"""Build ``benchmarks/floor_loops.pyx`` (the arithmetic floors) into a temp dir and import it.

Same compiler flags as setup.py (-O3 -fno-math-errno, boundscheck/wraparound off) and the same
vector-math probe (hourmm_core/quant/vmath_probe.py: libmvec's erfc/log/exp through hmm_vmath.h when
it links), so the floor and the core are compiled alike and call the same erfc/log. Returns None
when there is no compiler (the floor benchmarks then skip); the module is built once per process.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
_MOD = None


def build():
    global _MOD
    if _MOD is not None:
        return _MOD
    try:
        import numpy as np
        from Cython.Build import cythonize
        from setuptools import Distribution, Extension
    except ImportError:
        return None
    tmp = tempfile.mkdtemp(prefix="hourmm_floor_")
    quant = HERE.parent / "hourmm_core" / "quant"
    spec = importlib.util.spec_from_file_location("hourmm_vmath_probe", quant / "vmath_probe.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    vm = probe.libmvec_flags()          # the same vector math as the core (setup.py runs this probe)
    ext = Extension("floor_loops", [str(HERE / "floor_loops.pyx")], include_dirs=[np.get_include(), str(quant)],
                    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"), *vm["define_macros"]],
                    libraries=vm["libraries"], extra_compile_args=["-O3", "-fno-math-errno"])
    dist = Distribution({"ext_modules": cythonize([ext], language_level=3, quiet=True, build_dir=tmp)})
    cmd = dist.get_command_obj("build_ext")
    cmd.build_lib = tmp
    cmd.build_temp = tmp
    cmd.ensure_finalized()
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        saved = os.dup(1)
        os.dup2(devnull, 1)        # the compiler's chatter stays out of the benchmark output
        try:
            cmd.run()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
    except Exception as e:  # noqa: BLE001 - no compiler: the floor is simply not measured
        print(f"floor_build: could not compile floor_loops.pyx ({e})", file=sys.stderr)
        return None
    so = next(Path(tmp).glob("floor_loops*.so"), None)
    if so is None:
        return None
    spec = importlib.util.spec_from_file_location("floor_loops", so)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _MOD = mod
    return mod
