"""Transitional: the console's tests at the top of tests/ import these from here until they move
into tests/served; the helpers live in support/processes.py."""

from support.processes import *  # noqa: F401,F403
from support.processes import ROOT, SCREENSHOTS, VENV_BIN  # noqa: F401
