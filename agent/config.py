"""The agent's configuration: one TOML file, platform directories, sensible defaults.

Where things live (platformdirs, application name ``dmp-agent``)::

    config file   $DMP_AGENT_CONFIG, else <user config dir>/agent.toml
                  (Linux ~/.config/dmp-agent/agent.toml, Windows %LOCALAPPDATA%\\dmp-agent\\...)
    credentials   <user config dir>/workstation/   the enrolled certificate and encrypted key
    data          <user data dir>/                 the deposit outbox (outbox/), key secrets (keys/)
    logs          <user log dir>/

Under the user's file, the administrator's (``$DMP_AGENT_SYSTEM_CONFIG``, else
``/etc/dmp-agent/agent.toml``; Windows ``%PROGRAMDATA%\\dmp-agent\\agent.toml``; macOS
``/Library/Application Support/dmp-agent/agent.toml``) gives every user of the machine its
values (the production host, its CA, a proxy); its ``[admin] locked = ["host.url", ...]``
names the keys a user's file may not change: such a user value is ignored, and said
(`AgentConfig.ignored`, the page's settings, ``doctor``).

Every key is optional; `KEYS` documents them and `render_config` writes a commented file.
A missing default file means "all defaults"; a file named by ``path`` or by
``DMP_AGENT_CONFIG`` must exist. A bad value raises `ConfigError` naming the key
(``outbox.retry_base_seconds: ...``). Files this module writes are owner-only (0600 in a
0700 directory): the configuration names the credentials and the host.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import textwrap
import tomllib
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from agent.errors import AgentError
from agent.i18n import N_, _
from agent.i18n import SETTINGS as LANGUAGE_SETTINGS

APP_NAME = "dmp-agent"
CONFIG_ENV = "DMP_AGENT_CONFIG"
SYSTEM_CONFIG_ENV = "DMP_AGENT_SYSTEM_CONFIG"
ADMIN_SECTION = "admin"  # of the system file only: [admin] locked = ["host.url", ...]
CONFIG_FILE = "agent.toml"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# The DMP's rule: fewer than 5 deposits per second per establishment and software. The
# outbox starts at most `outbox.max_deposits_per_second` (default 4) per structure.
DMP_DEPOSIT_RULE = 5
DEFAULT_DEPOSITS_PER_SECOND = 4.0


class ConfigError(AgentError, ValueError):
    """A configuration file that cannot be read or holds a bad value; ``key`` names it
    (``section.name``) when one key is at fault."""

    code, status = "bad-configuration", 500

    def __init__(self, message: str, key: str | None = None, file: Path | None = None) -> None:
        prefix = (f"{file}: " if file else "") + (f"{key}: " if key else "")
        super().__init__(prefix + message)
        self.reason, self.key, self.file = message, key, file


# -- owner-only files -----------------------------------------------------------------------


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700; returns it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)  # mkdir's mode is masked by umask, and an existing dir keeps its own
    return path


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp name, fsync, rename), mode 0600 from the
    first byte: a reader sees the old file or the whole new one, never a part."""
    private_dir(path.parent)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file 0600: never readable by others, even for a moment.
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename or a creation in ``path`` durable (POSIX; a no-op on Windows, where a
    directory cannot be opened and NTFS journals the rename itself)."""
    if sys.platform == "win32":
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- the keys ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One documented configuration key: ``section.name`` in the file, ``field`` in
    `AgentConfig`."""

    section: str
    name: str
    field: str
    doc: str

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"

    def description(self) -> str:
        """``doc`` in the language in use."""
        return _(self.doc).format(rule=DMP_DEPOSIT_RULE)


