"""Start the student on KServe's ModelServer (REST: V1 and V2), bound where we say.

KServe's REST server binds 0.0.0.0 unconditionally; locally we bind 127.0.0.1 by default, so
the bind address is applied to the uvicorn config KServe builds.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from searchrel.config import Config

log = logging.getLogger(__name__)


def _rest_server_bound_to(host: str) -> Any:
    from kserve.protocol.rest.server import RESTServer

    class BoundRESTServer(RESTServer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.config.host = host

    return BoundRESTServer


def serve(
    model_dir: Path,
    cfg: Config,
    host: str | None = None,
    port: int | None = None,
    request_log_dir: Path | None = None,
) -> None:
    """Load the student and its item store, then serve until SIGTERM/SIGINT (graceful)."""
    # kserve.model_server parses sys.argv when imported (argparse, with prefix matching:
    # our --config would read as its --configure_logging). Our arguments are parsed already.
    sys.argv = sys.argv[:1]
    import kserve.model_server
    from kserve import ModelServer

    from searchrel.serving.model import StudentModel

    host = host or cfg.serve.host
    port = port or cfg.serve.http_port
    model = StudentModel(model_dir, cfg.serve, cfg.features, request_log_dir)
    model.load()
    kserve.model_server.RESTServer = _rest_server_bound_to(host)
    log.info("serving %s on http://%s:%d", model.version, host, port)
    ModelServer(http_port=port, enable_grpc=False, workers=1, grace_period=10).start([model])


if __name__ == "__main__":
    from searchrel.cli import module_main

    module_main("serve")
