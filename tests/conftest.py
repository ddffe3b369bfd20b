"""Shared test setup: this folder is on sys.path (pytest's prepend mode), so
test modules can import the helpers beside it (`goldens`, `strategies`).

Under CI (`CI=true`, as `.ci/run` is started) hypothesis runs derandomized: the
same examples every run, so a landing is judged on the code and never on the
draw. Locally every run explores new examples (and keeps failures in
.hypothesis/ to replay them).
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
    settings.load_profile("ci")
