"""The research example runs end to end (small settings) and its notebook matches the script."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT as ROOT

EXAMPLE = ROOT / "examples" / "research_example.py"


def _have_core() -> bool:
    try:
        from hourmm_core.research import calibration as cal

        cal._quant()
        import hourmm_core.data  # noqa: F401
    except ImportError:
        return False
    return True


def test_notebook_is_built_from_the_script(tmp_path):
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import build_notebook
    finally:
        sys.path.pop(0)
    nb_path = build_notebook.build(EXAMPLE, tmp_path / "x.ipynb")
    nb = json.loads(nb_path.read_text())
    assert nb["nbformat"] == 4 and nb["cells"]
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    compile(code, "notebook", "exec")  # the notebook's code is valid Python
    assert "cal.calibrate" in code and "run_backtest" in code
    shipped = json.loads((ROOT / "examples" / "research_example.ipynb").read_text())
    assert shipped["cells"] == nb["cells"], "examples/research_example.ipynb is stale: run examples/build_notebook.py"


@pytest.mark.timeout(300)
@pytest.mark.skipif(not _have_core(), reason="compiled core (python3 setup.py build_ext --inplace) or data module missing")
def test_example_runs_and_writes_reports(tmp_path):
    env = dict(os.environ, HOURMM_EXAMPLE_OUT=str(tmp_path), HOURMM_EXAMPLE_HOURS="6",
               HOURMM_EXAMPLE_DECISION_MS="5000", MPLBACKEND="Agg")
    from hourmm_core.data import find_data_dir
    real = find_data_dir() is not None   # 6 real hours (klines + bridge) from ../shared/data when present
    if not real:
        empty = tmp_path / "empty-data-dir"  # no dumps: the seeded synthetic stand-in, small and deterministic
        empty.mkdir()
        env["HOURMM_DATA_DIR"] = str(empty)
    p = subprocess.run([sys.executable, str(EXAMPLE)], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=280)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert ("data source: binance-klines+bridge" if real else "data source: synthetic") in p.stdout
    assert (tmp_path / "calibration" / "index.html").exists()
    assert (tmp_path / "backtest" / "index.html").exists()
    assert "pnl" in p.stdout and "held-out log loss" in p.stdout and "half_spread" in p.stdout
    assert (tmp_path / "backtest" / "inventory.png").exists()
