"""rules/extract.py: the manifest's own groups out, test-time shortening in, bad input named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rules.extract import (
    ManifestError,
    alerting_rules,
    extract_groups,
    main,
    render,
)
from tests.rules.support import MANIFEST, run


def _manifest_groups() -> list[dict]:
    return yaml.safe_load(MANIFEST.read_text())["spec"]["groups"]


def test_render_without_overrides_is_exactly_the_manifests_groups():
    assert yaml.safe_load(render(MANIFEST)) == {"groups": _manifest_groups()}


def test_alerting_rules_lists_the_three_alerts_in_file_order():
    assert [rule["alert"] for rule in alerting_rules(MANIFEST)] == [
        "RolloutRestartRateHigh",
        "RolloutOOMKilled",
        "RolloutP99LatencyRegressed",
    ]


def test_render_shortens_for_and_interval_and_nothing_else():
    rendered = yaml.safe_load(render(MANIFEST, for_override="10s", interval_override="5s"))
    original = _manifest_groups()
    for group, shipped in zip(rendered["groups"], original, strict=True):
        assert group["interval"] == "5s"
        for rule, shipped_rule in zip(group["rules"], shipped["rules"], strict=True):
            if "alert" in rule:
                assert rule["for"] == "10s"
                assert rule["expr"] == shipped_rule["expr"]
                assert rule["keep_firing_for"] == shipped_rule["keep_firing_for"]
            else:
                assert rule == shipped_rule


def test_rendered_pipeline_rules_pass_promtool_check(promtool: str, tmp_path: Path):
    path = tmp_path / "pipeline.rules.yaml"
    rendered = render(MANIFEST, for_override="5s", interval_override="2s")
    path.write_text(rendered)
    result = run([promtool, "check", "rules", "--lint=all", "--lint-fatal", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("keyword", "value"),
    [("for_override", "ten seconds"), ("interval_override", ""), ("interval_override", "1m1h")],
)
def test_render_rejects_a_bad_duration_and_names_the_parameter(keyword: str, value: str):
    with pytest.raises(ValueError, match=keyword):
        render(MANIFEST, **{keyword: value})


def test_a_second_yaml_document_is_refused_not_silently_dropped(tmp_path: Path):
    # promtool would read only the first document; the extractor must not hide the rest.
    path = tmp_path / "two.yaml"
    path.write_text(MANIFEST.read_text() + "\n---\n" + MANIFEST.read_text())
    with pytest.raises(ManifestError, match="exactly one YAML document, found 2"):
        extract_groups(path)


def test_a_plain_rule_file_is_not_mistaken_for_the_manifest(tmp_path: Path):
    path = tmp_path / "plain.yaml"
    path.write_text(yaml.safe_dump({"groups": _manifest_groups()}))
    with pytest.raises(ManifestError, match=r"expected apiVersion monitoring\.coreos\.com/v1"):
        extract_groups(path)


def test_a_rule_with_both_alert_and_record_is_named_by_group_and_position(tmp_path: Path):
    manifest = yaml.safe_load(MANIFEST.read_text())
    manifest["spec"]["groups"][0]["rules"][2]["alert"] = "Oops"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(manifest))
    with pytest.raises(ManifestError, match=r"group #1 \(rollback-webhook\), rule #3"):
        extract_groups(path)


def test_command_line_writes_the_rule_file(tmp_path: Path):
    out = tmp_path / "out.yaml"
    assert main([str(MANIFEST), "-o", str(out), "--for", "15s"]) == 0
    groups = yaml.safe_load(out.read_text())["groups"]
    assert {rule["for"] for rule in groups[0]["rules"] if "alert" in rule} == {"15s"}


def test_command_line_reports_a_bad_manifest_with_status_2(tmp_path: Path, capsys):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert main([str(path)]) == 2
    assert "found 0" in capsys.readouterr().err


def test_script_runs_standalone_from_any_directory(tmp_path: Path):
    # The pipeline harness and CI call it as a script, without the repo on sys.path.
    script = MANIFEST.parent / "extract.py"
    result = run(["python3", str(script), "--interval", "5s"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["groups"][0]["interval"] == "5s"


def test_render_shortens_keep_firing_for_of_every_alert_only():
    rendered = yaml.safe_load(render(MANIFEST, keep_firing_for_override="5s"))
    rules = [rule for group in rendered["groups"] for rule in group["rules"]]
    assert {rule["keep_firing_for"] for rule in rules if "alert" in rule} == {"5s"}
    assert not any("keep_firing_for" in rule for rule in rules if "record" in rule)
