"""Fake Pinecone: control plane `GET /indexes/<name>` and data plane `POST /query` (API 2025-10).

Run standalone: `python -m tests.fakes.pinecone --port 8103`.
"""

from __future__ import annotations

from typing import Any

from tests.fakes._server import COMMON_DEFAULTS, FakeServer, Request, Responder, Scenario

DEFAULT_MATCHES = [
    {
        "id": "handbook.pdf#1",
        "score": 0.82,
        "values": [],
        "metadata": {"text": "Returns are accepted within 30 days.", "source": "handbook.pdf"},
    },
    {
        "id": "handbook.pdf#2",
        "score": 0.71,
        "values": [],
        "metadata": {"text": "Shipping takes 2-4 business days.", "source": "handbook.pdf"},
    },
]

PINECONE_DEFAULTS: dict[str, Any] = {
    **COMMON_DEFAULTS,
    # name -> {"dimension": int, "ready": bool, "state"?: str, "metric"?: str}
    "indexes": {"kb": {"dimension": 1536, "ready": True}},
    "matches": DEFAULT_MATCHES,
}

_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def control_error(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": _CODES.get(status, "UNKNOWN"), "message": message}, "status": status}


def rpc_status(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "details": []}


class FakePinecone(FakeServer):
    """Indexes live in `scenario["indexes"]`; `.indexes` and `.matches` are shortcuts to them."""

    name = "fake-pinecone"
    DEFAULTS = PINECONE_DEFAULTS

    @property
    def indexes(self) -> dict[str, dict[str, Any]]:
        return self.scenario["indexes"]

    @indexes.setter
    def indexes(self, value: dict[str, dict[str, Any]]) -> None:
        self.scenario["indexes"] = value

    @property
    def matches(self) -> list[dict[str, Any]]:
        return self.scenario["matches"]

    @matches.setter
    def matches(self, value: list[dict[str, Any]]) -> None:
        self.scenario["matches"] = value

    def index_model(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        ready = bool(spec.get("ready", True))
        return {
            "name": name,
            "dimension": spec.get("dimension", 1536),
            "metric": spec.get("metric", "cosine"),
            # Clients prepend https://; tests talking to this fake use http://<host> themselves.
            "host": spec.get("host", f"{self.host}:{self.port}"),
            "spec": {"serverless": {"cloud": "aws", "region": "us-east-1"}},
            "status": {
                "ready": ready,
                "state": spec.get("state", "Ready" if ready else "Initializing"),
            },
            "vector_type": "dense",
            "deletion_protection": "disabled",
            "tags": None,
        }

    async def handle(self, req: Request, resp: Responder) -> None:
        sc = self.take_scenario()
        path = req.path.rstrip("/")
        control = path == "/indexes" or path.startswith("/indexes/")
        if await self.before_headers(sc, resp):
            return
        if sc.api_key and req.headers.get("api-key") != sc.api_key:
            if control:
                await resp.send(401, control_error(401, "Invalid API key."))
            else:
                await resp.send(401, rpc_status(16, "Invalid API key."))
            return
        if "x-pinecone-api-version" not in req.headers:
            msg = "Missing required header: X-Pinecone-Api-Version"
            await resp.send(400, control_error(400, msg) if control else rpc_status(3, msg))
            return
        if sc.status:
            status = int(sc.status)
            headers = [("Retry-After", str(sc.retry_after))] if sc.retry_after is not None else []
            msg = sc.error_message or "Simulated failure."
            body = control_error(status, msg) if control else rpc_status(13, msg)
            await resp.send(status, body, headers=headers)
            return
        if control:
            await self._control_plane(req, resp, sc, path)
        elif path == "/query" and req.method == "POST":
            await self._query(req, resp, sc)
        elif path == "/describe_index_stats":
            total = len(sc.matches)
            dims = [i.get("dimension", 1536) for i in sc.indexes.values()]
            await resp.send(
                200,
                {
                    "namespaces": {"": {"vectorCount": total}},
                    "dimension": dims[0] if dims else 0,
                    "indexFullness": 0,
                    "totalVectorCount": total,
                },
            )
        else:
            await resp.send(404, rpc_status(5, f"Not found: {req.path}"))

    async def _control_plane(self, req: Request, resp: Responder, sc: Scenario, path: str) -> None:
        if req.method != "GET":
            await resp.send(405, control_error(405, "Method not allowed."))
        elif path == "/indexes":
            models = [self.index_model(n, s) for n, s in sc.indexes.items()]
            await resp.send(200, {"indexes": models})
        else:
            name = path.removeprefix("/indexes/")
            spec = sc.indexes.get(name)
            if spec is None:
                await resp.send(404, control_error(404, f"Index {name} not found."))
            else:
                await resp.send(200, self.index_model(name, spec))

    async def _query(self, req: Request, resp: Responder, sc: Scenario) -> None:
        body = req.json if isinstance(req.json, dict) else None
        if body is None:
            await resp.send(400, rpc_status(3, "Invalid JSON body."))
            return
        top_k = body.get("topK")
        if not isinstance(top_k, int) or not 1 <= top_k <= 10000:
            await resp.send(400, rpc_status(3, "topK must be an integer between 1 and 10000"))
            return
        vector = body.get("vector")
        dims = [i.get("dimension", 1536) for i in sc.indexes.values()]
        if vector is not None and dims and len(vector) != dims[0]:
            msg = f"Vector dimension {len(vector)} does not match the dimension of the index {dims[0]}"
            await resp.send(400, rpc_status(3, msg))
            return
        matches = []
        for m in sc.matches[:top_k]:
            m = dict(m)
            if not body.get("includeMetadata"):
                m.pop("metadata", None)
            if not body.get("includeValues"):
                m["values"] = []
            matches.append(m)
        await resp.send(
            200,
            {
                "results": [],
                "matches": matches,
                "namespace": body.get("namespace", ""),
                "usage": {"readUnits": 5},
            },
        )


if __name__ == "__main__":
    FakePinecone.main()