KEYS: tuple[Key, ...] = (
    Key("host", "url", "host_url",
        N_("Base URL of the DMP host (https only: every call is mutual TLS).")),
    Key("host", "ca", "host_ca",
        N_('CA file that issued the host\'s server certificate; "" = the one installed by '
           "`dmp-agent enrol --from-pki` in the credentials directory.")),
    Key("host", "timeout_seconds", "host_timeout",
        N_("Timeout of one call to the host, in seconds.")),
    Key("host", "proxy", "host_proxy",
        N_('HTTP proxy to the host, e.g. "http://proxy.example:3128" (the TLS session goes '
           'through its CONNECT tunnel, mutual authentication included); "" = none, or the '
           "HTTPS_PROXY environment variable when set.")),
    Key("host", "keepalive_seconds", "host_keepalive",
        N_("While a session is open, the agent calls the host this often so that its "
           "connection stays open (the reference host closes one idle for 300 s): no step "
           "pays a new TLS handshake after a pause. 0 = never.")),
    Key("psc", "issuer", "psc_issuer",
        N_('Pro Santé Connect issuer for the e-CPS login (https://…/auth/realms/esante-wallet);'
           ' "" = no e-CPS, the card only.')),
    Key("psc", "ca", "psc_ca",
        N_('CA file that issued Pro Santé Connect\'s server certificate; "" = the system\'s.')),
    Key("psc", "client_id", "psc_client_id",
        N_("This practice's client id at Pro Santé Connect.")),
    Key("psc", "secret_file", "psc_secret_file",
        N_('File holding the practice\'s Pro Santé Connect client secret (one line; readable '
           'by the agent only); "" = <credentials directory>/psc-secret.')),
    Key("psc", "expiry_seconds", "psc_expiry",
        N_("How long the phone may take to approve an e-CPS login, in seconds (10 to 105: "
           "the host's session challenge lives 2 minutes).")),
    Key("readers", "cps", "cps_readers",
        N_("Reader names (or parts of names) to look for the CPS card in, in order of "
           "preference; [] = any reader.")),
    Key("readers", "vitale", "vitale_readers",
        N_("Reader names (or parts of names) to look for the Vitale card in; [] = any reader.")),
    Key("api", "port", "api_port",
        N_("TCP port of the local API and page, on loopback only (1024-65535).")),
    Key("api", "allowed_origins", "api_allowed_origins",
        N_("Web origins (scheme://host[:port]) of web-based practice software allowed to call "
           "the local API from a browser, e.g. [\"https://logiciel.example.fr\"]; the agent's "
           "own page is always allowed; [] = no other.")),
    Key("ui", "language", "ui_language",
        N_('Language of the page, the command line, the tray and the diagnostics: "fr", '
           '"en", or "auto" = English when LANGUAGE, LC_ALL, LC_MESSAGES or LANG names '
           'English, else French.')),
    Key("log", "level", "log_level", N_("One of DEBUG, INFO, WARNING, ERROR.")),
    Key("outbox", "retry_base_seconds", "retry_base",
        N_("Delay before the first retry of a deposit; it doubles at each failure.")),
    Key("outbox", "retry_max_seconds", "retry_max",
        N_("Longest delay between two attempts of one deposit.")),
    Key("outbox", "retry_jitter", "retry_jitter",
        N_("Random spread of each delay, as a fraction (0.2 = plus or minus 20 %), so that "
           "many workstations do not retry together after an outage.")),
    Key("outbox", "purge_after_days", "outbox_purge_days",
        N_("Days after the host acknowledged a deposit before the outbox blanks its personal "
           "fields (INS, title, file name, the host's answer); the row stays, so the counts "
           "do. 0 = as soon as it is acknowledged. Refused deposits are never purged.")),
    Key("outbox", "max_deposits_per_second", "max_deposits_per_second",
        N_("Most deposits the outbox starts each second for one establishment (structure): "
           "the DMP accepts fewer than {rule} per second per establishment and "
           "software, so a number > 0 and < {rule}. Deposits beyond it wait "
           "their turn, they never fail; each agent keeps its own pace.")),
    Key("paths", "credentials_dir", "credentials_dir",
        N_('Where the enrolled workstation certificate and key live; "" = '
           "<user config dir>/workstation.")),
    Key("paths", "data_dir", "data_dir",
        N_('Where the deposit outbox lives; "" = the user data directory.')),
    Key("paths", "log_dir", "log_dir", N_('"" = the user log directory.')),
)
_BY_SECTION: dict[str, dict[str, Key]] = {}
for _key in KEYS:
    _BY_SECTION.setdefault(_key.section, {})[_key.name] = _key


