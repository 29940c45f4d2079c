"""The multi-cluster and clock-skew settings: defaults, and bad values named by their key."""

from __future__ import annotations

import pytest

from webhook.config import ConfigError, Settings, settings_from_dict


def test_defaults_serve_one_cluster_and_allow_five_minutes_of_skew() -> None:
    settings = Settings()
    assert (settings.cluster.name, settings.cluster.label) == (None, "cluster")
    assert settings.cluster.require_label is False
    assert settings.max_clock_skew == 300


def test_cluster_settings_are_read() -> None:
    settings = settings_from_dict(
        {
            "cluster": {"name": "prod-eu", "label": "k8s_cluster", "require_label": True},
            "max_clock_skew": "90s",
        }
    )
    assert settings.cluster.name == "prod-eu" and settings.cluster.label == "k8s_cluster"
    assert settings.cluster.require_label and settings.max_clock_skew == 90


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"cluster": {"require_label": True}}, "cluster.require_label"),
        ({"cluster": {"label": "cluster-name"}}, "cluster.label"),
        ({"cluster": {"name": ""}}, "cluster.name"),
        ({"cluster": {"zone": "x"}}, "cluster.zone"),
        ({"max_clock_skew": "soon"}, "max_clock_skew"),
    ],
)
def test_bad_cluster_settings_name_the_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_dict(data)
    assert str(raised.value).startswith(key + ":")
