"""The examiner workbench: a static page at `/` and the case API under `/v1/cases`, mounted on
the gateway's FastAPI app (`serve.workbench.router.mount_workbench`)."""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).with_name("static")
PUBLIC_PATHS = {"/"}
PUBLIC_PREFIXES = ("/static/",)  # the page's own files; every API call still needs a token
