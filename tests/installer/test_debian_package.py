"""The Debian package, for real: built from this tree by installer/debian/build.sh, checked
with dpkg-deb, installed system-wide with dpkg (root), run as a user would (private HOME),
then removed and purged: nothing of it left on disk, the user's data untouched.

Installing on this machine is the point, so the module refuses to run over a dmp-agent
package it did not install, and purges its own even when an assertion fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from configparser import ConfigParser
from dataclasses import dataclass
from pathlib import Path

import pytest

from host.pki import PASSPHRASE_ENV, init_pki

pytestmark = pytest.mark.installer

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "installer" / "debian" / "build.sh"
CACHE = REPO / "dist" / "cache"  # git-ignored: wheels and build tools kept between runs
PACKAGE = "dmp-agent"
VENV = Path("/opt/dmp-agent/venv")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def _run(args: list[str], **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, **options)  # type: ignore[call-overload]


def _dpkg(*args: str) -> subprocess.CompletedProcess[str]:
    """dpkg, waiting for the lock while another dpkg or apt runs (up to two minutes)."""
    env = {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
    for _ in range(60):
        done = _run(["dpkg", *args], env=env)
        if done.returncode == 0 or "lock" not in done.stderr:
            return done
        time.sleep(2)
    return done


def _status() -> str:
    """installed, config-files, half-installed... or "" when dpkg does not know it."""
    done = _run(["dpkg-query", "-W", "-f=${db:Status-Status}", PACKAGE])
    return done.stdout.strip() if done.returncode == 0 else ""


def _gone() -> bool:
    return _status() in ("", "not-installed")


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.fail("the installer tests install a package: run them as root, through "
                    "scripts/isolated (bash scripts/test)")
    out = tmp_path_factory.mktemp("deb")
    built = _run(["bash", str(BUILD), "--out", str(out), "--cache", str(CACHE)])
    assert built.returncode == 0, built.stdout + built.stderr[-4000:]
    [file] = out.glob(f"{PACKAGE}_*.deb")
    return file


@pytest.fixture(scope="module")
def listing(deb: Path) -> dict[str, str]:
    """``dpkg-deb -c``: path -> symlink target ("" for files and directories)."""
    entries: dict[str, str] = {}
    for line in _run(["dpkg-deb", "-c", str(deb)], check=True).stdout.splitlines():
        name = line.split(maxsplit=5)[5]
        name, _, target = name.partition(" -> ")
        path = name.removeprefix(".").rstrip("/")
        if path:
            entries[path] = target
    return entries


@pytest.fixture(scope="module")
def installed(deb: Path, listing: dict[str, str]) -> Iterator[set[str]]:
    """The package installed; yields the paths of the package that existed before (shared
    directories such as /usr/bin)."""
    if not _gone():
        pytest.fail(f"a {PACKAGE} package is already on this machine ({_status()}): this test "
                    f"does not replace one it did not install; remove it: dpkg -P {PACKAGE}")
    if Path("/opt/dmp-agent").exists():
        pytest.fail("/opt/dmp-agent exists and no package owns it: move it away first")
    existed = {path for path in listing if os.path.lexists(path)}
    try:
        done = _dpkg("-i", str(deb))
        assert done.returncode == 0, done.stdout + done.stderr
        yield existed
    finally:
        if not _gone():
            _dpkg("-P", PACKAGE)


@dataclass
class Home:
    """A user's private home and XDG directories, and the environment to run them with."""

    root: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    root = tmp_path_factory.mktemp("home")
    env = {"PATH": SYSTEM_PATH, "HOME": str(root), "LANG": "C.UTF-8", "USER": "root",
           "XDG_CONFIG_HOME": str(root / ".config"), "XDG_DATA_HOME": str(root / ".local/share"),
           "XDG_STATE_HOME": str(root / ".local/state"), "XDG_CACHE_HOME": str(root / ".cache"),
           "XDG_RUNTIME_DIR": str(root / "run")}
    (root / "run").mkdir(mode=0o700)
    return Home(root, env)


