"""The live dashboard: ``/dashboard`` (the page, ``/`` redirects to it) and its JSON data API.

``GET /v1/dashboard/summary`` answers everything the page shows for one time range, and
``GET /v1/dashboard/status`` the served model and how far the summaries have caught up. Both
need the API key when the server has one; the page itself holds no data, so it loads without
the key, asks for it, and sends it as ``X-API-Key`` (kept in the tab's ``sessionStorage``).

Before answering, the summary tables fold in what was logged since the last call
(:meth:`~rec_env.serve.dashboard.summaries.SummaryStore.catch_up`), for at most
:data:`CATCH_UP_SECONDS` and one more chunk: a call never waits minutes behind a large backlog
(the first call on a log of millions of decisions), it answers with what is summarised so far
and ``catch_up.caught_up = false``, and the page asks again.
"""

from __future__ import annotations

import time
from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rec_env.serve.dashboard import summary_store
from rec_env.serve.dashboard.ranges import TIME_PATTERN, Bucket, parse_range
from rec_env.serve.dashboard.report import summarise
from rec_env.serve.dashboard.schemas import (
    CatchUpInfo,
    DashboardStatus,
    DashboardSummary,
    ModelState,
)
from rec_env.serve.dashboard.summaries import SummaryStore
from rec_env.serve.dependencies import ServiceDep, require_api_key
from rec_env.serve.routes.responses import UNAUTHORIZED, VALIDATION_ERROR
from rec_env.serve.schemas import ErrorResponse
from rec_env.serve.service import DecisionService

__all__ = ["ASSETS", "CATCH_UP_SECONDS", "router"]

router = APIRouter(tags=["dashboard"])

CATCH_UP_SECONDS = 1.0
"""Most seconds one API call spends folding new log rows into the summaries."""

ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
"""The page's files in ``serve/static/`` besides ``dashboard.html``, with their media types."""

_STATIC = files("rec_env.serve") / "static"
_UNAVAILABLE = {503: {"model": ErrorResponse, "description": "The decision log cannot be reached."}}
_SINCE = Query(
    description="Start: ISO 8601 date or time (UTC without a zone) or Unix seconds "
    "(default: 7 days before until).",
    pattern=TIME_PATTERN,
    examples=["2026-11-24"],
)
_UNTIL = Query(
    description="End, excluded (default: now).",
    pattern=TIME_PATTERN,
    examples=["2026-12-01T12:00Z"],
)
_BUCKET = Query(description="Width of the time series' buckets (at most 2400 per range).")


def _store(service: DecisionService, request: Request) -> SummaryStore:
    try:
        return summary_store(request.app.state, service.log.path)
    except ValueError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None


def _caught_up(store: SummaryStore) -> CatchUpInfo:
    start = time.perf_counter()
    done = store.catch_up(CATCH_UP_SECONDS)
    return CatchUpInfo(
        caught_up=done.caught_up,
        decisions_folded=done.decisions,
        rewards_folded=done.rewards,
        request_watermark=done.request_watermark,
        reward_watermark=done.reward_watermark,
        seconds=time.perf_counter() - start,
    )


def _model_state(service: DecisionService) -> ModelState:
    return ModelState(
        model_version=service.model_version,
        algorithm=service.info.algorithm,
        online=service.online,
        n_updates=service.n_updates,
    )


@router.get(
    "/v1/dashboard/summary",
    response_model=DashboardSummary,
    summary="Dashboard numbers for a time range",
    dependencies=[Depends(require_api_key)],
    responses={**UNAUTHORIZED, **VALIDATION_ERROR, **_UNAVAILABLE},
)
def dashboard_summary(
    service: ServiceDep,
    request: Request,
    since: Annotated[str | None, _SINCE] = None,
    until: Annotated[str | None, _UNTIL] = None,
    bucket: Annotated[Bucket, _BUCKET] = Bucket.hour,
) -> DashboardSummary:
    """Everything the dashboard shows for the range ``since`` to ``until``.

    Decisions per bucket, action mix, propensities, rewards and pending windows, conversion and
    profit (mean reward, USD) per action, holdout against treated, the served model, and the
    IPS estimate of always no_action against the running policy, with 95 % intervals.
    Decisions count in the bucket they were made in, and rewards by their decision's time,
    except the time series' ``rewards``, counted when they were recorded.
    """
    time_range = parse_range(since, until, bucket, time.time())
    store = _store(service, request)
    catch_up = _caught_up(store)
    return summarise(store, time_range, _model_state(service), catch_up)


@router.get(
    "/v1/dashboard/status",
    response_model=DashboardStatus,
    summary="Served model and summary catch-up",
    dependencies=[Depends(require_api_key)],
    responses={**UNAUTHORIZED, **_UNAVAILABLE},
)
def dashboard_status(service: ServiceDep, request: Request) -> DashboardStatus:
    """The served model's version and online updates, after folding in new log rows."""
    store = _store(service, request)
    return DashboardStatus(model=_model_state(service), catch_up=_caught_up(store))


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    """The dashboard is the service's front page."""
    return RedirectResponse("/dashboard")


@router.get("/dashboard", include_in_schema=False)
async def dashboard_page() -> HTMLResponse:
    """The page (no data: it reads the JSON API, with the API key the user types)."""
    return HTMLResponse((_STATIC / "dashboard.html").read_text(encoding="utf-8"))


@router.get("/dashboard/{asset}", include_in_schema=False)
async def dashboard_asset(asset: str) -> Response:
    """The page's script and style sheet (only the files listed in :data:`ASSETS`)."""
    media_type = ASSETS.get(asset)
    if media_type is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
    return Response((_STATIC / asset).read_bytes(), media_type=media_type)
