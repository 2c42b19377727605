"""The Windows installer, built here for real: installer/windows/build.sh stages the agent's
wheel with its win_amd64 dependencies, then makensis compiles dmp-agent.nsi. Windows itself
is not available: what the .exe carries is read back with 7-Zip (it opens NSIS installers)."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.installer

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "installer" / "windows" / "build.sh"
CACHE = REPO / "dist" / "cache"  # git-ignored: wheels and build tools kept between runs
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
EMBEDDED_PTH = ("python311.zip\r\n.\r\n\r\n# Uncomment to run site.main() automatically\r\n"
                "#import site\r\n")


def _build(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(BUILD), "--out", str(out), "--cache", str(CACHE), *args],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("makensis") is None:
        pytest.fail("makensis not found: apt-get install nsis (scripts/setup installs it)")
    out = tmp_path_factory.mktemp("windows")
    done = _build(out)
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    assert "no Python embeddable zip" in done.stderr  # the build says what the .exe lacks
    return out


def test_the_installer_is_a_windows_executable(built: Path) -> None:
    exe = built / f"dmp-agent-{VERSION}-setup.exe"
    with exe.open("rb") as file:
        assert file.read(2) == b"MZ"


def test_the_installer_carries_the_agent_its_windows_libraries_and_an_uninstaller(
    built: Path
) -> None:
    if shutil.which("7z") is None:
        pytest.fail("7z not found: apt-get install p7zip-full (scripts/setup installs it)")
    listing = subprocess.run(["7z", "l", "-slt", str(built / f"dmp-agent-{VERSION}-setup.exe")],
                             capture_output=True, text=True, check=True).stdout
    names = {line.removeprefix("Path = ").replace("\\", "/")
             for line in listing.splitlines() if line.startswith("Path = ")}
    for name in ("uninstall.exe", "dmp-agent.cmd", "LISEZMOI-README.txt",
                 f"wheels/dmp_agent-{VERSION}-py3-none-any.whl",
                 "lib/agent/install/first_start.py", "lib/agent/cli.py",
                 "lib/agent/views/web/index.html",
                 "python/PYTHON-MISSING-MANQUANT.txt"):
        assert name in names, name
    # Compiled for Windows, not for this Linux machine.
    assert any(n.startswith("lib/smartcard/") and n.endswith(".cp311-win_amd64.pyd")
               for n in names)
    assert any(n.startswith("lib/cryptography/") and n.endswith(".pyd") for n in names)
    assert "lib/tzdata/__init__.py" in names  # a Windows-only dependency (psycopg)
    assert not any(n.endswith(".so") for n in names)
    assert not any(n.startswith("lib/bin/") for n in names)


def test_the_staging_launcher_and_placeholder_say_how_to_run_and_what_is_missing(
    built: Path
) -> None:
    stage = built / "windows-staging"
    launcher = (stage / "dmp-agent.cmd").read_bytes()
    assert b'"%~dp0python\\python.exe" -m agent.cli %*\r\n' in launcher
    note = (stage / "python" / "PYTHON-MISSING-MANQUANT.txt").read_text("utf-8")
    assert "embed-amd64.zip" in note and "--python-embed" in note and "..\\lib" in note
    with zipfile.ZipFile(next((stage / "wheels").glob("dmp_agent-*.whl"))) as wheel:
        assert "agent/install/first_start.py" in wheel.namelist()


def test_a_python_embeddable_zip_is_unpacked_and_told_where_the_agent_is(
    tmp_path: Path
) -> None:
    # The layout of python.org's python-3.11.x-embed-amd64.zip (the executables' bytes do not
    # matter to the build, which only places them).
    embed = tmp_path / "python-3.11.9-embed-amd64.zip"
    with zipfile.ZipFile(embed, "w") as archive:
        for name in ("python.exe", "pythonw.exe", "python311.dll", "python311.zip"):
            archive.writestr(name, b"MZ")
        archive.writestr("python311._pth", EMBEDDED_PTH)
    out = tmp_path / "out"
    done = _build(out, "--python-embed", str(embed), "--stage-only")
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    python = out / "windows-staging" / "python"
    assert (python / "pythonw.exe").is_file()
    assert not (python / "PYTHON-MISSING-MANQUANT.txt").exists()
    lines = (python / "python311._pth").read_text().splitlines()
    assert lines[0] == "python311.zip" and "..\\lib" in lines and "import site" in lines
    assert "#import site" not in lines
    assert not list(out.glob("*.exe"))  # --stage-only


def test_a_zip_that_is_not_the_embeddable_python_fails_the_build(tmp_path: Path) -> None:
    wrong = tmp_path / "python-3.12.0-embed-amd64.zip"
    with zipfile.ZipFile(wrong, "w") as archive:
        archive.writestr("python.exe", b"MZ")
        archive.writestr("pythonw.exe", b"MZ")
        archive.writestr("python312._pth", EMBEDDED_PTH.replace("311", "312"))
    done = _build(tmp_path / "out", "--python-embed", str(wrong), "--stage-only")
    assert done.returncode != 0
    assert "not the Python 3.11 embeddable distribution (no python311._pth" in done.stderr
