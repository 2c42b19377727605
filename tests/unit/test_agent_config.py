"""The agent's configuration (agent.config): defaults, the file, its errors, its writer."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from agent.config import (
    CONFIG_ENV,
    SYSTEM_CONFIG_ENV,
    AgentConfig,
    ConfigError,
    load_config,
    render_config,
    write_config,
)


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Platform directories under tmp_path, and no DMP_AGENT_CONFIG from the caller."""
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.setenv(SYSTEM_CONFIG_ENV, str(tmp_path / "etc" / "dmp-agent" / "agent.toml"))
    return tmp_path


def _files(tmp_path: Path, system: str, user: str | None = None) -> tuple[Path, Path]:
    admin = tmp_path / "etc" / "dmp-agent" / "agent.toml"
    admin.parent.mkdir(parents=True, exist_ok=True)
    admin.write_text(system)
    mine = tmp_path / "xdg_config_home" / "dmp-agent" / "agent.toml"
    if user is not None:
        mine.parent.mkdir(parents=True, exist_ok=True)
        mine.write_text(user)
    return admin, mine


def test_the_administrators_file_gives_every_user_its_values(tmp_path: Path) -> None:
    admin, mine = _files(
        tmp_path, '[host]\nurl = "https://dmp.example.fr"\nca = "host-ca.pem"\n',
        '[log]\nlevel = "debug"\n')
    config = load_config()
    assert config.host_url == "https://dmp.example.fr"
    assert config.host_ca == admin.parent / "host-ca.pem"  # relative to the admin's file
    assert config.log_level == "DEBUG"  # the user's own
    assert (config.system_source, config.source) == (admin, mine)
    assert config.locked == () and config.ignored == ()


def test_a_locked_key_keeps_the_administrators_value_and_the_users_is_ignored_and_said(
    tmp_path: Path
) -> None:
    _files(tmp_path, '[admin]\nlocked = ["host.url"]\n[host]\nurl = "https://dmp.example.fr"\n'
                     'timeout_seconds = 20\n',
           '[host]\nurl = "https://evil.example"\ntimeout_seconds = 10\n')
    config = load_config()
    assert config.host_url == "https://dmp.example.fr"
    assert config.host_timeout == 10  # not locked: the user's
    assert config.locked == ("host.url",) and config.ignored == ("host.url",)
    from agent.install.doctor import Status, check_locked

    check = check_locked(config)
    assert check.status is Status.WARNING and "host.url" in check.found


@pytest.mark.parametrize(("system", "user", "key"), [
    ('[admin]\nlocked = ["host.nowhere"]\n', None, "admin.locked"),
    ('[admin]\nlocked = "host.url"\n', None, "admin.locked"),
    ('[admin]\nunlock = []\n', None, "admin"),
    ("", '[admin]\nlocked = []\n', "admin"),  # a user cannot lock anything
    ('[host]\nurl = "http://plain.example"\n', None, "host.url"),
])
def test_a_bad_administrators_file_or_a_user_locking_keys_is_refused_with_the_key_named(
    tmp_path: Path, system: str, user: str | None, key: str
) -> None:
    _files(tmp_path, system, user)
    with pytest.raises(ConfigError) as raised:
        load_config()
    assert raised.value.key == key


def test_without_a_file_the_defaults_apply_in_the_platform_directories(tmp_path: Path) -> None:
    config = load_config()
    assert config.source is None
    assert config.host_url == "https://localhost:8443"
    assert (config.retry_base, config.retry_max, config.retry_jitter) == (5.0, 3600.0, 0.2)
    assert config.credentials_dir == tmp_path / "xdg_config_home" / "dmp-agent" / "workstation"
    assert config.data_dir == tmp_path / "xdg_data_home" / "dmp-agent"
    assert config.outbox_path == config.data_dir / "outbox" / "outbox.sqlite3"


