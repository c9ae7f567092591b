"""Start the student on KServe's ModelServer (REST: V1 and V2), bound where we say.

KServe's REST server binds 0.0.0.0 unconditionally; locally we bind 127.0.0.1 by default, so
the bind address is applied to the uvicorn config KServe builds.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from searchrel.config import Config, ServeConfig
from searchrel.serving import serving_model_module

log = logging.getLogger(__name__)


async def request_validation_handler(request: Any, exc: Any) -> Any:
    """A body that does not fit the V2 schema: 400 naming the fields, never echoing values.

    FastAPI's own handler answers 422 with the offending input inside; an input such as
    Infinity cannot be written as JSON, and the request then ends in a 500.
    """
    from fastapi.responses import JSONResponse

    problems = [
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}: {e.get('msg', 'invalid')}"
        for e in exc.errors()[:5]
    ]
    return JSONResponse(status_code=400, content={"error": "; ".join(problems)})


def _rest_server_bound_to(host: str, serve_cfg: ServeConfig) -> Any:
    """KServe's REST server, bound to ``host``, with our request accounting and body limit
    around every scoring request and V2 binary bodies that fail to decode answered with a 400."""
    from fastapi.exceptions import RequestValidationError
    from kserve.protocol.rest.server import RESTServer

    from searchrel.serving.middleware import InferenceAccounting, strict_binary_decode

    class BoundRESTServer(RESTServer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.config.host = host
            plane = self.dataplane
            plane.decode_inference_request = strict_binary_decode(plane.decode_inference_request)

        def _add_middlewares(self, app: Any) -> None:
            super()._add_middlewares(app)
            # Added last, so outermost: it sees every request and every answer, 5xx included.
            app.add_middleware(InferenceAccounting, max_body_bytes=serve_cfg.max_body_bytes)

        def _add_exception_handlers(self, app: Any) -> None:
            super()._add_exception_handlers(app)
            app.add_exception_handler(RequestValidationError, request_validation_handler)

    return BoundRESTServer


def local_model_dir(source: str | Path, download_dir: Path | None = None) -> Path:
    """The student bundle as a local directory: as given, or fetched from s3://, gs://, ...
    through kserve's storage module (the same one KServe's storage initializer uses)."""
    from searchrel.model_source import OBJECT_STORE_PREFIXES, ModelSourceError

    text = str(source)
    if text.startswith(OBJECT_STORE_PREFIXES):
        try:
            from kserve_storage import Storage
        except ImportError as exc:
            raise ModelSourceError(
                f"{text}: object-store bundles need `pip install searchrel[storage]`"
            ) from exc
        target = download_dir or Path.cwd() / ".model-cache" / "student"
        target.mkdir(parents=True, exist_ok=True)
        path = Path(Storage.download(text, out_dir=str(target)))
    else:
        path = Path(text).expanduser()
    if not (path / "student.json").is_file():
        raise ModelSourceError(f"{text}: not a student bundle (no student.json)")
    return path


def serve(
    model_dir: str | Path,
    cfg: Config,
    host: str | None = None,
    port: int | None = None,
    request_log_dir: Path | None = None,
) -> None:
    """Load the student and its item store, then serve until SIGTERM/SIGINT (graceful)."""
    serving = serving_model_module()  # before kserve itself: it parses argv when imported
    import kserve.model_server
    from kserve import ModelServer

    host = host or cfg.serve.host
    port = port or cfg.serve.http_port
    if request_log_dir is None and cfg.serve.request_log:
        request_log_dir = Path(cfg.serve.request_log).expanduser()
    model = serving.StudentModel(
        local_model_dir(model_dir), cfg.serve, cfg.features, request_log_dir
    )
    model.load()
    kserve.model_server.RESTServer = _rest_server_bound_to(host, cfg.serve)
    log.info("serving %s on http://%s:%d", model.version, host, port)
    try:
        ModelServer(http_port=port, enable_grpc=False, workers=1, grace_period=10).start([model])
    finally:
        model.stop()  # KServe stops it on SIGTERM/SIGINT; on any other way out, here (idempotent)
