"""What the three layers of tests share: the checkout's root, and the helpers beside this file."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
