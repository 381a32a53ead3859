"""The CLI's client of a running server's operator API (``/v1/operator/...``).

The server is ``--server URL`` or ``FAIRWATT_SERVER`` (default ``http://127.0.0.1:9000``); the
operator's key is ``FAIRWATT_API_KEY`` (or ``--api-key-file``). A problem+json answer becomes a
:class:`ClientError` carrying the server's ``detail``, so the CLI prints the server's own words.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fairwatt.errors import FairwattError

DEFAULT_SERVER = "http://127.0.0.1:9000"


class ClientError(FairwattError):
    """The server refused a request or cannot be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """``--server`` and ``--api-key-file`` for a command that talks to a running server."""
    parser.add_argument(
        "--server", metavar="URL", help=f"server URL (FAIRWATT_SERVER; default {DEFAULT_SERVER})"
    )
    parser.add_argument(
        "--api-key-file", type=Path, metavar="FILE", help="operator API key (or FAIRWATT_API_KEY)"
    )


class OperatorClient:
    """JSON over HTTP with a bearer key; one method per verb."""

    def __init__(self, server: str, api_key: str | None, *, timeout_s: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self._api_key = api_key
        self._timeout_s = timeout_s

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> OperatorClient:
        server = getattr(args, "server", None) or environ.get("FAIRWATT_SERVER") or DEFAULT_SERVER
        key_file: Path | None = getattr(args, "api_key_file", None)
        if key_file is not None:
            try:
                api_key: str | None = key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ClientError(f"{key_file}: {exc.strerror}") from None
        else:
            api_key = environ.get("FAIRWATT_API_KEY")
        return cls(server, api_key)

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None, headers: Mapping[str, str] | None = None) -> Any:
        return self.request("POST", path, body=body, headers=headers)

    def put(self, path: str, body: Any = None) -> Any:
        return self.request("PUT", path, body=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one request; the decoded JSON answer (``None`` for an empty one)."""
        url = self.server + path
        if params:
            query = {
                k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items() if v is not None
            }
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body, default=str).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self._api_key:
            request.add_header("Authorization", f"Bearer {self._api_key}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise ClientError(_problem_detail(exc), exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClientError(f"cannot reach {self.server}: {reason}") from None
        return json.loads(raw) if raw else None


def _problem_detail(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = {}
    detail = body.get("detail") if isinstance(body, dict) else None
    message = f"{error.code} {error.reason}: {detail}" if detail else f"{error.code} {error.reason}"
    located = body.get("errors") if isinstance(body, dict) else None
    if isinstance(located, list):  # a file the server found errors in: one line per error, as validate
        for item in located:
            if isinstance(item, dict) and "message" in item:
                where = ":".join(str(item[k]) for k in ("file", "line", "column") if item.get(k) is not None)
                field = f" {item['field']}:" if item.get("field") else ""
                message += f"\n{where}:{field} {item['message']}"
    return message
