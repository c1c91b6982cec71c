"""The deployment files in deploy/ say what Vigil accepts: every manifest parses, every
setting they pass (YAML files and ``VIGIL_*`` env vars) loads into `Settings`, probes hit
the port and paths the worker serves, services name each other correctly, and
`vigil store ddl` prints a schema chDB runs (single node) or parses (cluster)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import BaseModel, SecretStr

from dashboards.build import DATASOURCE_TYPE, DATASOURCE_UID, GENERATED
from monitor.config import Settings, load_settings
from monitor.store.cluster_ddl import LOCAL_SUFFIX, SHARDING_KEYS, order_by, sharding_key
from monitor.store.embedded import EmbeddedStore
from monitor.store.schema import INGEST_TABLE, INGEST_TARGETS
from monitor.store.tables import TABLES
from vigil.cli.main import main

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
PROVISIONING = DEPLOY / "grafana" / "provisioning"


@pytest.fixture(autouse=True)
def _no_vigil_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the variables a test sets count, never the developer's own ``VIGIL_*``."""
    import os

    for name in [n for n in os.environ if n.startswith("VIGIL_")]:
        monkeypatch.delenv(name)


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = _yaml(DEPLOY / "compose.yaml")
    return data


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict[str, Any]]:
    docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "vigil-sidecar.yaml").read_text()))
    return {doc["kind"]: doc for doc in docs if doc}


