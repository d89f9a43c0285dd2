"""Request parameters wherever a client puts them: query string, form body or JSON body.

pyupbit sends GET parameters as a form body and DELETE parameters as JSON, the SDK and the docs
use the query string; arrays arrive as `k[]=a&k[]=b`, repeated keys or comma lists. A body over
`MAX_BODY` is refused with 413 before it is read in full, and a body that claims to be JSON but
does not parse with 400 (`BadBody`): guessing parameters from it would only fail the signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request

from trader.sim.matching import SimError

MAX_BODY = 1 << 20  # 1 MiB: an order or a cancel is a few hundred bytes
_MSG_BAD_JSON = "요청 본문의 JSON 형식이 올바르지 않습니다."


class BadBody(SimError):
    """A request body the simulator refuses before looking at its parameters (400 or 413)."""


def _prim(v: object) -> str | None:
    if v is None:
        return None
    if v is True:
        return "true"
    if v is False:
        return "false"
    return str(v)


@dataclass(slots=True)
class RequestData:
    pairs: list[tuple[str, str]]
    raw_query: str
    raw_body: bytes
    json_body: object | None
    body_kind: str  # "" | "json" | "form"

    @property
    def has_params(self) -> bool:
        return bool(self.pairs)

    def get(self, *names: str) -> str | None:
        for name in names:
            for k, v in self.pairs:
                if k == name:
                    return v
        return None

    def getlist(self, name: str, *, split_commas: bool = False) -> list[str]:
        """Values of `name`, `name[]` (repeated or JSON list), optionally comma-split."""
        out: list[str] = []
        for k, v in self.pairs:
            if k in (name, name + "[]"):
                if split_commas:
                    out.extend(x.strip() for x in v.split(",") if x.strip())
                else:
                    out.append(v)
        return out


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The body, or BadBody 413 as soon as it (or its Content-Length) passes `limit` bytes."""
    too_large = BadBody(413, "payload_too_large", f"요청 본문이 너무 큽니다 (최대 {limit} 바이트).")
    declared = request.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def read_request(request: Request) -> RequestData:
    raw_query = request.scope.get("query_string", b"").decode("latin-1")
    pairs: list[tuple[str, str]] = parse_qsl(raw_query, keep_blank_values=True)
    body = await read_body(request)
    json_body: object | None = None
    kind = ""
    if body.strip():
        ctype = request.headers.get("content-type", "")
        if "json" in ctype or body.lstrip()[:1] in (b"{", b"["):
            try:
                json_body = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise BadBody(400, "invalid_parameter", _MSG_BAD_JSON) from None
            if isinstance(json_body, dict):
                kind = "json"
                for k, v in json_body.items():
                    if isinstance(v, list | tuple):
                        pairs.extend((k, s) for s in (_prim(x) for x in v) if s is not None)
                    else:
                        s = _prim(v)
                        if s is not None:
                            pairs.append((k, s))
            else:
                json_body = None
        if not kind:
            kind = "form"
            pairs.extend(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return RequestData(pairs, raw_query, body, json_body, kind)
