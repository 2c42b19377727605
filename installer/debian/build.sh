#!/usr/bin/env bash
# Builds dist/dmp-agent_<version>_<arch>.deb from this working tree (docs/installer.md).
#
# The agent goes into its own Python environment, /opt/dmp-agent/venv, made with the system
# python3 at build time and shipped whole: every file is listed by dpkg, nothing is built or
# downloaded at install time. A venv hard-codes its own path (scripts' #! lines, pyvenv.cfg,
# byte-code), so it is built at its final path: in a private mount namespace a temporary
# directory is bind-mounted on /opt, then copied into the package tree. This needs root, or
# unprivileged user namespaces (`unshare --user --map-root-user`).
#
# Usage: installer/debian/build.sh [--out DIR] [--cache DIR] [--compress zstd|xz] [--fetch-only]
#   --fetch-only: fill the cache from the registry and stop (the tests run it before they go
#   into their network namespace, where the build then runs offline).
#   --out: where the .deb goes (default <repo>/dist); --cache: the wheels and build tools kept
#   between builds (default OUT/cache). zstd (default) packs in 2 s; xz makes a
#   package a quarter smaller in 90 s (dpkg reads zstd since Debian 12 and Ubuntu 21.10).
# Environment: PYTHON (default /usr/bin/python3: the interpreter the package will depend on).
# pyscard is built once from its sdist into the cache (gcc, swig, libpcsclite-dev,
# python3-dev); later builds need no network.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

