"""Turn the shipped PrometheusRule manifest into a plain Prometheus rule file.

promtool and a bare prometheus cannot read the CRD (promtool 2.42: "field apiVersion not found in
type rulefmt.RuleGroups") and silently ignore every YAML document after the first, so tests and
pipelines run on `spec.groups` extracted from the manifest itself, never on a hand-kept copy.

`render()` is the one documented way to shorten `for:`, `keep_firing_for:` and the group
interval for a test pipeline; everything else (windows, thresholds) is passed through unchanged.

Usage:
    python3 rules/extract.py [MANIFEST] [-o OUT] [--for 10s] [--keep-firing-for 5s] [--interval 5s]
    python3 -m rules.extract ...
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

DEFAULT_MANIFEST = Path(__file__).resolve().parent / "rollback-rules.yaml"
API_VERSION = "monitoring.coreos.com/v1"
KIND = "PrometheusRule"

# Prometheus' duration syntax (model.ParseDuration): units in descending order, at least one.
_DURATION = re.compile(r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")


class ManifestError(ValueError):
    """The manifest is not a single, well-formed PrometheusRule; the message names the culprit."""


def _check_duration(value: str, *, what: str) -> str:
    if not value or not _DURATION.match(value):
        raise ValueError(f"{what}: {value!r} is not a Prometheus duration such as 30s, 5m or 1h30m")
    return value


def load_manifest(manifest_path: str | Path) -> dict[str, Any]:
    """Read and check the PrometheusRule manifest; raise ManifestError naming what is wrong."""
    path = Path(manifest_path)
    try:
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    except yaml.YAMLError as error:
        raise ManifestError(f"{path}: not valid YAML: {error}") from error
    if len(documents) != 1:
        # promtool would silently read only the first document: refuse rather than drop rules.
        raise ManifestError(f"{path}: expected exactly one YAML document, found {len(documents)}")
    manifest = documents[0]
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path}: the document is not a mapping")
    if manifest.get("apiVersion") != API_VERSION or manifest.get("kind") != KIND:
        raise ManifestError(
            f"{path}: expected apiVersion {API_VERSION} kind {KIND}, found "
            f"{manifest.get('apiVersion')!r} {manifest.get('kind')!r}"
        )
    spec = manifest.get("spec")
    groups = spec.get("groups") if isinstance(spec, dict) else None
    if not isinstance(groups, list) or not groups:
        raise ManifestError(f"{path}: spec.groups must be a non-empty list")
    for g_index, group in enumerate(groups, start=1):
        where = f"{path}: group #{g_index}"
        if not isinstance(group, dict) or not group.get("name"):
            raise ManifestError(f"{where}: a group needs a name")
        rules = group.get("rules")
        if not isinstance(rules, list) or not rules:
            raise ManifestError(f"{where} ({group['name']}): rules must be a non-empty list")
        for r_index, rule in enumerate(rules, start=1):
            if not isinstance(rule, dict) or ("alert" in rule) == ("record" in rule):
                raise ManifestError(
                    f"{where} ({group['name']}), rule #{r_index}: needs exactly one of alert/record"
                )
            if not str(rule.get("expr", "")).strip():
                raise ManifestError(
                    f"{where} ({group['name']}), rule #{r_index}: expr is missing or empty"
                )
    return manifest


def extract_groups(manifest_path: str | Path = DEFAULT_MANIFEST) -> dict[str, Any]:
    """Return the manifest's rule groups as a Prometheus rule-file document: {"groups": [...]}."""
    return {"groups": load_manifest(manifest_path)["spec"]["groups"]}


def alerting_rules(manifest_path: str | Path = DEFAULT_MANIFEST) -> list[dict[str, Any]]:
    """Every alerting rule of the manifest, in file order (what the contract test walks)."""
    return [
        rule
        for group in extract_groups(manifest_path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


class _BlockDumper(yaml.SafeDumper):
    """Dump multi-line strings (PromQL) as `|` blocks so the rule file stays readable."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_representer)


def dump_rule_file(document: dict[str, Any]) -> str:
    """Serialise a rule-file document as YAML text."""
    return yaml.dump(document, Dumper=_BlockDumper, sort_keys=False, width=100)


def render(
    manifest_path: str | Path = DEFAULT_MANIFEST,
    *,
    for_override: str | None = None,
    interval_override: str | None = None,
    keep_firing_for_override: str | None = None,
) -> str:
    """Return the manifest's groups as rule-file text, optionally shortened for a test pipeline.

    - `for_override` (e.g. "10s") replaces the `for:` of every alert;
    - `interval_override` (e.g. "5s") replaces every group's evaluation interval;
    - `keep_firing_for_override` (e.g. "5s") replaces every alert's `keep_firing_for:`.
    With no override the text is the shipped rules as they are (what `promtool test` runs on).
    """
    document = extract_groups(manifest_path)
    if for_override is not None:
        _check_duration(for_override, what="for_override")
    if interval_override is not None:
        _check_duration(interval_override, what="interval_override")
    if keep_firing_for_override is not None:
        _check_duration(keep_firing_for_override, what="keep_firing_for_override")
    for group in document["groups"]:
        if interval_override is not None:
            group["interval"] = interval_override
        for rule in group["rules"]:
            if for_override is not None and "alert" in rule:
                rule["for"] = for_override
            if keep_firing_for_override is not None and "alert" in rule:
                rule["keep_firing_for"] = keep_firing_for_override
    return dump_rule_file(document)


def write_rule_file(
    output_path: str | Path,
    manifest_path: str | Path = DEFAULT_MANIFEST,
    *,
    for_override: str | None = None,
    interval_override: str | None = None,
    keep_firing_for_override: str | None = None,
) -> Path:
    """Render the manifest (see `render`) into `output_path` and return that path."""
    out = Path(output_path)
    out.write_text(
        render(
            manifest_path,
            for_override=for_override,
            interval_override=interval_override,
            keep_firing_for_override=keep_firing_for_override,
        )
    )
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rules/extract.py",
        description="Extract the PrometheusRule manifest's groups into a plain rule file "
        "(for promtool and a bare prometheus).",
    )
    parser.add_argument(
        "manifest", nargs="?", default=str(DEFAULT_MANIFEST), help="PrometheusRule manifest"
    )
    parser.add_argument("-o", "--output", help="write here instead of stdout")
    parser.add_argument("--for", dest="for_override", help="replace every alert's for: (tests)")
    parser.add_argument("--interval", dest="interval_override", help="replace group intervals")
    parser.add_argument(
        "--keep-firing-for",
        dest="keep_firing_for_override",
        help="replace every alert's keep_firing_for: (tests)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 on a bad manifest or option)."""
    args = _parser().parse_args(argv)
    try:
        text = render(
            args.manifest,
            for_override=args.for_override,
            interval_override=args.interval_override,
            keep_firing_for_override=args.keep_firing_for_override,
        )
    except (OSError, ValueError) as error:
        print(f"extract: {error}", file=sys.stderr)
        return 2
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
