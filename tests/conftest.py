import pytest
import torch

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
