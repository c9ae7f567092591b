"""monitoring/prometheus/rules.yml wrapped as the Prometheus operator's PrometheusRule.

rules.yml is the one copy of the rules (promtool checks and unit-tests it); the manifest in
manifests/base/prometheusrule.yaml is rendered from it by `make manifests` and CI checks that
the committed file is what this renders.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from searchrel.checkout import checkout_path

RULES = Path("monitoring/prometheus/rules.yml")
MANIFEST = Path("manifests/base/prometheusrule.yaml")
HEADER = """\
# GENERATED from monitoring/prometheus/rules.yml by `make manifests`; edit that file instead.
# kube-prometheus-stack's Prometheus picks up PrometheusRules labelled release=<its release>;
# change the label in an overlay if your release has another name.
"""


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (PromQL, descriptions) as readable `|` blocks, as in rules.yml."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def render(rules_text: str) -> str:
    groups = yaml.safe_load(rules_text)["groups"]
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "searchrel", "labels": {"release": "kube-prometheus-stack"}},
        "spec": {"groups": groups},
    }
    return HEADER + yaml.dump(manifest, Dumper=_BlockDumper, sort_keys=False, width=100)


def main() -> None:
    text = render(checkout_path(RULES).read_text(encoding="utf-8"))
    checkout_path(MANIFEST).write_text(text, encoding="utf-8")
    sys.stdout.write(f"{MANIFEST}\n")


if __name__ == "__main__":
    main()
