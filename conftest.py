"""Test-wide settings for tests/ and for nbval over notebooks/."""

import os
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parent.parent / "shared" / "data"

# Real-data tests and notebooks read ../shared/data when it is there (CI, this project's machines);
# elsewhere awdlib downloads the datasets (checksummed) into the user cache. They run, they do not skip.
if "AWDLIB_DATA" not in os.environ and SHARED_DATA.exists():
    os.environ["AWDLIB_DATA"] = str(SHARED_DATA)
