"""Every notebook executes headless under papermill at smoke scale, within a minute.

nbval (run by the same `make test` command over notebooks/) separately re-runs the stored notebooks and
compares their scale-independent outputs; this file proves the papermill path and reports timings.
"""

import time
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
SMOKE_LIMIT_S = 60
TIMINGS: dict[str, float] = {}


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_runs_at_smoke_scale(notebook, tmp_path, run_notebook):
    start = time.perf_counter()
    run_notebook(notebook, tmp_path / notebook.name, parameters={"scale": "smoke", "threads": 1},
                 timeout=SMOKE_LIMIT_S, progress_bar=False)
    TIMINGS[notebook.stem] = elapsed = time.perf_counter() - start
    assert elapsed <= SMOKE_LIMIT_S, f"{notebook.name} took {elapsed:.0f} s at smoke scale"


def test_every_notebook_has_a_jupytext_twin_and_a_parameters_cell():
    import json
    assert NOTEBOOKS, "no notebooks found"
    for nb in NOTEBOOKS:
        assert nb.with_suffix(".py").exists(), f"{nb.name} has no py:percent twin"
        cells = json.loads(nb.read_text())["cells"]
        tagged = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
        assert len(tagged) == 1 and "scale" in "".join(tagged[0]["source"]), nb.name
        assert all(not any(o["output_type"] == "error" for o in c.get("outputs", []))
                   for c in cells if c["cell_type"] == "code"), f"{nb.name} stores an error"
