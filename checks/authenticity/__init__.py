"""The authenticity check (真房源), one module per thing it holds a listing against; `check.run` is the check."""

from checks.authenticity.check import run
from checks.authenticity.reposts import fingerprint

__all__ = ["fingerprint", "run"]
