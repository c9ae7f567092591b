"""searchrel.serving"""

from __future__ import annotations

import sys
from types import ModuleType


def serving_model_module() -> ModuleType:
    """``searchrel.serving.model``, imported with an empty command line.

    kserve.model_server parses sys.argv once, when it is first imported (argparse with prefix
    matching: our --config would read as its --configure_logging), and ``searchrel.serving.model``
    imports kserve. Every in-process user (the server, the gate, tests) imports it through here;
    the caller's argv is restored afterwards.
    """
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        import searchrel.serving.model as serving
    finally:
        sys.argv = argv
    return serving