def system_config_path() -> Path:
    """``$DMP_AGENT_SYSTEM_CONFIG`` when set, else the administrator's file of this OS."""
    named = os.environ.get(SYSTEM_CONFIG_ENV)
    if named:
        return Path(named).expanduser()
    if sys.platform == "win32":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / APP_NAME / CONFIG_FILE
    if sys.platform == "darwin":
        return Path("/Library/Application Support") / APP_NAME / CONFIG_FILE
    return Path("/etc") / APP_NAME / CONFIG_FILE


def default_config_path() -> Path:
    """``$DMP_AGENT_CONFIG`` when set, else the user config directory's agent.toml."""
    named = os.environ.get(CONFIG_ENV)
    if named:
        return Path(named).expanduser()
    return platformdirs.user_config_path(APP_NAME) / CONFIG_FILE


@dataclass(frozen=True)
class AgentConfig:
    """The agent's settings; build with `load_config` (or directly, in tests)."""

    host_url: str = "https://localhost:8443"
    host_ca: Path | None = None
    host_timeout: float = 30.0
    host_proxy: str | None = None
    host_keepalive: float = 240.0
    psc_issuer: str | None = None
    psc_ca: Path | None = None
    psc_client_id: str = "dmp-agent"
    psc_secret_file: Path | None = None
    psc_expiry: float = 90.0
    cps_readers: tuple[str, ...] = ()
    vitale_readers: tuple[str, ...] = ()
    api_port: int = 17771
    api_allowed_origins: tuple[str, ...] = ()
    ui_language: str = "auto"
    log_level: str = "INFO"
    retry_base: float = 5.0
    retry_max: float = 3600.0
    retry_jitter: float = 0.2
    outbox_purge_days: float = 7.0
    max_deposits_per_second: float = DEFAULT_DEPOSITS_PER_SECOND
    # Computed when an instance is made, so that XDG_* variables set after import count.
    credentials_dir: Path = field(
        default_factory=lambda: platformdirs.user_config_path(APP_NAME) / "workstation")
    data_dir: Path = field(default_factory=lambda: platformdirs.user_data_path(APP_NAME))
    log_dir: Path = field(default_factory=lambda: platformdirs.user_log_path(APP_NAME))
    source: Path | None = None  # the user's file these values came from; None: none
    system_source: Path | None = None  # the administrator's file, when there is one
    locked: tuple[str, ...] = ()  # keys the administrator fixed (dotted: "host.url")
    ignored: tuple[str, ...] = ()  # locked keys the user's file set anyway: not applied

    def __post_init__(self) -> None:
        for key in KEYS:
            _check(key, getattr(self, key.field))
        if self.retry_max < self.retry_base:
            raise ConfigError(f"must be at least outbox.retry_base_seconds ({self.retry_base})",
                              "outbox.retry_max_seconds")

    @property
    def outbox_path(self) -> Path:
        """The outbox database (its bundles sit beside it)."""
        return self.data_dir / "outbox" / "outbox.sqlite3"


def _defaults() -> dict[str, Any]:
    return {
        "credentials_dir": platformdirs.user_config_path(APP_NAME) / "workstation",
        "data_dir": platformdirs.user_data_path(APP_NAME),
        "log_dir": platformdirs.user_log_path(APP_NAME),
    }


# -- validation -------------------------------------------------------------------------------


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError
    return float(value)


