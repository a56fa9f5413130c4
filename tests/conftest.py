import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Real-data tests read ../shared/data when it is there (CI, this project's machines); elsewhere awdlib
# downloads the datasets (checksummed) into the user cache. They run, they do not skip.
if "AWDLIB_DATA" not in os.environ and SHARED_DATA.exists():
    os.environ["AWDLIB_DATA"] = str(SHARED_DATA)

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def ptb():
    import awdlib
    return awdlib.load_corpus("ptb")


@pytest.fixture
def tiny_corpus():
    import awdlib
    return awdlib.synthetic_corpus(vocab_size=30, n_train=3000, n_eval=600)


def pytest_terminal_summary(terminalreporter):
    from test_notebooks import TIMINGS
    if TIMINGS:
        terminalreporter.write_sep("-", "notebook smoke-scale times (papermill, 1 torch thread)")
        for name, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{name:<45} {seconds:6.1f} s")
