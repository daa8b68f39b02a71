"""The FastAPI app of one gateway replica, built from its `Gateway` after construction: under
Serve by `serve.ingress` (the deployment in `serve.app`), in process by `serve.local`.

Everything a route needs is on this app (`app.state`, read through `serve.deps`), so every
replica — and every in-process app of a test — has its own, and nothing is shared through
module or class attributes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from serve.errors import install_error_handlers, without_422
from serve.gateway import Gateway
from serve.guard import RequestGuard
from serve.routes import router
from serve.workbench.router import mount_workbench
from serve.workbench.state import WorkbenchState

TITLE = "shoematch"
DESCRIPTION = "Crime-scene shoeprint → ranked shoe models"


class ShoematchAPI(FastAPI):
    def openapi(self) -> dict[str, Any]:
        return without_422(super().openapi())


def build_api(gateway: Gateway) -> FastAPI:
    """The gateway's routes, the workbench, the guard and the error handlers on a new app."""
    settings = gateway.settings
    app = ShoematchAPI(title=TITLE, description=DESCRIPTION)
    app.state.gateway = gateway
    app.state.workbench = WorkbenchState(settings.db_url)
    app.add_middleware(RequestGuard, settings=settings, users=gateway.users)
    install_error_handlers(app, settings.retry_after_s)
    mount_workbench(app)
    app.include_router(router)
    return app