def _check_url(value: Any) -> None:
    if not isinstance(value, str) or not value.startswith("https://") or len(value) <= 8:
        raise ConfigError(f"expected an https:// URL, got {value!r}")


def _check_optional_url(value: Any) -> None:
    if value is not None:
        _check_url(value)


def _check_client_id(value: Any) -> None:
    if not isinstance(value, str) or not value or not value.isprintable() or len(value) > 128:
        raise ConfigError(f"expected a client id (1 to 128 printable characters), got {value!r}")


def _check_psc_expiry(value: Any) -> None:
    # The agent asks the host's challenge first; the token must come back while it lives
    # (2 minutes, minus the margin the agent keeps): docs/psc.md.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 10 <= value <= 105:
        raise ConfigError(f"expected 10 to 105 seconds, got {value!r}")


def _check_proxy(value: Any) -> None:
    if value is None:
        return
    parsed = urllib.parse.urlsplit(value) if isinstance(value, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"expected http://host:port (or https://), got {value!r}")
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        raise ConfigError(f"a proxy is host and port only, got {value!r}")


def _check_positive(value: Any) -> None:
    try:
        number = _number(value)
    except TypeError:
        raise ConfigError(f"expected a number of seconds, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"expected a number of seconds > 0, got {value!r}")


def _check_jitter(value: Any) -> None:
    try:
        number = _number(value)
    except TypeError:
        raise ConfigError(f"expected a fraction between 0 and 1, got {value!r}") from None
    if not 0 <= number <= 1:
        raise ConfigError(f"expected a fraction between 0 and 1, got {value!r}")


def _non_negative(unit: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        try:
            number = _number(value)
        except TypeError:
            raise ConfigError(f"expected a number of {unit}, got {value!r}") from None
        if not math.isfinite(number) or number < 0:
            raise ConfigError(f"expected a number of {unit} >= 0, got {value!r}")
    return check


_check_days = _non_negative("days")
_check_not_negative = _non_negative("seconds")


def check_deposit_rate(value: Any) -> None:
    """A pace of deposits the DMP's rule allows: a number > 0 and < `DMP_DEPOSIT_RULE`."""
    rule = (f"the DMP accepts fewer than {DMP_DEPOSIT_RULE} deposits per second per "
            f"establishment and software (règle du DMP : moins de {DMP_DEPOSIT_RULE} dépôts "
            "par seconde par établissement et logiciel)")
    try:
        number = _number(value)
    except TypeError:
        raise ConfigError(f"expected a number of deposits per second, > 0 and < "
                          f"{DMP_DEPOSIT_RULE}, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"expected a number of deposits per second > 0 (default "
                          f"{DEFAULT_DEPOSITS_PER_SECOND:g}), got {value!r}")
    if number >= DMP_DEPOSIT_RULE:
        raise ConfigError(f"{rule}: expected fewer than {DMP_DEPOSIT_RULE} (default "
                          f"{DEFAULT_DEPOSITS_PER_SECOND:g}), got {value!r}")


def _check_port(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1024 <= value <= 65535:
        raise ConfigError(f"expected a port number 1024-65535, got {value!r}")


def _check_origins(value: Any) -> None:
    if not isinstance(value, tuple):
        raise ConfigError(f"expected a list of origins, got {value!r}")
    for origin in value:
        parts = urllib.parse.urlsplit(origin) if isinstance(origin, str) else None
        if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname
                or parts.path or parts.query or parts.fragment or parts.username):
            raise ConfigError(f"{origin!r} is not an origin: scheme://host[:port], no path")


def _check_language(value: Any) -> None:
    if value not in LANGUAGE_SETTINGS:
        raise ConfigError(f"expected one of {', '.join(LANGUAGE_SETTINGS)}, got {value!r}")


def _check_level(value: Any) -> None:
    if value not in LOG_LEVELS:
        raise ConfigError(f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}")


def _check_names(value: Any) -> None:
    if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"expected a list of non-empty reader names, got {list(value)!r}"
                          if isinstance(value, tuple) else
                          f"expected a list of non-empty reader names, got {value!r}")


def _check_path(value: Any) -> None:
    if not isinstance(value, Path):
        raise ConfigError(f"expected a path, got {value!r}")


def _check_optional_path(value: Any) -> None:
    if value is not None:
        _check_path(value)


_CHECKS: dict[str, Callable[[Any], None]] = {
    "host_url": _check_url, "host_ca": _check_optional_path, "host_timeout": _check_positive,
    "host_keepalive": _check_not_negative, "host_proxy": _check_proxy,
    "psc_issuer": _check_optional_url, "psc_ca": _check_optional_path,
    "psc_client_id": _check_client_id, "psc_secret_file": _check_optional_path,
    "psc_expiry": _check_psc_expiry,
    "cps_readers": _check_names, "vitale_readers": _check_names, "api_port": _check_port,
    "api_allowed_origins": _check_origins,
    "ui_language": _check_language,
    "log_level": _check_level, "retry_base": _check_positive, "retry_max": _check_positive,
    "retry_jitter": _check_jitter, "outbox_purge_days": _check_days,
    "max_deposits_per_second": check_deposit_rate,
    "credentials_dir": _check_path, "data_dir": _check_path,
    "log_dir": _check_path,
}


def _check(key: Key, value: Any) -> None:
    try:
        _CHECKS[key.field](value)
    except ConfigError as error:
        raise ConfigError(error.reason, key.dotted) from None


# -- reading ------------------------------------------------------------------------------------


def _convert(key: Key, raw: Any, base: Path) -> Any:
    """The TOML value of ``key`` as its `AgentConfig` field type (checked later)."""
    attr = key.field
    if attr in ("cps_readers", "vitale_readers", "api_allowed_origins"):
        if not isinstance(raw, list):
            raise ConfigError(f"expected a list, got {raw!r}", key.dotted)
        return tuple(raw)
    if attr in ("host_proxy", "psc_issuer"):
        if not isinstance(raw, str):
            raise ConfigError(f"expected a URL string, got {raw!r}", key.dotted)
        return raw or None
    if attr in ("host_ca", "psc_ca", "psc_secret_file", "credentials_dir", "data_dir",
                "log_dir"):
        if not isinstance(raw, str):
            raise ConfigError(f"expected a path string, got {raw!r}", key.dotted)
        if raw == "":
            return None if attr in ("host_ca", "psc_ca", "psc_secret_file") \
                else _defaults()[attr]
        path = Path(raw).expanduser()
        return path if path.is_absolute() else base / path  # relative to the config file
    if attr == "log_level" and isinstance(raw, str):
        return raw.upper()
    return raw


def load_config(path: Path | str | None = None) -> AgentConfig:
    """Read the configuration: the administrator's file (`system_config_path`, may be
    absent), then the user's: ``path``, else ``$DMP_AGENT_CONFIG``, else the default file.

    Raises `ConfigError` for a named file that is missing, invalid TOML, an unknown key or a
    bad value (the message starts with the key). The default files may be absent: defaults.
    """
    system_file = system_config_path()
    system = _read(system_file, explicit=False, admin=True)
    locked = _locked(system, system_file) if system is not None else ()
    explicit = path is not None or bool(os.environ.get(CONFIG_ENV))
    file = Path(path).expanduser() if path is not None else default_config_path()
    user = _read(file, explicit=explicit, admin=False)
    values: dict[str, Any] = _defaults()
    ignored: list[str] = []
    for document, where in ((system, system_file), (user, file)):
        if document is None:
            continue
        try:
            for key, raw in _entries(document):
                if where is file and key.dotted in locked:
                    ignored.append(key.dotted)
                    continue
                values[key.field] = _convert(key, raw, where.parent.resolve())
        except ConfigError as error:
            raise ConfigError(error.reason, error.key, where) from None
    blame = file if user is not None else system_file
    try:
        return AgentConfig(**values, source=file if user is not None else None,
                           system_source=system_file if system is not None else None,
                           locked=locked, ignored=tuple(ignored))
    except ConfigError as error:
        raise ConfigError(error.reason, error.key, blame) from None


def _read(file: Path, *, explicit: bool, admin: bool) -> dict[str, Any] | None:
    """The TOML document of ``file``; None when it is absent and need not exist."""
    try:
        text = file.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{file}: no such configuration file") from None
        return None
    except OSError as error:
        raise ConfigError(f"{file}: cannot read the configuration ({error})") from None
    try:
        document = tomllib.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{file}: not valid TOML ({error})") from None
    if ADMIN_SECTION in document and not admin:
        raise ConfigError("only the administrator's file locks keys "
                          f"({system_config_path()})", ADMIN_SECTION, file)
    return document


def _locked(document: dict[str, Any], file: Path) -> tuple[str, ...]:
    admin = document.pop(ADMIN_SECTION, {})
    known = {key.dotted for key in KEYS}
    if not isinstance(admin, dict) or set(admin) - {"locked"}:
        raise ConfigError('expected only locked = ["section.key", ...]', ADMIN_SECTION, file)
    locked = admin.get("locked", [])
    if not isinstance(locked, list) or not all(isinstance(k, str) and k in known
                                               for k in locked):
        raise ConfigError(f"expected a list of known keys ({', '.join(sorted(known))})",
                          f"{ADMIN_SECTION}.locked", file)
    return tuple(locked)


def _entries(document: dict[str, Any]) -> Iterator[tuple[Key, Any]]:
    for section, table in document.items():
        if section not in _BY_SECTION:
            raise ConfigError(f"unknown section (known: {', '.join(_BY_SECTION)})", section)
        if not isinstance(table, dict):
            raise ConfigError("expected a [table] of keys", section)
        for name, raw in table.items():
            key = _BY_SECTION[section].get(name)
            if key is None:
                raise ConfigError(
                    f"unknown key (known: {', '.join(_BY_SECTION[section])})",
                    f"{section}.{name}")
            yield key, raw


# -- writing ------------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    # The few types our keys use; JSON string escapes are valid TOML basic-string escapes.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Path):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if value is None:
        return '""'
    raise TypeError(f"no TOML form for {value!r}")


def render_config(config: AgentConfig | None = None) -> str:
    """The whole configuration as a commented TOML file (every key, its documentation)."""
    config = config or AgentConfig()
    defaults = _defaults()
    lines = ["# dmp-agent configuration. Every key is optional; the values shown are in use.",
             f"# File: ${CONFIG_ENV}, else <user config dir>/{CONFIG_FILE}."]
    section = None
    for key in KEYS:
        if key.section != section:
            section = key.section
            lines += ["", f"[{section}]"]
        lines += [f"# {line}" for line in textwrap.wrap(key.description(), 96)]
        value = getattr(config, key.field)
        if key.field in defaults and value == defaults[key.field]:
            value = ""  # keep following the platform default, not this machine's path today
        lines.append(f"{key.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def write_config(config: AgentConfig | None = None, path: Path | None = None) -> Path:
    """Write `render_config` to ``path`` (default: `default_config_path`), owner-only."""
    file = Path(path) if path is not None else default_config_path()
    write_private_file(file, render_config(config).encode("utf-8"))
    return file


__all__ = [
    "APP_NAME",
    "CONFIG_ENV",
    "DEFAULT_DEPOSITS_PER_SECOND",
    "DMP_DEPOSIT_RULE",
    "KEYS",
    "AgentConfig",
    "ConfigError",
    "Key",
    "check_deposit_rate",
    "default_config_path",
    "fsync_dir",
    "load_config",
    "private_dir",
    "render_config",
    "write_config",
    "write_private_file",
]
