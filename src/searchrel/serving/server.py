"""Start the student on KServe's ModelServer (REST: V1 and V2), bound where we say, guarded.

KServe builds its REST server inside ``ModelServer.start`` from the module-level name
``kserve.model_server.RESTServer``, and offers no other way to set what we need, so that one
name is replaced by a subclass that uses only ``RESTServer``'s public surface:

- ``__init__``: the uvicorn config KServe builds binds 0.0.0.0 and has no connection cap, no
  deadline for a request head and no way to wrap the app outside Starlette's error middleware;
  we set the bind address, ``limit_concurrency`` (``serve.max_connections``), the protocol class
  with the head deadline (``searchrel.serving.connections``) and wrap the app in ``Guard``
  (``searchrel.serving.middleware``);
- ``create_application``: KServe registers its exception handlers there, each of which logs a
  full traceback at ERROR, for a client's mistake too; ours replace the client-error ones
  with one line at INFO (``handlers``).
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Any

import kserve.model_server
from fastapi.exceptions import RequestValidationError
from kserve import ModelServer
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady
from kserve.model_repository import ModelRepository
from kserve.protocol.rest.server import RESTServer

from searchrel.config import Config, ServeConfig
from searchrel.model_source import local_model_dir
from searchrel.serving import handlers
from searchrel.serving.connections import head_deadline_protocol
from searchrel.serving.logs import escape_server_logs
from searchrel.serving.middleware import Guard, strict_binary_decode
from searchrel.serving.model import StudentModel

log = logging.getLogger(__name__)


class StudentRepository(ModelRepository):
    """KServe's model registry, holding our one model: ``load`` (the repository API, when it
    is turned on) loads it again after an ``unload``; KServe's own ``load`` does nothing."""

    def __init__(self, model: StudentModel) -> None:
        super().__init__()
        self.model = model

    def load(self, name: str) -> bool:
        if name != self.model.name:
            return False
        if not self.model.ready:
            self.model.load()
        self.update(self.model)
        return self.model.ready

    def serving(self) -> bool:
        """Ready to score: the model is loaded and registered (not unloaded)."""
        return self.model.ready and self.get_model(self.model.name) is self.model


def rest_server_class(host: str, serve_cfg: ServeConfig, ready: Any) -> type[RESTServer]:
    """KServe's REST server, bound to ``host`` and guarded (see the module docstring)."""

    class GuardedRESTServer(RESTServer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["timeout_keep_alive"] = serve_cfg.keep_alive_timeout_s
            super().__init__(*args, **kwargs)
            config = self.config
            config.host = host
            config.limit_concurrency = serve_cfg.max_connections
            config.http = head_deadline_protocol(serve_cfg.header_timeout_s)
            # The import string KServe gives uvicorn names kserve.model_server.app, the app it
            # adds routes to in create_application; the guard wraps that same object.
            config.app = Guard(kserve.model_server.app, serve_cfg, ready)

        def create_application(self) -> None:
            super().create_application()
            app = kserve.model_server.app
            app.add_exception_handler(InvalidInput, handlers.invalid_input)
            app.add_exception_handler(ModelNotFound, handlers.model_not_found)
            app.add_exception_handler(ModelNotReady, handlers.model_not_ready)
            app.add_exception_handler(NotImplementedError, handlers.not_implemented)
            app.add_exception_handler(RequestValidationError, handlers.request_validation)

    return GuardedRESTServer


def serve(
    model_dir: str | Path,
    cfg: Config,
    host: str | None = None,
    port: int | None = None,
    request_log_dir: Path | None = None,
) -> None:
    """Load the student and its item store, then serve until SIGTERM/SIGINT (graceful)."""
    host = host or cfg.serve.host
    port = port or cfg.serve.http_port
    if request_log_dir is None and cfg.serve.request_log:
        request_log_dir = Path(cfg.serve.request_log).expanduser()
    model = StudentModel(local_model_dir(model_dir), cfg.serve, cfg.features, request_log_dir)
    model.load()
    repository = StudentRepository(model)
    kserve.model_server.RESTServer = rest_server_class(host, cfg.serve, repository.serving)
    server = ModelServer(
        http_port=port,
        enable_grpc=False,
        workers=1,
        grace_period=10,
        registered_models=repository,
        # KServe's per-request latency line repeats our metrics and echoes the x-request-id.
        enable_latency_logging=False,
    )
    escape_server_logs()  # after ModelServer(): that is where KServe sets up its loggers
    # Decoding a body (JSON, binary V2 tensors, binary CloudEvents) fails only on client bytes.
    server.dataplane.decode = strict_binary_decode(server.dataplane.decode)
    log.info("serving %s on http://%s:%d", model.version, host, port)
    # Everything loaded so far (torch, KServe, the model) lives as long as the process: frozen,
    # it is no longer walked by every full garbage collection, each a pause of a request.
    gc.collect()  # what loading left as garbage is freed, not frozen
    gc.freeze()
    try:
        server.start([model])
    finally:
        model.stop()  # KServe stops it on SIGTERM/SIGINT; on any other way out, here (idempotent)
