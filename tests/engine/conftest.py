"""Engine tests: make ``toy_components`` importable and registered."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import toy_components  # noqa: E402,F401