def _vigil_container(k8s: dict[str, dict[str, Any]]) -> dict[str, Any]:
    containers = k8s["Deployment"]["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "vigil")


def _configmap_settings(k8s: dict[str, dict[str, Any]], tmp_path: Path) -> Settings:
    path = tmp_path / "vigil.yaml"
    path.write_text(k8s["ConfigMap"]["data"]["vigil.yaml"])
    return load_settings(config_file=path)


def _field(path: list[str]) -> Any:
    """The pydantic field at ``path`` (lower-case names) under `Settings`; KeyError if none."""
    model: type[BaseModel] = Settings
    info = None
    for name in path:
        info = model.model_fields[name]
        annotation = info.annotation
        model = annotation if isinstance(annotation, type) else BaseModel
    return info


def _placeholder(name: str) -> str:
    # Webhook and judge URLs are validated (https with a host); anything else is free text.
    return "https://placeholder.example.com/v1" if name.endswith("_URL") else "placeholder-1"


def _check_env_vars(names: list[str], monkeypatch: pytest.MonkeyPatch, config: Path) -> None:
    """Each ``VIGIL_*`` name is a real settings field, and a value set through it arrives."""
    values = {name: _placeholder(name) for name in names if name != "VIGIL_CONFIG"}
    assert values, "no VIGIL_* variables found"
    for name in values:
        path = name.removeprefix("VIGIL_").lower().split("__")
        try:
            _field(path)
        except KeyError:
            pytest.fail(f"{name} names no setting ({'.'.join(path)})")
        monkeypatch.setenv(name, values[name])
    settings = load_settings(config_file=config)
    for name, value in values.items():
        got: Any = settings
        for part in name.removeprefix("VIGIL_").lower().split("__"):
            got = getattr(got, part)
        got = got.get_secret_value() if isinstance(got, SecretStr) else got
        assert got == value, name


# -- compose ------------------------------------------------------------------------------


def test_compose_settings_yaml_loads_and_names_compose_services(compose: dict[str, Any]) -> None:
    settings = load_settings(config_file=DEPLOY / "vigil.yaml")
    services = compose["services"]
    assert settings.store_backend == "server"
    store = urlsplit(settings.store.url)
    assert store.hostname in services and store.port == 8123
    for server in settings.kafka.bootstrap_servers.split(","):
        host, port = server.rsplit(":", 1)
        assert host in services
        assert (
            f"INTERNAL://{host}:{port}"
            in services[host]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
        )
    clickhouse = services[store.hostname]["environment"]
    assert clickhouse["CLICKHOUSE_USER"] == settings.store.username
    assert settings.ops.enabled and settings.ops.bind == "0.0.0.0" and settings.ops.allow_remote


def test_compose_env_vars_are_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = compose["services"]["vigil"]["environment"]
    _check_env_vars([n for n in env if n.startswith("VIGIL_")], monkeypatch, DEPLOY / "vigil.yaml")


def test_compose_references_resolve(compose: dict[str, Any]) -> None:
    services, volumes = compose["services"], compose["volumes"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for mount in service.get("volumes", []):
            source, target = mount.split(":")[:2]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} mounts undeclared volume {source}"
            assert target.startswith("/")
    vigil = services["vigil"]
    build = vigil["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
    mounts = dict(m.split(":")[:2] for m in vigil["volumes"])
    assert mounts["./vigil.yaml"] == vigil["environment"]["VIGIL_CONFIG"]
    assert vigil["command"] == ["worker"]


def test_compose_kafka_is_single_node_kraft(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    env = kafka["environment"]
    assert kafka["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{node}@kafka:9093"
    listeners = {part.split("://")[0] for part in env["KAFKA_LISTENERS"].split(",")}
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert listeners == set(protocols) and env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1
    assert compose["services"]["clickhouse"]["image"].startswith("clickhouse/clickhouse-server")


def _served_paths() -> list[str]:
    """The pages the worker registers on its web server (`streams.ops_web`)."""
    from streams.ops_web import add_ops_views

    paths: list[str] = []

    class _App:
        def page(self, path: str) -> Callable[[Any], Any]:
            paths.append(path)
            return lambda view: view

    add_ops_views(_App(), Settings().ops, endpoints=None)  # type: ignore[arg-type]
    return paths


def test_compose_healthcheck_hits_the_ops_port_and_paths(compose: dict[str, Any]) -> None:
    settings = load_settings(config_file=DEPLOY / "vigil.yaml")
    test = " ".join(compose["services"]["vigil"]["healthcheck"]["test"])
    assert f"http://127.0.0.1:{settings.ops.port}/" in test
    served = _served_paths()
    for path in ("healthz", "readyz"):
        assert f"/{path}" in served and f"'{path}'" in test
    published = compose["services"]["vigil"]["ports"]
    assert f"127.0.0.1:{settings.ops.port}:{settings.ops.port}" in published


def test_dockerfile_installs_cpu_torch_first() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim AS build" in text
    torch = text.index('"torch==2.13.0"')
    assert "download.pytorch.org/whl/cpu" in text[text.rfind("\n", 0, torch) : torch]
    assert torch < text.index("RUN pip install .")
    assert 'ENTRYPOINT ["vigil"]' in text


# -- Grafana provisioning -----------------------------------------------------------------


def test_grafana_provisioning(compose: dict[str, Any]) -> None:
    settings = load_settings(config_file=DEPLOY / "vigil.yaml")
    grafana = compose["services"]["grafana"]
    assert grafana["environment"]["GF_INSTALL_PLUGINS"] == DATASOURCE_TYPE
    (source,) = _yaml(PROVISIONING / "datasources" / "vigil-clickhouse.yaml")["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == DATASOURCE_TYPE
    json_data = source["jsonData"]
    assert json_data["host"] in compose["services"] and json_data["port"] == 8123
    assert json_data["defaultDatabase"] == settings.store.database
    assert json_data["username"] == settings.store.username
    # Grafana expands ${VAR} from its environment: compose must pass that variable.
    (var,) = re.findall(r"^\$\{(\w+)\}$", source["secureJsonData"]["password"])
    assert var in grafana["environment"]

    (provider,) = _yaml(PROVISIONING / "dashboards" / "vigil.yaml")["providers"]
    mounts = {m.split(":")[1]: m.split(":") for m in grafana["volumes"]}
    src, _, mode = mounts[provider["options"]["path"]]
    assert (DEPLOY / src).resolve() == GENERATED and mode == "ro"
    assert sorted(GENERATED.glob("*.json")), "no generated dashboards to provision"
    src, _, mode = mounts["/etc/grafana/provisioning"]
    assert (DEPLOY / src).resolve() == PROVISIONING and mode == "ro"


# -- Kubernetes ---------------------------------------------------------------------------


def test_k8s_configmap_settings_load(k8s: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    settings = _configmap_settings(k8s, tmp_path)
    assert settings.store_backend == "server" and settings.kafka.bootstrap_servers
    assert settings.ops.bind == "0.0.0.0" and settings.ops.allow_remote


def test_k8s_env_vars_are_settings_and_come_from_the_objects(
    k8s: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = _vigil_container(k8s)
    env = {e["name"]: e for e in container["env"]}
    secret = k8s["Secret"]
    for name in ("VIGIL_STORE__PASSWORD", "VIGIL_ALERTS__WEBHOOK_URL", "VIGIL_JUDGE__API_KEY"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    config = tmp_path / "vigil.yaml"
    config.write_text(k8s["ConfigMap"]["data"]["vigil.yaml"])
    _check_env_vars(list(env), monkeypatch, config)
    # The placeholders themselves pass validation (the webhook one is https).
    for name, e in env.items():
        if "valueFrom" in e:
            monkeypatch.setenv(name, secret["stringData"][e["valueFrom"]["secretKeyRef"]["key"]])
    load_settings(config_file=config)


def test_k8s_config_is_mounted_where_vigil_config_points(k8s: dict[str, dict[str, Any]]) -> None:
    container = _vigil_container(k8s)
    env = {e["name"]: e.get("value") for e in container["env"]}
    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v.get("configMap"))
    assert volume["configMap"]["name"] == k8s["ConfigMap"]["metadata"]["name"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    config = Path(env["VIGIL_CONFIG"])
    assert Path(mount["mountPath"]) == config.parent and config.name in k8s["ConfigMap"]["data"]
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/tmp", "/var/lib/vigil"}


def test_k8s_probes_hit_the_ops_port(k8s: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    settings = _configmap_settings(k8s, tmp_path)
    container = _vigil_container(k8s)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    served = _served_paths()
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path and path in served
        assert ports[get["port"]] == settings.ops.port
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    containers = k8s["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 2, "Vigil runs beside the model server"


# -- systemd ------------------------------------------------------------------------------


def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit as section -> key -> values (keys may repeat, as Environment= does)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not key=value: {raw!r}"
        current.setdefault(key, []).append(value)
    return sections


def test_systemd_unit() -> None:
    unit = _unit(DEPLOY / "systemd" / "vigil-worker.service")
    service = unit["Service"]
    settings = load_settings(config_file=DEPLOY / "vigil.yaml")
    program, *args = service["ExecStart"][0].split()
    assert Path(program).is_absolute() and Path(program).name == "vigil" and args == ["worker"]
    env = dict(e.split("=", 1) for e in service["Environment"])
    assert env["VIGIL_CONFIG"].startswith("/etc/")
    assert service["Restart"] == ["on-failure"]
    assert service["User"][0] not in ("", "root")
    assert service["NoNewPrivileges"] == ["true"] and service["ProtectSystem"] == ["strict"]
    writable = [Path(p) for p in service["ReadWritePaths"][0].split()]
    data_dir = settings.store.data_dir
    assert any(data_dir.is_relative_to(p) for p in writable), "the data dir must be writable"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


# -- vigil store ddl ----------------------------------------------------------------------


def _statements(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[str]:
    assert main(argv) == 0
    text = capsys.readouterr().out
    return [s.strip() for s in text.split(";\n\n") if s.strip()]


@pytest.fixture
def fresh_store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    store = EmbeddedStore(tmp_path / "data")
    yield store
    store.close()


def _schema(store: EmbeddedStore) -> list[dict[str, Any]]:
    return store.query(
        "SELECT name, engine, create_table_query FROM system.tables"
        " WHERE database = 'vigil' ORDER BY name"
    )


def test_store_ddl_single_node_is_what_migration_creates(
    capsys: pytest.CaptureFixture[str], fresh_store: EmbeddedStore, tmp_path: Path
) -> None:
    statements = _statements(capsys, ["store", "ddl"])
    for statement in statements:
        fresh_store.command(statement)
    printed = _schema(fresh_store)
    fresh_store.close()
    migrated_store = EmbeddedStore(tmp_path / "migrated")
    try:
        migrated_store.migrate()
        migrated = _schema(migrated_store)
    finally:
        migrated_store.close()
    assert printed == migrated
    assert {row["name"] for row in printed} >= {t.name for t in TABLES} | {INGEST_TABLE}


def test_store_ddl_cluster(capsys: pytest.CaptureFixture[str], fresh_store: EmbeddedStore) -> None:
    statements = _statements(capsys, ["store", "ddl", "--cluster", "c1"])
    assert all(" ON CLUSTER c1 " in s + " " for s in statements)
    for table in TABLES:
        local = f"vigil.{table.name}{LOCAL_SUFFIX}"
        (create,) = [s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS {local} ")]
        version = re.search(r"ENGINE = ReplacingMergeTree(?:\((\w+)\))?", table.ddl)
        assert version is not None
        args = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"
        args += f", {version.group(1)}" if version.group(1) else ""
        assert f"ENGINE = ReplicatedReplacingMergeTree({args})\n" in create
        (dist,) = [
            s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS vigil.{table.name} ")
        ]
        key = sharding_key(table)
        assert dist.endswith(
            f"AS {local} ENGINE = Distributed(c1, vigil, {table.name}_local, {key})"
        )
        # Rows that replace each other share their ORDER BY key: the shard must follow it.
        hashed = re.fullmatch(r"cityHash64\((.+)\)", key)
        assert hashed is not None and set(hashed.group(1).split(", ")) <= set(order_by(table))
    assert set(SHARDING_KEYS) <= {t.name for t in TABLES}
    for target in INGEST_TARGETS:
        (view,) = [s for s in statements if f"vigil.{INGEST_TABLE}_to_{target} " in s]
        assert f"TO vigil.{target}_local " in view and view.endswith(
            f"FROM vigil.{INGEST_TABLE}_local"
        )
    # Every statement parses (chDB has no cluster or Keeper to run them against).
    for statement in statements:
        fresh_store.query("SELECT formatQuery({sql:String}) AS q", {"sql": statement})


def test_store_ddl_rejects_a_bad_cluster_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["store", "ddl", "--cluster", "c1; DROP"]) == 2
    assert "cluster name" in capsys.readouterr().err
