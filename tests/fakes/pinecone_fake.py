"""A fake Pinecone on loopback: one serverless index behind one port, data plane and the control
plane's index calls, in the REST shapes the official SDK (API 2026-07) sends and decodes.

    with PineconeFake(api_key="pc-test") as fake:          # no index yet: prepare() creates it
        store = PineconeVectorStore(api_key="pc-test", index_name="omnichat",
                                    controller_host=fake.url)
    PineconeFake(api_key=..., index_name="omnichat", dimension=384)  # an index that exists

Vectors live in memory per namespace; queries rank by cosine similarity. Every request needs the
`Api-Key` header (else 401). `requests` records (method, path, namespace or None).
"""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

Vectors = dict[str, tuple[list[float], dict[str, Any] | None]]


def _cosine(a: list[float], b: list[float]) -> float:
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norms if norms else 0.0


def _data_error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    # The data plane's google.rpc.Status shape; codes: 3 INVALID_ARGUMENT, 5 NOT_FOUND, 16 UNAUTH.
    code = {400: 3, 404: 5, 401: 16}.get(status, 13)
    return status, {"code": code, "message": message, "details": []}


def _control_error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": code, "message": message}, "status": status}


class PineconeFake:
    def __init__(
        self, api_key: str, index_name: str | None = None, dimension: int | None = None
    ) -> None:
        self.api_key = api_key
        self.index_name = index_name if dimension is not None else None
        self.dimension = dimension
        self.namespaces: dict[str, Vectors] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.failing_status: int | None = None  # set: every request is answered this error
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # ---------------------------------------------------------------- control plane

    def _index_model(self) -> dict[str, Any]:
        field = {"type": "dense_vector", "dimension": self.dimension, "metric": "cosine"}
        return {
            "name": self.index_name,
            "host": self.url,
            "status": {"ready": True, "state": "Ready"},
            "schema": {"fields": {"_values": field}},
            "deployment": {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"},
            "deletion_protection": "disabled",
        }

    def _control(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        name = path.removeprefix("/indexes").strip("/")
        if method == "POST" and not name:
            if self.index_name is not None:
                return _control_error(409, "ALREADY_EXISTS", "Resource already exists")
            field = (body.get("schema") or {}).get("fields", {}).get("_values") or {}
            if field.get("type") != "dense_vector" or not isinstance(field.get("dimension"), int):
                return _control_error(400, "INVALID_ARGUMENT", "expected a _values dense field")
            self.index_name, self.dimension = str(body["name"]), int(field["dimension"])
            return 201, self._index_model()
        if name != self.index_name:
            return _control_error(404, "NOT_FOUND", f"Resource {name} not found")
        if method == "GET":
            return 200, self._index_model()
        if method == "DELETE":
            self.index_name = self.dimension = None
            self.namespaces.clear()
            return 202, None
        return _control_error(405, "METHOD_NOT_ALLOWED", f"{method} {path}")

    # ---------------------------------------------------------------- data plane

    def _upsert(self, namespace: str, body: dict[str, Any]) -> tuple[int, Any]:
        vectors = body.get("vectors") or []
        for vector in vectors:
            if len(vector.get("values") or []) != self.dimension:
                return _data_error(
                    400,
                    f"Vector dimension {len(vector.get('values') or [])} does not match "
                    f"the dimension of the index {self.dimension}",
                )
        stored = self.namespaces.setdefault(namespace, {})
        for vector in vectors:
            stored[str(vector["id"])] = (list(vector["values"]), vector.get("metadata"))
        return 200, {"upsertedCount": len(vectors)}

    def _query(self, namespace: str, body: dict[str, Any]) -> tuple[int, Any]:
        vector = body.get("vector")
        if not isinstance(vector, list) or len(vector) != self.dimension:
            return _data_error(400, "Query vector dimension does not match the index")
        top_k = int(body.get("topK") or 10)
        scored = [
            (_cosine(vector, values), vid, values, metadata)
            for vid, (values, metadata) in self.namespaces.get(namespace, {}).items()
        ]
        scored.sort(key=lambda item: item[0], reverse=True)
        matches = []
        for score, vid, values, metadata in scored[:top_k]:
            match: dict[str, Any] = {"id": vid, "score": score, "values": []}
            if body.get("includeValues"):
                match["values"] = values
            if body.get("includeMetadata") and metadata is not None:
                match["metadata"] = metadata
            matches.append(match)
        return 200, {"matches": matches, "namespace": namespace, "usage": {"readUnits": 1}}

    def _delete(self, namespace: str, body: dict[str, Any]) -> tuple[int, Any]:
        if namespace not in self.namespaces:
            return _data_error(404, "Namespace not found")
        stored = self.namespaces[namespace]
        if body.get("deleteAll"):
            del self.namespaces[namespace]
        for vid in body.get("ids") or []:
            stored.pop(str(vid), None)
        return 200, {}

    def _stats(self) -> tuple[int, Any]:
        counts = {ns: len(v) for ns, v in self.namespaces.items() if v}
        return 200, {
            "namespaces": {ns: {"vectorCount": n} for ns, n in counts.items()},
            "dimension": self.dimension,
            "indexFullness": 0.0,
            "totalVectorCount": sum(counts.values()),
            "metric": "cosine",
            "vectorType": "dense",
        }

    def handle(self, method: str, path: str, key: str | None, body: Any) -> tuple[int, Any]:
        body = body if isinstance(body, dict) else {}
        namespace = body.get("namespace")
        with self._lock:
            self.requests.append((method, path, namespace))
            if self.failing_status is not None:
                return _data_error(self.failing_status, "Internal error (fake outage)")
            if key != self.api_key:
                return _data_error(401, "Invalid API Key")
            if path.startswith("/indexes"):
                return self._control(method, path, body)
            if self.index_name is None:
                return _data_error(404, "Index not found")
            namespace = str(namespace or "__default__")
            routes = {
                "/vectors/upsert": lambda: self._upsert(namespace, body),
                "/query": lambda: self._query(namespace, body),
                "/vectors/delete": lambda: self._delete(namespace, body),
                "/describe_index_stats": self._stats,
            }
            if method != "POST" or path not in routes:
                return _data_error(404, f"No route for {method} {path} (fake)")
            return routes[path]()

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's pool expects

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                path = self.path.split("?", 1)[0]
                status, payload = fake.handle(self.command, path, self.headers["Api-Key"], body)
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},  # how long stop() waits
            name="fake-pinecone",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
