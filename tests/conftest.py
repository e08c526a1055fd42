"""Shared test settings. Hypothesis explores new examples locally; in CI (CI=true) it replays a
fixed sequence, so a landing never depends on the luck of one run."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