def test_the_default_file_is_read_and_unset_keys_keep_their_defaults(tmp_path: Path) -> None:
    file = tmp_path / "xdg_config_home" / "dmp-agent" / "agent.toml"
    file.parent.mkdir(parents=True)
    file.write_text('[host]\nurl = "https://dmp.example.fr"\n[log]\nlevel = "debug"\n'
                    '[readers]\ncps = ["Gemalto", "Omnikey"]\n'
                    '[paths]\ndata_dir = "state"\n')
    config = load_config()
    assert config.source == file
    assert config.host_url == "https://dmp.example.fr"
    assert config.log_level == "DEBUG"
    assert config.cps_readers == ("Gemalto", "Omnikey")
    assert config.data_dir == file.parent / "state"  # relative to the file
    assert config.api_port == AgentConfig().api_port


def test_the_environment_names_another_file_which_must_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text("[api]\nport = 18000\n")
    monkeypatch.setenv(CONFIG_ENV, str(other))
    assert load_config().api_port == 18000
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config()


@pytest.mark.parametrize(("text", "key"), [
    ('[host]\nurl = "http://dmp.example.fr"', "host.url"),
    ("[host]\nurl = 3", "host.url"),
    ('[host]\nca = 12', "host.ca"),
    ("[host]\ntimeout_seconds = -1", "host.timeout_seconds"),
    ('[outbox]\nretry_base_seconds = "5"', "outbox.retry_base_seconds"),
    ("[outbox]\nretry_base_seconds = 0", "outbox.retry_base_seconds"),
    ("[outbox]\nretry_base_seconds = nan", "outbox.retry_base_seconds"),
    ("[outbox]\nretry_jitter = 1.5", "outbox.retry_jitter"),
    ("[outbox]\nretry_jitter = true", "outbox.retry_jitter"),
    ("[outbox]\nretry_base_seconds = 60\nretry_max_seconds = 30", "outbox.retry_max_seconds"),
    ("[api]\nport = 80", "api.port"),
    ("[api]\nport = 8080.0", "api.port"),
    ('[log]\nlevel = "LOUD"', "log.level"),
    ('[readers]\ncps = "Gemalto"', "readers.cps"),
    ("[readers]\nvitale = [1, 2]", "readers.vitale"),
    ('[host]\nurll = "https://x"', "host.urll"),
    ("[proxy]\nurl = 1", "proxy"),
    ("host = 1", "host"),
])
def test_a_bad_value_is_refused_with_the_file_and_the_key_named(
    tmp_path: Path, text: str, key: str
) -> None:
    file = tmp_path / "agent.toml"
    file.write_text(text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(file)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{file}: {key}: ")


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    file = tmp_path / "agent.toml"
    file.write_bytes(b"[host\nurl = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(file)
    file.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(file)


def test_the_written_file_documents_every_key_reads_back_equal_and_is_owner_only(
    tmp_path: Path,
) -> None:
    config = AgentConfig(
        host_url="https://dmp.example.fr:9443/api", host_ca=tmp_path / 'ca "x".pem',
        host_timeout=12.5, cps_readers=("Lecteur CPS", "é\\ü"), vitale_readers=("Vitale",),
        api_port=18123, log_level="WARNING", retry_base=1.5, retry_max=600.0,
        retry_jitter=0.0, data_dir=tmp_path / "data",
    )
    file = write_config(config, tmp_path / "conf" / "agent.toml")
    text = file.read_text()
    assert "# Délai le plus long entre deux essais" in text
    assert 'credentials_dir = ""' in text  # the platform default stays a default
    assert load_config(file) == AgentConfig(**{**config.__dict__, "source": file})
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert stat.S_IMODE(file.parent.stat().st_mode) == 0o700
    assert load_config(_written(tmp_path, render_config())) == AgentConfig(
        source=tmp_path / "defaults.toml")


def _written(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "defaults.toml"
    file.write_text(text)
    return file


def test_a_config_built_in_code_is_checked_too() -> None:
    with pytest.raises(ConfigError) as caught:
        AgentConfig(retry_jitter=-0.1)
    assert caught.value.key == "outbox.retry_jitter"
