#!/usr/bin/env bash
# Builds dist/dmp-agent-<version>-setup.exe, the per-user Windows installer (NSIS), on Linux
# (docs/installer.md).
#
# Usage: installer/windows/build.sh [--out DIR] [--cache DIR] [--python-embed ZIP]
#                                   [--compress zlib|lzma] [--stage-only] [--fetch-only]
#   --out        where the installer goes (default <repo>/dist)
#   --cache      the wheels and build tools kept between builds (default OUT/cache)
#   ZIP          python-3.11.x-embed-amd64.zip from python.org (or $PYTHON_EMBED_ZIP). This
#                machine cannot download it; without it the installer carries
#                python\PYTHON-MISSING-MANQUANT.txt saying where to put it, and warns.
#   zlib         (default) packs in ~10 s; lzma makes it a third smaller in ~1 min
#   --stage-only prepare DIR/windows-staging and stop (no makensis)
#   --fetch-only fill the cache from the registry and stop (the tests run it before they go
#                into their network namespace, where the build then runs offline)
#
# The staging directory holds: python\ (the embeddable Python, its ._pth extended with ..\lib
# and `import site`), lib\ (the agent and its dependencies, win_amd64 wheels for CPython 3.11
# installed with pip --target), wheels\ (the agent's own wheel, `pip wheel --no-deps`),
# dmp-agent.cmd and LISEZMOI-README.txt. Needs python3 with venv; makensis (Debian: nsis).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WIN_PYTHON=3.11                 # the embeddable distribution's version
WIN_EXTRA=(tzdata pywin32-ctypes)  # Windows-only dependencies (markers pip cannot evaluate here)

OUT=$REPO/dist
CACHE=
EMBED=${PYTHON_EMBED_ZIP:-}
STAGE_ONLY=0
COMPRESS=zlib
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --cache) CACHE=$2; shift 2 ;;
    --python-embed) EMBED=$2; shift 2 ;;
    --stage-only) STAGE_ONLY=1; shift ;;
    --fetch-only) FETCH_ONLY=1; shift ;;
    --compress) COMPRESS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/!p}' "$0"; exit 0 ;;
    *) echo "build: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$STAGE_ONLY" -eq 0 ] && ! command -v makensis >/dev/null; then
  echo "build: makensis not found: apt-get install nsis" >&2
  exit 1
fi
PYTHON=${PYTHON:-python3}
if [ -n "$EMBED" ]; then
  # Checked before anything else: a wrong file fails the build at once.
  "$PYTHON" - "$EMBED" "$WIN_PYTHON" <<'EOF'
import pathlib, sys, zipfile
zip_path, version = pathlib.Path(sys.argv[1]), sys.argv[2]
try:
    names = set(zipfile.ZipFile(zip_path).namelist())
except (OSError, zipfile.BadZipFile) as error:
    sys.exit(f"build: {zip_path}: not a readable zip ({error})")
for needed in ("python.exe", "pythonw.exe", "python%s._pth" % version.replace(".", "")):
    if needed not in names:
        sys.exit(f"build: {zip_path} is not the Python {version} embeddable distribution "
                 f"(no {needed} at its top)")
EOF
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CACHE=${CACHE:-$OUT/cache}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
cache=$CACHE/wheels-win_amd64-py$WIN_PYTHON
stage=$OUT/windows-staging
mkdir -p "$cache"
work=$(mktemp -d "${TMPDIR:-/tmp}/dmp-agent-win.XXXXXX")
trap 'rm -rf "$work"' EXIT
umask 022

"$PYTHON" - "$REPO/pyproject.toml" "$work" "${WIN_EXTRA[@]}" <<'EOF'
import sys, tomllib, pathlib
project = tomllib.loads(pathlib.Path(sys.argv[1]).read_text())
work = pathlib.Path(sys.argv[2])
(work / "version").write_text(project["project"]["version"])
# Only what Windows needs: pip would evaluate the markers for this Linux machine (a Linux-only
# dependency, e.g. the tray's D-Bus library, has no Windows wheel).
WINDOWS = {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt",
           "platform_machine": "AMD64", "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "python_version": "3.11",
           "python_full_version": "3.11.9", "extra": ""}
def for_windows(requirement):
    if ";" not in requirement:
        return True
    marker = requirement.split(";", 1)[1]
    try:
        from pip._vendor.packaging.markers import Marker
    except ImportError:  # no pip in this Python: the markers the project writes
        return "linux" not in marker and "darwin" not in marker
    return Marker(marker).evaluate(WINDOWS)
(work / "requirements.txt").write_text("\n".join(
    [r for r in project["project"]["dependencies"] if for_windows(r)] + sys.argv[3:]) + "\n")
(work / "build-requirements.txt").write_text("\n".join(project["build-system"]["requires"]))
include = project["tool"]["setuptools"]["packages"]["find"]["include"]
(work / "packages").write_text("\n".join(sorted({p.split("*")[0].split(".")[0] for p in include})))
EOF
version=$(cat "$work/version")
echo "build: dmp-agent $version for Windows (win_amd64, Python $WIN_PYTHON)"

