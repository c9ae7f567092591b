"""searchrel.serving: the student on KServe's ModelServer.

``kserve.model_server`` parses ``sys.argv`` once, when it is first imported (argparse with
prefix matching: our ``--config`` would read as its ``--configure_logging``), and importing any
part of kserve imports it. KServe has no way to turn that off, so the first import of this
package imports it with an empty command line and restores the caller's argv; every module
of the package (and every user of it) then imports kserve freely.
"""

from __future__ import annotations

import sys

_argv, sys.argv = sys.argv, sys.argv[:1]
try:
    import kserve.model_server  # noqa: F401  (imported for its argv parsing, see above)
finally:
    sys.argv = _argv
    del _argv
