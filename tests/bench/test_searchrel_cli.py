"""A searchrel command run as a subprocess: its summary is the JSON it prints last."""

from __future__ import annotations

import pytest

from bench.searchrel_cli import last_json


def test_the_summary_a_searchrel_command_prints_is_found_after_its_log_lines() -> None:
    out = 'note: {"not": "this"}\n{\n  "stage": "label",\n  "nested": {\n    "a": 1\n  }\n}\n'
    assert last_json(out) == {"stage": "label", "nested": {"a": 1}}
    with pytest.raises(ValueError):
        last_json("no summary\n")
