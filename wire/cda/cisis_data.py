"""``dmp-cisis-data``: installs the CI-SIS files the CDA checks need
(wire/cda/cisis/README.md): the schematrons, value sets and CDA XSD of
ansforge/TestContenuCDA-3-0 at one pinned commit, into wire/cda/cisis/data/ (or
$DMP_CISIS_DIR), then compiles each schematron the volets use.

They are fetched, not committed: the repository publishes no licence. Sources, first found:
  --from PATH        a clone of the repository (git archive of the pinned commit) or a
                     .tar.gz of it (GitHub's archive of the pinned commit)
  $DMP_CISIS_SOURCE  the same, from the environment
  otherwise          GitHub's archive of the pinned commit, downloaded
Safe to run again: does nothing when the pinned commit is already installed.

A console script of the package, so that an installed agent (the .deb's
/opt/dmp-agent/venv/bin/dmp-cisis-data, run once by the administrator) gets them as a
checkout does (`scripts/cisis-data`, which calls this).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

from wire.cda import schematron, volets
from wire.cda.valuesets import svs_to_art_decor

REPOSITORY = "ansforge/TestContenuCDA-3-0"
COMMIT = "7cd489b39368809df9bcf2cfef5e5d6354438a02"  # 2025-02-19 (docs/cda.md)
ARCHIVE = f"https://codeload.github.com/{REPOSITORY}/tar.gz/{COMMIT}"
PATHS = (
    "schematrons/moteur/iso_dsdl_include.xsl",
    "schematrons/moteur/iso_abstract_expand.xsl",
    "schematrons/moteur/iso_svrl_for_xslt2.xsl",
    "schematrons/moteur/iso_schematron_skeleton_for_saxon.xsl",
    "schematrons/profils/structurationMinimale",
    "schematrons/abstract",
    "schematrons/include",
    "jeuxDeValeurs",
    "infrastructure/cda",
    *sorted({name for volet in volets.VOLETS.values() for name in volet.schematrons
             if name.startswith("schematrons/CI-SIS_")}),
)
# The header schematron reads JDV_J07 (document types) from an art-decor value-set file the
# repository does not ship; it is made from the repository's own SVS file of the same set.
GENERATED = {
    "schematrons/profils/structurationMinimale/include/voc-1.2.250.1.213.1.1.5.471-DYNAMIC.xml":
        "jeuxDeValeurs/JDV_J07_XdsTypeCode_CISIS.xml",
}


def stamp_text() -> str:
    """What an installation's ``.commit`` says: the commit and the files taken from it (a
    volet added since is fetched again, the commit unchanged)."""
    return f"{COMMIT} {' '.join(PATHS)}\n"


def up_to_date(target: Path) -> bool:
    """Whether ``target`` holds an installation of this commit with every file wanted now."""
    stamp = target / ".commit"
    return stamp.is_file() and stamp.read_text() == stamp_text()


def wanted(name: str) -> bool:
    return any(name == path or name.startswith(path + "/") for path in PATHS)


def extract_tar(data: bytes, target: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
        members = [member for member in archive.getmembers() if member.isfile()]
        # GitHub's archives put everything under one folder (<repo>-<commit>/); git
        # archive does not.
        top = {member.name.split("/", 1)[0] for member in members}
        ours = {path.split("/", 1)[0] for path in PATHS}
        strip = len(top) == 1 and not top & ours
        for member in members:
            name = member.name.split("/", 1)[1] if strip and "/" in member.name else member.name
            if not wanted(name) or ".." in name.split("/"):
                continue
            source = archive.extractfile(member)
            assert source is not None
            out = target / name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(source.read())


def fetch(source: str | None) -> bytes:
    if source and Path(source).is_dir():  # a clone (work tree or bare)
        return subprocess.run(["git", "-C", source, "archive", "--format=tar", COMMIT, *PATHS],
                              check=True, capture_output=True).stdout
    if source:
        return Path(source).read_bytes()
    with urllib.request.urlopen(ARCHIVE, timeout=60) as response:
        data: bytes = response.read()
        return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dmp-cisis-data", description="Install the CI-SIS files (schematrons, value sets, "
        f"CDA schema) of {REPOSITORY} at a pinned commit, for the CDA checks (docs/cda.md).")
    parser.add_argument("--from", dest="source", default=os.environ.get("DMP_CISIS_SOURCE"),
                        help="a clone of the repository or a .tar.gz of the pinned commit "
                             "(default: $DMP_CISIS_SOURCE, else GitHub's archive)")
    parser.add_argument("--force", action="store_true", help="install again")
    args = parser.parse_args(argv)
    target = schematron.data_dir()
    if up_to_date(target) and not args.force:
        return 0
    try:
        data = fetch(args.source)
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"cisis-data: cannot fetch {REPOSITORY}@{COMMIT[:12]} ({error}); the CDA "
              "schematron checks will refuse documents until this is run again with "
              "--from <clone or archive>", file=sys.stderr)
        return 1
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir(parents=True)
    except OSError as error:  # an installed package's folder: the administrator runs this
        print(f"cisis-data: cannot write {target.parent} ({error.strerror}): run it as the "
              "administrator (sudo)", file=sys.stderr)
        return 1
    extract_tar(data, partial)
    for made, svs in GENERATED.items():
        (partial / made).write_bytes(svs_to_art_decor((partial / svs).read_bytes()))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    for volet in volets.VOLETS.values():
        for name in volet.schematrons:
            xsl = target / (name + ".xsl")
            if not xsl.exists():
                schematron.compile_schematron(target / name)
    (target / ".commit").write_text(stamp_text())
    print(f"cisis-data: {REPOSITORY}@{COMMIT[:12]} installed in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