# -- inside the private mount namespace: build the venv at /opt/dmp-agent -------------------
if [ "${1:-}" = "--inside-namespace" ]; then
  work=$2 pybin=$3 cache=$4 buildenv=$5
  mkdir -p "$work/opt"
  mount --bind "$work/opt" /opt  # private to this namespace: the real /opt is not touched
  "$pybin" -m venv --without-pip /opt/dmp-agent/venv
  # The build venv's pip installs into the target interpreter (--python): no pip nor
  # setuptools is left in the shipped environment. Offline from the wheels: the machine's
  # pip configuration has no say here (it may name places this namespace hides).
  env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_CONFIG_FILE=/dev/null \
    "$buildenv/bin/python" -m pip --disable-pip-version-check -q \
    --python /opt/dmp-agent/venv/bin/python install --no-index --find-links "$cache" \
    --no-warn-script-location "$work"/wheel/*.whl
  # pip records where the wheel came from (a temporary path of this build): forget it, so
  # that the package names no file of the build machine.
  "$pybin" - <<'EOF'
import pathlib
for record in pathlib.Path("/opt/dmp-agent/venv/lib").glob("python*/site-packages/*/RECORD"):
    direct = record.parent / "direct_url.json"
    if direct.exists():
        direct.unlink()
        lines = record.read_text().splitlines(keepends=True)
        record.write_text("".join(x for x in lines if not x.startswith(
            f"{record.parent.name}/direct_url.json,")))
EOF
  for script in /opt/dmp-agent/venv/bin/dmp-*; do
    first=$(head -1 "$script")
    if [ "$first" != "#!/opt/dmp-agent/venv/bin/python" ]; then
      echo "build: $script starts $first, not /opt/dmp-agent/venv/bin/python" >&2
      exit 1
    fi
  done
  cp -a /opt/dmp-agent "$work/root/opt/"
  exit 0
fi

OUT=$REPO/dist
CACHE=
COMPRESS=zstd
FETCH_ONLY=
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --cache) CACHE=$2; shift 2 ;;
    --compress) COMPRESS=$2; shift 2 ;;
    --fetch-only) FETCH_ONLY=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/!p}' "$0"; exit 0 ;;
    *) echo "build: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-/usr/bin/python3}
for tool in dpkg-deb dpkg unshare "$PYTHON"; do
  command -v "$tool" >/dev/null || { echo "build: $tool not found" >&2; exit 1; }
done
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "build: $PYTHON is Python $pyver; 3.11 or newer is needed" >&2; exit 1; }
# The venv links to the versioned interpreter, so the package keeps working if the default
# python3 changes, as long as python$pyver (a dependency) stays installed.
pybin=/usr/bin/python$pyver
[ -x "$pybin" ] || { echo "build: $pybin not found (PYTHON must be a system python)" >&2; exit 1; }
"$pybin" -c 'import ensurepip, venv' 2>/dev/null \
  || { echo "build: the venv module is missing: apt-get install python3-venv" >&2; exit 1; }
arch=$(dpkg --print-architecture)

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CACHE=${CACHE:-$OUT/cache}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
cache=$CACHE/wheels-linux-$arch-py$pyver
mkdir -p "$cache"
work=$(mktemp -d "${TMPDIR:-/tmp}/dmp-agent-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
umask 022

# What pyproject.toml says: the version, the pinned dependencies, the build requirements,
# the top-level packages.
"$PYTHON" - "$REPO/pyproject.toml" "$work" <<'EOF'
import sys, tomllib, pathlib
project = tomllib.loads(pathlib.Path(sys.argv[1]).read_text())
work = pathlib.Path(sys.argv[2])
(work / "version").write_text(project["project"]["version"])
(work / "requirements.txt").write_text(
    "\n".join(project["project"]["dependencies"] + project["build-system"]["requires"]) + "\n")
include = project["tool"]["setuptools"]["packages"]["find"]["include"]
(work / "packages").write_text("\n".join(sorted({p.split("*")[0].split(".")[0] for p in include})))
EOF
version=$(cat "$work/version")
deb=$OUT/dmp-agent_${version}_${arch}.deb
echo "build: dmp-agent $version for $arch, Python $pyver"

# The sources the wheel is made of, copied so that the build leaves nothing in the tree.
mkdir -p "$work/src"
mapfile -t packages <"$work/packages"
(cd "$REPO" && tar --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' -cf - \
  pyproject.toml README.md "${packages[@]}") | tar -xf - -C "$work/src"

# The build tools' own venv (pip), kept between builds; made again when it no longer runs.
buildenv=$CACHE/buildenv-linux-py$pyver
if ! "$buildenv/bin/python" -m pip --version >/dev/null 2>&1; then
  rm -rf "$buildenv"
  "$pybin" -m venv "$buildenv"
fi
pip=("$buildenv/bin/python" -m pip --disable-pip-version-check -q)
# Offline from the cache when it holds everything; else fill it from the registry once.
if ! "${pip[@]}" wheel --no-index --find-links "$cache" -w "$cache" -r "$work/requirements.txt" \
     >/dev/null 2>&1; then
  echo "build: fetching and building the dependency wheels into $cache"
  "${pip[@]}" wheel --find-links "$cache" -w "$cache" -r "$work/requirements.txt"
fi
[ -z "$FETCH_ONLY" ] || { echo "build: cache ready in $cache"; exit 0; }
"${pip[@]}" wheel --no-deps --no-index --find-links "$cache" -w "$work/wheel" "$work/src"

# The package tree.
root=$work/root
mkdir -p "$root/DEBIAN" "$root/opt" "$root/usr/bin" "$root/etc/xdg/autostart" \
  "$root/etc/dmp-agent" "$root/usr/lib/systemd/user" "$root/usr/share/doc/dmp-agent"
if [ "$(id -u)" -eq 0 ]; then
  unshare --mount --propagation private -- \
    bash "$HERE/build.sh" --inside-namespace "$work" "$pybin" "$cache" "$buildenv"
else
  unshare --user --map-root-user --mount --propagation private -- \
    bash "$HERE/build.sh" --inside-namespace "$work" "$pybin" "$cache" "$buildenv"
fi
ln -s /opt/dmp-agent/venv/bin/dmp-agent "$root/usr/bin/dmp-agent"
install -m 0644 "$HERE/dmp-agent.desktop" "$root/etc/xdg/autostart/dmp-agent.desktop"
install -m 0644 "$HERE/dmp-agent.service" "$root/usr/lib/systemd/user/dmp-agent.service"
install -m 0644 "$HERE/provisioning-README" "$root/etc/dmp-agent/README"
install -m 0644 "$HERE/copyright" "$root/usr/share/doc/dmp-agent/copyright"
install -m 0644 "$REPO/docs/installer.md" "$root/usr/share/doc/dmp-agent/installer.md"
for script in postinst postrm; do
  install -m 0755 "$HERE/$script" "$root/DEBIAN/$script"
done
echo /etc/dmp-agent/README >"$root/DEBIAN/conffiles"

# The compiled wheels were built for this glibc or an older one (manylinux tags): require it.
glibc=$("$PYTHON" - "$root/opt/dmp-agent/venv" <<'EOF'
import pathlib, re, sys
found = [(2, 17)]
for wheel in pathlib.Path(sys.argv[1]).glob("lib/python*/site-packages/*.dist-info/WHEEL"):
    for m in re.finditer(r"manylinux_(\d+)_(\d+)_", wheel.read_text()):
        found.append((int(m[1]), int(m[2])))
print("%d.%d" % max(found))
EOF
)
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: dmp-agent
Version: $version
Architecture: $arch
Maintainer: DMP agent maintainers <dmp-agent@localhost>
Installed-Size: $installed_size
Depends: pcscd, libpcsclite1, ghostscript, python3 (>= 3.11), python$pyver, libc6 (>= $glibc)
Suggests: vsmartcard-vpcd
Section: misc
Priority: optional
Description: DMP workstation agent (Agent DMP du poste)
 Reads the health professional's CPS card and the patient's Vitale card
 through PC/SC readers and opens a card-rooted mutual-TLS session with the
 French shared medical record (DMP) host to read and deposit documents.
 .
 Installed in its own Python environment under /opt/dmp-agent; started in
 desktop sessions by /etc/xdg/autostart/dmp-agent.desktop, or as a systemd
 user service (systemctl --user enable --now dmp-agent).
EOF

dpkg-deb --build --root-owner-group -Z"$COMPRESS" "$root" "$deb" >/dev/null
echo "build: $deb ($(du -h "$deb" | cut -f1))"
