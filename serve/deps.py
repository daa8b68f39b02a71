"""What a route is given (FastAPI dependencies): the replica's gateway, its settings, the
caller, the workbench state and the case records — all from the app the replica built
(`serve.api.build_api`), never from a module or class attribute."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serve.gateway import Gateway
from serve.settings import ServeSettings
from serve.workbench.state import WorkbenchState
from shoematch.cases.records import CaseRecords


async def current_gateway(request: Request) -> Gateway:
    return request.app.state.gateway


GatewayDep = Annotated[Gateway, Depends(current_gateway)]


async def current_settings(gateway: GatewayDep) -> ServeSettings:
    return gateway.settings


SettingsDep = Annotated[ServeSettings, Depends(current_settings)]


async def current_user(request: Request) -> str:
    """Who sent the request, as the guard resolved it from the bearer token."""
    return request.state.user


UserDep = Annotated[str, Depends(current_user)]


async def workbench_state(request: Request) -> WorkbenchState:
    return request.app.state.workbench


WorkbenchDep = Annotated[WorkbenchState, Depends(workbench_state)]


def case_records(workbench: WorkbenchDep) -> CaseRecords:
    """The case database, opened on first use (in FastAPI's thread pool: it may connect)."""
    return workbench.records


CasesDep = Annotated[CaseRecords, Depends(case_records)]
