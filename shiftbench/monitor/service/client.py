"""A few lines in a serving application to send its traffic to ``monitor serve``.

``Client.send(stream, records)`` posts records in batches of ``batch_size``;
``Client.add(stream, text, ...)`` buffers one record and sends a full batch. Each record
gets its id (a random one when the caller gives none) before the first try, so a
retried batch is idempotent: records the service already stored come back as
duplicates, never twice. Retries, with exponential backoff and jitter, on connection
errors, timeouts, 429 (waiting at least its ``Retry-After``) and 5xx; any other refusal
(401, 413, 422, ...) is a ShiftbenchError with the service's one-line reason.

For an application that wants no service, :class:`~shiftbench.monitor.service.monitor.
Monitor` takes the same ``send(stream, records)`` in process.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from shiftbench.errors import ShiftbenchError
from shiftbench.monitor.service.records import Added, Record, validation_reason

RecordLike = Record | Mapping[str, Any] | str


def _payload(record: RecordLike, k: int) -> dict[str, Any]:
    """The record as JSON fields, checked here as the service checks it, with an id."""
    try:
        if not isinstance(record, Record):
            record = Record.model_validate({"text": record} if isinstance(record, str)
                                           else record)
    except ValidationError as exc:
        raise ShiftbenchError(validation_reason(exc, f"records[{k}]")) from None
    fields = record.model_dump(mode="json", exclude_none=True)
    fields.setdefault("id", uuid.uuid4().hex)
    return fields


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json()["detail"])
    except (ValueError, KeyError, TypeError):
        return response.text.strip().splitlines()[0] if response.text.strip() else \
            response.reason_phrase


class Client:
    """Sends records to a monitor service; see the module doc."""

    def __init__(self, url: str, token: str | None = None, *, batch_size: int = 500,
                 retries: int = 8, backoff: float = 0.2, max_backoff: float = 10.0,
                 timeout: float = 30.0) -> None:
        if batch_size < 1:
            raise ShiftbenchError(f"batch_size must be at least 1, got {batch_size}")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.batch_size = batch_size
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.retried = 0  # tries that were repeated (429, 5xx, connection errors)
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._buffers: dict[str, list[dict[str, Any]]] = {}

    def send(self, stream: str, records: Sequence[RecordLike]) -> Added:
        """Send ``records`` now, in batches; totals over the batches (``pending``: after
        the last)."""
        payloads = [_payload(r, k) for k, r in enumerate(records)]
        accepted = duplicates = pending = 0
        for start in range(0, len(payloads), self.batch_size):
            reply = self._post(stream, payloads[start:start + self.batch_size])
            accepted += reply["accepted"]
            duplicates += reply["duplicates"]
            pending = reply["pending"]
        return Added(accepted, duplicates, pending)

    def add(self, stream: str, text: str, **fields: Any) -> None:
        """Buffer one record (fields as in Record); a full batch is sent at once."""
        buffer = self._buffers.setdefault(stream, [])
        buffer.append(_payload({"text": text, **fields}, len(buffer)))
        if len(buffer) >= self.batch_size:
            self.flush(stream)

    def flush(self, stream: str | None = None) -> None:
        """Send what :meth:`add` buffered (for one stream, or all)."""
        for name in [stream] if stream is not None else list(self._buffers):
            batch = self._buffers.get(name)
            if batch:
                self._post(name, batch)  # kept buffered if it fails
                self._buffers[name] = []

    def windows(self, stream: str, limit: int = 50) -> dict[str, Any]:
        """The stream's latest windows, queue and lag (GET /v1/streams/NAME)."""
        response = self._http.get(f"/v1/streams/{quote(stream, safe='')}",
                                  params={"limit": limit})
        if response.status_code != 200:
            raise ShiftbenchError(f"monitor service {self.url}: stream {stream!r}: HTTP "
                                  f"{response.status_code}: {_detail(response)}")
        return response.json()

    def close(self) -> None:
        """Send what is buffered, then close the connections."""
        try:
            self.flush()
        finally:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, stream: str, batch: list[dict[str, Any]]) -> dict[str, int]:
        """POST one batch, retrying what may succeed later; the service's reply."""
        path = f"/v1/streams/{quote(stream, safe='')}/records"
        delay = self.backoff
        for attempt in range(self.retries + 1):
            wait = 0.0
            try:
                response = self._http.post(path, json={"records": batch})
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
            else:
                if response.status_code == 202:
                    return response.json()
                problem = f"HTTP {response.status_code}: {_detail(response)}"
                if response.status_code != 429 and response.status_code < 500:
                    raise ShiftbenchError(f"monitor service {self.url}: stream {stream!r}: "
                                          f"{problem}")
                after = response.headers.get("retry-after", "")
                wait = float(after) if after.replace(".", "", 1).isdigit() else 0.0
            if attempt == self.retries:
                break
            self.retried += 1
            time.sleep(max(wait, delay * random.uniform(0.5, 1.5)))
            delay = min(delay * 2, self.max_backoff)
        raise ShiftbenchError(f"monitor service {self.url}: stream {stream!r}: gave up after "
                              f"{self.retries + 1} tries ({problem})")