mkdir -p "$work/src"
mapfile -t packages <"$work/packages"
(cd "$REPO" && tar --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' -cf - \
  pyproject.toml README.md "${packages[@]}") | tar -xf - -C "$work/src"

# The build tools' own venv (pip), kept between builds; made again when it no longer runs.
buildenv=$CACHE/buildenv-windows
if ! "$buildenv/bin/python" -m pip --version >/dev/null 2>&1; then
  rm -rf "$buildenv"
  "$PYTHON" -m venv "$buildenv"
fi
pip=("$buildenv/bin/python" -m pip --disable-pip-version-check -q)
target=(--platform win_amd64 --python-version "$WIN_PYTHON" --implementation cp
        --only-binary=:all:)
# Offline from the cache when it holds everything; else fill it from the registry once.
linux_cache=$CACHE/wheels-build
mkdir -p "$linux_cache"
if ! "${pip[@]}" download --no-index --find-links "$cache" -d "$cache" "${target[@]}" \
     -r "$work/requirements.txt" >/dev/null 2>&1; then
  echo "build: fetching the win_amd64 wheels into $cache"
  "${pip[@]}" download --find-links "$cache" -d "$cache" "${target[@]}" \
    -r "$work/requirements.txt"
fi
if ! "${pip[@]}" download --no-index --find-links "$linux_cache" -d "$linux_cache" \
     -r "$work/build-requirements.txt" >/dev/null 2>&1; then
  "${pip[@]}" download --find-links "$linux_cache" -d "$linux_cache" \
    -r "$work/build-requirements.txt"
fi
[ -z "${FETCH_ONLY:-}" ] || { echo "build: cache ready in $CACHE"; exit 0; }

rm -rf "$stage"
mkdir -p "$stage/wheels" "$stage/python"
"${pip[@]}" wheel --no-deps --no-index --find-links "$linux_cache" -w "$stage/wheels" "$work/src"
# The dependencies Windows needs (requirements.txt), then the agent without its own (pip
# would read its markers for Linux).
"${pip[@]}" install --no-index --find-links "$cache" "${target[@]}" --no-compile \
  --target "$stage/lib" -r "$work/requirements.txt"
"${pip[@]}" install --no-index --find-links "$cache" "${target[@]}" --no-compile --no-deps \
  --target "$stage/lib" "$stage"/wheels/dmp_agent-*.whl
rm -rf "$stage/lib/bin"  # console scripts made for this Linux machine: dmp-agent.cmd replaces them

# pip evaluated the dependencies' markers for Linux: check nothing Windows needs is missing.
"$buildenv/bin/python" - "$stage/lib" <<'EOF'
import pathlib, sys
from email.parser import Parser
from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name

lib = pathlib.Path(sys.argv[1])
windows = {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt",
           "platform_machine": "AMD64", "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "python_version": "3.11",
           "python_full_version": "3.11.9"}
installed = {}
for meta in lib.glob("*.dist-info/METADATA"):
    message = Parser().parsestr(meta.read_text("utf-8"))
    installed[canonicalize_name(message["Name"])] = message.get_all("Requires-Dist") or []
missing = set()
for name, requires in installed.items():
    for line in requires:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({**windows, "extra": ""}):
            if canonicalize_name(req.name) not in installed:
                missing.add(f"{req.name} (for {name})")
if missing:
    sys.exit("build: Windows needs these too; add them to WIN_EXTRA in installer/windows/"
             "build.sh: " + ", ".join(sorted(missing)))
EOF

if [ -n "$EMBED" ]; then
  "$PYTHON" - "$EMBED" "$stage/python" "$WIN_PYTHON" <<'EOF'
import pathlib, sys, zipfile
zip_path, dest, version = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
with zipfile.ZipFile(zip_path) as archive:
    archive.extractall(dest)
pth = dest / ("python%s._pth" % version.replace(".", ""))
lines = [line for line in pth.read_text().splitlines() if line.strip() not in
         ("#import site", "import site", "..\\lib")]
# ..\lib: the agent and its libraries; import site: lets them register their own paths.
pth.write_text("\r\n".join([*lines, "..\\lib", "import site"]) + "\r\n")
EOF
  nsis_extra=()
else
  echo "build: WARNING: no Python embeddable zip (--python-embed ZIP): the installer will carry" \
       "python\\PYTHON-MISSING-MANQUANT.txt instead of Python, and say so when it runs" >&2
  sed 's/$/\r/' >"$stage/python/PYTHON-MISSING-MANQUANT.txt" <<EOF
FR - Python manque ici. Cet installateur de l'agent DMP a été construit sans la
distribution Python embarquée. Décompressez ici (dans ce dossier python\\) le fichier
python-$WIN_PYTHON.x-embed-amd64.zip de python.org, puis ajoutez ces deux lignes à la fin
de python${WIN_PYTHON/./}._pth :
    ..\\lib
    import site
Ou reconstruisez l'installateur : installer/windows/build.sh --python-embed ZIP.

EN - Python is missing here. This DMP agent installer was built without the Python
embeddable distribution. Unzip python-$WIN_PYTHON.x-embed-amd64.zip from python.org here
(into this python\\ folder), then append the two lines above to python${WIN_PYTHON/./}._pth,
or rebuild the installer with installer/windows/build.sh --python-embed ZIP.
EOF
  nsis_extra=(-DPYTHON_MISSING)
fi
install -m 0644 "$HERE/dmp-agent.cmd" "$HERE/LISEZMOI-README.txt" "$stage/"
echo "build: staging ready in $stage"
[ "$STAGE_ONLY" -eq 1 ] && exit 0
case "$COMPRESS" in
  zlib) ;;
  lzma) nsis_extra+=(-DLZMA) ;;
  *) echo "build: --compress zlib or lzma, not $COMPRESS" >&2; exit 2 ;;
esac

exe=$OUT/dmp-agent-$version-setup.exe
makensis -V2 -WX -DSTAGING="$stage" -DVERSION="$version" -DOUTFILE="$exe" "${nsis_extra[@]}" \
  "$HERE/dmp-agent.nsi"
echo "build: $exe ($(du -h "$exe" | cut -f1))"
