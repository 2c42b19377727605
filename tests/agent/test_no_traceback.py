"""Issue 17: no traceback ever reaches a user. Each way a command can end that no command
handled (the reader of its output gone, Ctrl-C, the input closed where a password is asked,
a missing file, a failure of ours) is one sentence on stderr and an exit status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent import cli

BIN = Path(sys.executable).parent


def as_at_a_terminal() -> None:
    """In the child: Ctrl-C interrupts, as at a terminal (a shell that started the test run
    in the background left SIGINT ignored, and a child inherits that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def dmp_agent(*args: str, **options: object) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BIN / "dmp-agent"), *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "LANGUAGE": "fr"},
                            preexec_fn=as_at_a_terminal, **options)  # type: ignore[call-overload]


def one_sentence(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("dmp-agent")]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    return lines[0]


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    # `dmp-agent --help | head -1`
    command = dmp_agent("--help", stdin=subprocess.DEVNULL)
    assert command.stdout is not None and command.stderr is not None
    assert command.stdout.readline().startswith("utilisation")
    command.stdout.close()
    assert command.wait(timeout=30) == 0
    assert command.stderr.read() == ""


def test_the_input_closed_where_a_password_is_asked(tmp_path: Path) -> None:
    bundle = tmp_path / "poste.p12"
    bundle.write_bytes(b"not a PKCS#12 file")
    command = dmp_agent("enrol", "--pkcs12", str(bundle), stdin=subprocess.DEVNULL)
    _out, err = command.communicate(timeout=30)
    assert command.returncode == 1
    assert "entrée standard" in one_sentence(err)


def test_ctrl_c_is_said_in_one_line_with_the_shells_status(tmp_path: Path) -> None:
    bundle = tmp_path / "poste.p12"
    bundle.write_bytes(b"not a PKCS#12 file")
    # Asking for the password on an input that stays open: the user presses Ctrl-C.
    command = dmp_agent("enrol", "--pkcs12", str(bundle), stdin=subprocess.PIPE)
    assert command.stderr is not None
    deadline = time.monotonic() + 30
    asked = ""
    while "Mot de passe" not in asked:  # a bound, not a measure: the prompt is on stderr
        assert time.monotonic() < deadline, asked
        asked += os.read(command.stderr.fileno(), 4096).decode()
    command.send_signal(signal.SIGINT)
    _out, err = command.communicate(timeout=30)
    assert command.returncode == 130
    assert one_sentence(asked + err).endswith("interrompu")


def test_a_missing_document_is_a_usage_error_in_one_sentence(tmp_path: Path) -> None:
    command = dmp_agent("deposit", str(tmp_path / "absent.pdf"), "--type", "34810-2",
                        stdin=subprocess.DEVNULL)
    _out, err = command.communicate(timeout=30)
    assert command.returncode == 2
    assert "absent.pdf" in one_sentence(err)


def test_a_failure_of_ours_is_one_sentence_and_v_shows_the_details(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def broken(**_options: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "cards_command", broken)
    assert cli.main(["cards"]) == 1
    said = capsys.readouterr().err
    assert one_sentence(said).startswith("dmp-agent: échec inattendu (RuntimeError)")
    assert "-v" in said
    with pytest.raises(RuntimeError):  # the developer asked for the details
        cli.main(["-v", "cards"])
    missing = tmp = Path("/nonexistent-dmp-agent-test")

    def gone(**_options: object) -> int:
        raise FileNotFoundError(2, "No such file or directory", str(missing / "x"))

    monkeypatch.setattr(cli, "cards_command", gone)
    assert cli.main(["cards"]) == 1
    assert str(tmp / "x") in one_sentence(capsys.readouterr().err)
