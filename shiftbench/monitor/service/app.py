"""The HTTP face of a :class:`~shiftbench.monitor.service.monitor.Monitor` (FastAPI).

- ``POST /v1/streams/{name}/records``: ``{"records": [{"text": ..., "id": ...,
  "prediction": ..., "probabilities": [...], "label": ..., "timestamp": ...}, ...]}``;
  202 ``{"accepted", "duplicates", "pending"}`` once the batch is committed; 400
  malformed JSON, 413 body or batch too large, 422 a record or name that breaks the
  schema, 404 a stream not served, 409 a stream started with other settings, 429 (with
  ``Retry-After``) when the stream's queue is full, 503 when the store fails. Every
  error is ``{"detail": "<one line>"}`` and nothing of a refused batch is stored;
- ``GET /v1/streams/{name}?limit=N``: the latest windows, the queue and the lag;
- ``GET /healthz``: 200 when the worker runs and the store answers, else 503;
- ``GET /metrics``: Prometheus text (:mod:`~shiftbench.monitor.service.metrics`).

With a token, writes need ``Authorization: Bearer <token>`` (reads too with
``auth_reads``); ``/healthz`` never does. No endpoint reads or writes a file the
client names: the client names only streams, which are checked names, never paths.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from shiftbench.errors import ShiftbenchError
from shiftbench.monitor.service.metrics import ServiceMetrics
from shiftbench.monitor.service.monitor import InvalidInput, Monitor, UnknownStream
from shiftbench.monitor.service.records import QueueFull, StreamConflict

MAX_BATCH = 1000
MAX_BODY_BYTES = 8 << 20
RETRY_AFTER_S = 1
ERROR_STATUS = ((InvalidInput, 422), (UnknownStream, 404), (StreamConflict, 409),
                (QueueFull, 429), (ShiftbenchError, 503))


def _status(exc: ShiftbenchError) -> int:
    return next(code for kind, code in ERROR_STATUS if isinstance(exc, kind))


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body of {declared} bytes is over the limit of {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"body is over the limit of {limit} bytes")
    return bytes(body)


def _records(body: bytes, max_batch: int) -> list[Any]:
    """The ``records`` list of a JSON body (each record is checked by the monitor)."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPException(400, f"malformed JSON: {exc}") from None
    if not isinstance(payload, dict) or set(payload) != {"records"}:
        raise HTTPException(422, 'body: expected {"records": [...]} and nothing else')
    records = payload["records"]
    if not isinstance(records, list):
        raise HTTPException(422, "records: expected a list")
    if len(records) > max_batch:
        raise HTTPException(413, f"records: {len(records)} in one batch, over the limit of "
                                 f"{max_batch}; send smaller batches")
    return records


def create_app(monitor: Monitor, *, token: str | None = None, auth_reads: bool = False,
               max_batch: int = MAX_BATCH, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The service around ``monitor``; its worker runs while the app does."""
    metrics = ServiceMetrics(monitor)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        monitor.start()
        try:
            yield
        finally:
            await run_in_threadpool(monitor.stop)

    app = FastAPI(title="shiftbench monitor", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)

    def authorized(request: Request) -> None:
        given = request.headers.get("authorization", "")
        if token is not None and not secrets.compare_digest(given.encode(),
                                                            f"Bearer {token}".encode()):
            raise HTTPException(401, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    read_auth = [Depends(authorized)] if auth_reads else []

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        return JSONResponse({"detail": f"{where}: {error['msg']}"}, status_code=422)

    @app.exception_handler(ShiftbenchError)
    async def refused(_request: Request, exc: ShiftbenchError) -> JSONResponse:
        status = _status(exc)
        headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 429 else None
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        if request.method == "POST":
            metrics.requests.labels(str(response.status_code)).inc()
        return response

    @app.post("/v1/streams/{stream}/records", status_code=202,
              dependencies=[Depends(authorized)])
    async def add_records(stream: str, request: Request) -> dict[str, int]:
        monitor.check_stream(stream)
        records = _records(await _body(request, max_body_bytes), max_batch)
        added = await run_in_threadpool(monitor.send, stream, records)
        metrics.records.labels(stream, "accepted").inc(added.accepted)
        metrics.records.labels(stream, "duplicate").inc(added.duplicates)
        return {"accepted": added.accepted, "duplicates": added.duplicates,
                "pending": added.pending}

    @app.get("/v1/streams/{stream}", dependencies=read_auth)
    async def stream_windows(stream: str, limit: int = Query(50, ge=1, le=1000)
                             ) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            rows = monitor.windows(stream, limit)
            waiting = monitor.backlog().get(stream)
            return {"stream": stream, "windows": [r.to_dict() for r in rows],
                    "pending": waiting.pending if waiting else 0,
                    "lag_seconds": monitor.lag_seconds(stream) if waiting else 0.0}

        return await run_in_threadpool(read)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        try:
            await run_in_threadpool(monitor.backlog)
            store = "ok"
        except ShiftbenchError as exc:
            store = str(exc)
        ok = monitor.running and store == "ok"
        return JSONResponse({"status": "ok" if ok else "failing", "worker": monitor.running,
                             "store": store, "last_error": monitor.last_error,
                             "time": datetime.now(timezone.utc).isoformat()},
                            status_code=200 if ok else 503)

    @app.get("/metrics", dependencies=read_auth)
    async def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(await run_in_threadpool(metrics.exposition),
                        media_type=CONTENT_TYPE_LATEST)

    return app

