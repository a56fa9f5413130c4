"""Checks of settings, shared by the dataclasses and modules that take them.

Each failed check is a ``ValueError`` that names the setting, what is allowed and the value found, so the
library and the command line (``--set train.lr=-1``) report a bad value in the same words.
"""

from __future__ import annotations

import math


def require(ok: bool, name: str, value, allowed: str) -> None:
    """Raise ``ValueError("NAME must be ALLOWED, got VALUE")`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite int or float (not a bool, not nan or inf)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_int(name: str, value, minimum: int) -> None:
    require(is_int(value) and value >= minimum, name, value, f"an integer >= {minimum}")


# What torch.manual_seed and torch.Generator.manual_seed accept: any 64-bit seed, signed or not.
SEED_RANGE = (-2 ** 63, 2 ** 64 - 1)


def check_seed(name: str, value) -> None:
    require(is_int(value) and SEED_RANGE[0] <= value <= SEED_RANGE[1], name, value,
            "an integer from -2**63 to 2**64 - 1 (a 64-bit seed)")


def check_rate(name: str, p) -> None:
    """A dropout rate: the probability of dropping, in [0, 1) (1 would drop everything)."""
    require(is_number(p) and 0 <= p < 1, name, p, "in [0, 1)")
