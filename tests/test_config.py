"""Settings: env (nested with __), YAML, overrides, unknown keys, clear errors, masked secrets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from monitor.config import Settings, load_settings, masked_dump
from monitor.errors import ConfigError


def test_defaults_are_valid_and_embedded() -> None:
    settings = load_settings()
    assert settings.store_backend == "embedded"
    assert settings.kafka.events_topic == "vigil.events"


def test_precedence_overrides_beat_env_beat_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text("kafka:\n  batch_max: 10\n  group_id: from-yaml\nstore:\n  ttl_days: 7\n")
    monkeypatch.setenv("VIGIL_KAFKA__BATCH_MAX", "20")
    settings = load_settings(config, overrides={"store": {"ttl_days": 30}})
    assert settings.kafka.batch_max == 20  # env beats YAML
    assert settings.kafka.group_id == "from-yaml"  # YAML beats defaults
    assert settings.store.ttl_days == 30  # overrides beat everything


def test_vigil_config_env_names_the_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text("store:\n  url: http://ch:8123\n")
    monkeypatch.setenv("VIGIL_CONFIG", str(config))
    assert load_settings().store_backend == "server"


@pytest.mark.parametrize(
    ("yaml_text", "named"),
    [
        ("kafka:\n  batch_mx: 10\n", "kafka.batch_mx"),
        ("sampling:\n  rates:\n    judge: 1.5\n", "sampling.rates.judge"),
        ("store:\n  backend: server\n", "store.url"),
        ("nonsense: 1\n", "nonsense"),
    ],
)
def test_bad_settings_name_the_field(tmp_path: Path, yaml_text: str, named: str) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert named in str(info.value)


def test_bad_env_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_KAFKA__BATCH_MAX", "lots")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "VIGIL_KAFKA__BATCH_MAX" in str(info.value)


def test_unreadable_and_malformed_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml"):
        load_settings(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kafka: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)


def test_secrets_are_masked() -> None:
    settings = Settings(
        store={"password": "hunter2"},
        judge={"api_key": "sk-secret"},
        alerts={"webhook_url": "https://hooks.example/T0K3N"},
    )
    dumped = orjson.dumps(masked_dump(settings)).decode()
    assert "hunter2" not in dumped and "sk-secret" not in dumped and "T0K3N" not in dumped
    assert masked_dump(settings)["store"]["password"] == "********"
    assert masked_dump(settings)["alerts"]["webhook_url"] == "********"


def test_every_field_is_documented() -> None:
    def walk(model: type) -> list[str]:
        missing = []
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            if not field.description:
                missing.append(f"{model.__name__}.{name}")
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                missing += walk(annotation)
        return missing

    assert walk(Settings) == []


def _vigil(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vigil.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_config_show_masks_and_bad_setting_is_one_line(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "VIGIL_STORE__PASSWORD": "hunter2"}
    shown = _vigil("config", "show", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    data = orjson.loads(shown.stdout)
    assert data["store"]["password"] == "********" and "hunter2" not in shown.stdout

    env["VIGIL_KAFKA__BATCH_MAX"] = "-3"
    bad = _vigil("config", "show", env=env)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "kafka.batch_max" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_common_options_go_before_or_after_the_command(tmp_path: Path, where: str) -> None:
    common = ["--data-dir", str(tmp_path / "d"), "--bootstrap-servers", "kafka.example:9092"]
    command = ["config", "show", "--json"]
    argv = common + command if where == "before" else command + common
    shown = _vigil(*argv)
    assert shown.returncode == 0, shown.stderr
    data = orjson.loads(shown.stdout)
    assert data["store"]["data_dir"] == str(tmp_path / "d")
    assert data["kafka"]["bootstrap_servers"] == "kafka.example:9092"


def test_settings_file_round_trips_secrets_for_a_worker(tmp_path: Path) -> None:
    from monitor.config import write_settings_file

    settings = load_settings(
        overrides={"store": {"password": "hunter2"}, "judge": {"cascade": {"api_key": "sk-2"}}}
    )
    path = write_settings_file(settings, tmp_path / "worker.yaml")
    assert path.stat().st_mode & 0o077 == 0
    again = load_settings(path)
    assert again == settings
    assert again.judge.cascade.api_key.get_secret_value() == "sk-2"


def test_eval_sets_live_beside_the_data_directory_unless_set(tmp_path: Path) -> None:
    moved = load_settings(overrides={"store": {"data_dir": str(tmp_path / "data")}})
    assert moved.evalset_dir == tmp_path / "evalsets"
    assert moved.gate_cache_dir == tmp_path / "gate-cache"
    assert load_settings().evalset_dir == Path(".vigil/evalsets")
    own = load_settings(overrides={"evalset": {"dir": str(tmp_path / "sets")}})
    assert own.evalset_dir == tmp_path / "sets"