@pytest.fixture(scope="module")
def provisioning(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What an administrator drops for a sandbox workstation: a test PKI in pki/."""
    directory = tmp_path_factory.mktemp("provisioning")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(PASSPHRASE_ENV, raising=False)
        init_pki(directory / "pki")
    return directory


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _control(deb: Path, field: str) -> str:
    return _run(["dpkg-deb", "-f", str(deb), field], check=True).stdout.strip()


def test_the_package_declares_its_version_dependencies_and_scripts(
    deb: Path, listing: dict[str, str]
) -> None:
    arch = _run(["dpkg", "--print-architecture"], check=True).stdout.strip()
    assert deb.name == f"{PACKAGE}_{VERSION}_{arch}.deb"
    assert _control(deb, "Package") == PACKAGE
    assert _control(deb, "Version") == VERSION
    assert _control(deb, "Architecture") == arch
    depends = [d.strip() for d in _control(deb, "Depends").split(",")]
    for needed in ("pcscd", "libpcsclite1", "ghostscript", "python3 (>= 3.11)"):
        assert needed in depends
    # The venv runs the versioned interpreter it was built with: that one is required.
    interpreter = Path(listing[str(VENV / "bin" / listing[str(VENV / "bin" / "python")])])
    assert interpreter.name in depends, (interpreter, depends)
    assert _control(deb, "Suggests") == "vsmartcard-vpcd"
    info = _run(["dpkg-deb", "-I", str(deb)], check=True).stdout
    for script in ("postinst", "postrm"):
        assert f" {script} " in info and "#!/bin/sh" in info, info
    conffiles = _run(["dpkg-deb", "-I", str(deb), "conffiles"], check=True).stdout
    assert conffiles.split() == ["/etc/dmp-agent/README"]


def test_the_package_holds_the_agent_its_entry_points_and_nothing_else(
    listing: dict[str, str]
) -> None:
    assert listing["/usr/bin/dmp-agent"] == "/opt/dmp-agent/venv/bin/dmp-agent"
    python = listing[str(VENV / "bin" / "python")]
    assert listing[str(VENV / "bin" / python)].startswith("/usr/bin/python3.")
    for path in ("/etc/xdg/autostart/dmp-agent.desktop",
                 "/usr/lib/systemd/user/dmp-agent.service", "/etc/dmp-agent/README",
                 "/usr/share/doc/dmp-agent/copyright", "/usr/share/doc/dmp-agent/installer.md"):
        assert path in listing, path
    site = next(p for p in listing if p.endswith("/site-packages/agent/__init__.py"))
    agent = Path(site).parent
    for module in ("install/first_start.py", "cli.py", "views/run.py", "views/web/index.html"):
        assert str(agent / module) in listing, module
    # Only pip's tools are left out of the shipped environment; nothing lands elsewhere.
    assert not any("/site-packages/pip/" in p or "/site-packages/setuptools/" in p
                   for p in listing)
    roots = ("/opt/dmp-agent", "/usr/bin/dmp-agent", "/etc/xdg/autostart/dmp-agent.desktop",
             "/etc/dmp-agent", "/usr/lib/systemd/user/dmp-agent.service",
             "/usr/share/doc/dmp-agent")
    stray = [p for p in listing
             if not any(p == r or p.startswith(r + "/") or r.startswith(p + "/") for r in roots)]
    assert stray == []


def test_the_autostart_entry_and_the_user_unit_start_the_agent(deb: Path, tmp_path: Path) -> None:
    _run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    desktop = ConfigParser(interpolation=None)
    desktop.optionxform = str  # type: ignore[assignment,method-assign]
    desktop.read(tmp_path / "etc/xdg/autostart/dmp-agent.desktop", encoding="utf-8")
    entry = desktop["Desktop Entry"]
    assert entry["Type"] == "Application" and entry["Exec"] == "dmp-agent run"
    assert entry["X-GNOME-Autostart-enabled"] == "true"
    assert entry["Name"] and entry["Name[fr]"] and entry["Comment"] and entry["Comment[fr]"]
    unit = ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(tmp_path / "usr/lib/systemd/user/dmp-agent.service", encoding="utf-8")
    assert unit["Service"]["ExecStart"] == "/usr/bin/dmp-agent run --no-tray"
    assert unit["Service"]["Restart"] == "on-failure"
    assert unit["Install"]["WantedBy"] == "default.target"


def test_the_installed_agent_runs_from_its_own_environment(installed: set[str], home: Home) -> None:
    shown = _run(["/usr/bin/dmp-agent", "--help"], env=home.env, cwd=home.root)
    assert shown.returncode == 0 and "dmp-agent" in shown.stdout, shown.stderr
    where = _run([str(VENV / "bin" / "python"), "-c",
                  "import agent, smartcard, cryptography; print(agent.__file__)"],
                 env=home.env, cwd=home.root)
    assert where.returncode == 0, where.stderr
    assert where.stdout.startswith(str(VENV / "lib")), where.stdout
    for script in (VENV / "bin").iterdir():
        if script.is_file() and not script.is_symlink() and script.name.startswith("dmp-"):
            assert script.read_text().startswith(f"#!{VENV}/bin/python\n"), script
    # Nothing in the environment names the machine it was built on.
    leaks = _run(["grep", "-rlI", "dmp-agent-deb.", "/opt/dmp-agent"])
    assert leaks.stdout == "", leaks.stdout
    # The system's own validators, where this machine has them.
    if shutil.which("systemd-analyze"):
        verified = _run(["systemd-analyze", "verify", "--user",
                         "/usr/lib/systemd/user/dmp-agent.service"], env=home.env)
        assert verified.returncode == 0 and verified.stderr == "", verified.stderr
    if shutil.which("desktop-file-validate"):
        validated = _run(["desktop-file-validate", "/etc/xdg/autostart/dmp-agent.desktop"])
        assert validated.returncode == 0 and validated.stdout == "", validated.stdout
    # doctor reports (exit 1: no pcscd in this namespace, not enrolled) and does not crash.
    doctor = _run(["/usr/bin/dmp-agent", "doctor"], env=home.env, cwd=home.root)
    assert doctor.returncode in (0, 1), doctor.stdout + doctor.stderr
    assert "Traceback" not in doctor.stderr and doctor.stdout.strip(), doctor.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, path: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _wait_for_health(port: int, agent: subprocess.Popen[str]) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if agent.poll() is not None:
            raise AssertionError(f"the agent exited ({agent.returncode}): "
                                 f"{agent.communicate()[1][-3000:]}")
        try:
            status, body = _get(port, "/api/health")
            if status == 200:
                return json.loads(body)  # type: ignore[no-any-return]
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("no answer on /api/health within 60 s")


def test_the_installed_agent_starts_enrols_serves_and_stops_on_sigterm(
    installed: set[str], home: Home, provisioning: Path
) -> None:
    if _run(["/usr/bin/dmp-agent", "run", "--help"], env=home.env).returncode != 0:
        pytest.skip("`dmp-agent run` does not exist yet in this tree (agent/cli.py)")
    port = _free_port()
    config = home.root / "agent.toml"
    config.write_text(f"[api]\nport = {port}\n")
    env = {**home.env, "DMP_AGENT_CONFIG": str(config),
           "DMP_AGENT_PROVISIONING": str(provisioning)}
    agent = subprocess.Popen(["/usr/bin/dmp-agent", "run", "--no-tray"], env=env,
                             cwd=home.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        health = _wait_for_health(port, agent)
        assert health["status"] == "ok" and health["version"] == VERSION
        status, page = _get(port, "/")
        assert status == 200 and b"<html" in page.lower()  # the page's files were packaged
        token = _run(["/usr/bin/dmp-agent", "page", "--print-token"], env=env).stdout.strip()
        status, body = _get(port, "/api/status", token)
        assert status == 200 and json.loads(body)["version"] == VERSION
        # The first start enrolled this user's agent from the administrator's provisioning.
        assert (home.root / ".config/dmp-agent/workstation/enrolment.json").is_file()
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            out, err = agent.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
            out, err = agent.communicate()
    assert agent.returncode == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert f"http://127.0.0.1:{port}/" in out  # it told the user where it listens


def test_remove_then_purge_leave_nothing_of_the_package_and_keep_the_users_data(
    installed: set[str], home: Home, provisioning: Path
) -> None:
    owned = [p for p in _run(["dpkg", "-L", PACKAGE], check=True).stdout.splitlines()
             if p not in ("", "/.")]
    if not (home.root / ".config/dmp-agent/workstation/enrolment.json").exists():
        enrolled = _run(["/usr/bin/dmp-agent", "enrol", "--from-pki",
                         str(provisioning / "pki")], env=home.env, cwd=home.root)
        assert enrolled.returncode == 0, enrolled.stderr
    pending = home.root / ".local/share/dmp-agent/outbox/pending-deposit.test"
    pending.parent.mkdir(parents=True, exist_ok=True)
    pending.write_bytes(b"a deposit the host has not acknowledged yet")
    before = _files(home.root)
    # What the environment creates at run time, which dpkg does not know of.
    runtime = [VENV / "lib/python3.11/site-packages/agent/__pycache__/late.cpython-311.pyc",
               VENV / "share/created-at-run-time/state"]
    for path in runtime:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"runtime")
    administrator = Path("/etc/dmp-agent/workstation.pass")
    administrator.write_text("secret\n")

    removed = _dpkg("-r", PACKAGE)
    assert removed.returncode == 0, removed.stderr
    assert "not empty" not in removed.stdout + removed.stderr
    assert _status() == "config-files"
    assert not Path("/opt/dmp-agent").exists() and not os.path.lexists("/usr/bin/dmp-agent")
    assert not Path("/etc/xdg/autostart/dmp-agent.desktop").exists()
    assert administrator.exists() and Path("/etc/dmp-agent/README").exists()  # remove keeps

    purged = _dpkg("-P", PACKAGE)
    assert purged.returncode == 0, purged.stderr
    assert _gone()
    left = [p for p in owned if p not in installed and os.path.lexists(p)]
    assert left == []
    assert not Path("/etc/dmp-agent").exists()  # the provisioning (a private key) goes too
    assert _files(home.root) == before  # enrolment, token, outbox: all still there
