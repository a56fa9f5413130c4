"""environment.yml (conda users) installs the same thing as the Makefile's pip path."""

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_environment_yml_matches_the_makefile_install():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    makefile = (REPO / "Makefile").read_text()
    torch_pin = re.search(r"pip install --quiet (torch==\S+)", makefile).group(1)
    extras = re.search(r'pip install --quiet -e "\.(\[[^\]]+\])"', makefile).group(1)
    assert "python=3.11" in env["dependencies"]
    assert pip_section == [torch_pin, f"-e .{extras}"]


def test_torch_pin_satisfies_the_package_requirement():
    # Installing the package after the pin must not pull another (multi-GB CUDA) torch build.
    import tomllib

    from packaging.requirements import Requirement
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    torch_req = next(Requirement(d) for d in project["dependencies"] if d.startswith("torch"))
    pin = re.search(r"torch==(\S+)", (REPO / "Makefile").read_text()).group(1)
    assert torch_req.specifier.contains(pin)
