"""searchrel: LLM-quality search relevance, distilled for real-time serving."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("searchrel")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
