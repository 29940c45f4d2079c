"""The postgresql overlay: enforce with the audit in PostgreSQL, its DSN from a Secret file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lab.postgres import PostgresServer
from tests.deploy.render import DEPLOY, render
from webhook.audit import open_store
from webhook.config import settings_from_dict


def config_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    [config_map] = [o for o in objects if o["kind"] == "ConfigMap"]
    loaded: dict[str, Any] = yaml.safe_load(config_map["data"]["config.yaml"])
    return loaded


def test_the_overlay_differs_from_enforce_only_in_the_audit_and_mounts_the_dsn_secret() -> None:
    objects = render(DEPLOY / "overlays" / "postgresql")
    config, enforce = config_of(objects), config_of(render(DEPLOY / "overlays" / "enforce"))
    assert {k: v for k, v in config.items() if k != "audit"} == {
        k: v for k, v in enforce.items() if k != "audit"
    }
    settings = settings_from_dict(config)
    assert settings.audit.backend == "postgresql"
    assert settings.audit.dsn_file == "/etc/rollback-webhook/audit/dsn"
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    [volume] = [v for v in spec["volumes"] if v["name"] == "audit-dsn"]
    assert volume["secret"]["secretName"] == "rollback-webhook-audit-dsn"
    [mount] = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "audit-dsn"]
    assert Path(mount["mountPath"]) / volume["secret"]["items"][0]["path"] == Path(
        settings.audit.dsn_file
    )
    assert mount["readOnly"] is True
    assert "postgresql://" not in yaml.safe_dump_all(objects)  # no DSN shipped


def test_the_store_reads_its_dsn_from_the_file_and_works(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    dsn_file = tmp_path / "dsn"
    dsn_file.write_text(postgres_server.create_database() + "\n")
    store = open_store(backend="postgresql", dsn_file=str(dsn_file))
    store.check_ready()
    assert "***" not in store.describe() and "rollback@" in store.describe()
    store.close()


def test_messages_name_the_database_without_its_password() -> None:
    from webhook.audit.postgresql import PostgresStore

    for dsn in ("postgresql://app:s3cret@db:5432/audit", "host=db user=app password=s3cret"):
        assert "s3cret" not in PostgresStore(dsn).describe()
