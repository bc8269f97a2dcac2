"""``gateway demo`` as a newcomer runs it: a real process, real ports, real signals.

It says what went wrong (a taken port, a sample system that died, a wrong secret in the
printed lines), stops every child on SIGINT and SIGTERM, keeps its clients' secrets across
restarts of one data directory, and prints the command line that administers it.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx2
import pytest

from gateway.auth.totp import _key, totp
from tests.console.conftest import hidden_fields
from tests.demo_process import GATEWAY, demo_command, free_ports, running_demo

pytestmark = pytest.mark.slow


def _process_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z":
            return True  # a zombie: exited, not yet reaped by its (dead) parent
        time.sleep(0.1)
    return False


def _bash(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )


def _try_it_lines(console: str) -> tuple[str, str]:
    """The printed token line and the /v1/me line, as a shell would read them."""
    block = console.split("Try it:\n", 1)[1].replace("\\\n", " ")
    lines = [line.strip() for line in block.splitlines()]
    token_line = next(line for line in lines if line.startswith("TOKEN=$(curl"))
    me_line = next(line for line in lines if line.startswith("curl") and "/v1/me" in line)
    return token_line, me_line


# --- ports -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("taken", "option", "make_variable", "under_make"),
    [(0, "--port", "PORT", False), (3, "--sandbox-port", "SANDBOX_PORT", True)],
    ids=["gateway-port", "sandbox-port-under-make"],
)
def test_a_taken_port_stops_the_demo_with_one_line(
    tmp_path: Path, taken: int, option: str, make_variable: str, under_make: bool
) -> None:
    first = free_ports(7)
    port, sandbox_port = first, first + 1
    busy = port if taken == 0 else sandbox_port + taken - 1
    env = {k: v for k, v in os.environ.items() if k != "MAKELEVEL"}
    if under_make:
        env["MAKELEVEL"] = "1"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", busy))
        holder.listen()
        started = time.monotonic()
        result = subprocess.run(
            demo_command(tmp_path / "demo", port, sandbox_port),
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {busy} " in lines[0]
    assert "is taken" in lines[0]
    assert (f"make demo {make_variable}=N" if under_make else f"{option} N") in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "demo" / "sandbox.log").exists()  # nothing was started
    assert time.monotonic() - started < 15


# --- a whole run, a restart, signals -------------------------------------------------------------


def test_demo_runs_restarts_with_the_same_secrets_and_stops_every_child(tmp_path: Path) -> None:
    first = free_ports(6)
    port, sandbox_port = first, first + 1
    data_dir = tmp_path / "demo"

    with running_demo(data_dir, port, sandbox_port) as demo:
        ready = demo.wait_ready()
        agencies = ready["checks"]["agency_systems"]["agencies"]  # type: ignore[index]
        assert {name: a["identity"] for name, a in agencies.items()} == dict.fromkeys(
            ["court", "justice", "prison", "procuratorate", "public_security"], "ok"
        )
        saved = json.loads((data_dir / "demo.json").read_text())
        console = demo.text()

        # The printed lines work as printed, and fail readably with a wrong secret.
        token_line, me_line = _try_it_lines(console)
        me = _bash(f"{token_line}\n{me_line}")
        assert me.returncode == 0, me.stderr
        assert json.loads(me.stdout)["name"] == "court"
        court = saved["clients"]["court"]
        wrong = token_line.replace(court["client_secret"], "not-the-secret")
        failed = _bash(f"{wrong}\necho token-line-status=$?\n{me_line}\necho after-me")
        assert "token-line-status=1" in failed.stdout
        assert "no token: client authentication failed" in failed.stderr
        assert "TOKEN: no token" in failed.stderr  # the next line refuses an empty token
        assert "after-me" not in failed.stdout
        assert "Traceback" not in failed.stderr
        assert "KeyError" not in failed.stderr

        # The checkpoint exists from the start (the empty tree at least).
        regulator = saved["clients"]["regulator"]
        token = httpx2.post(
            f"{demo.base_url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(regulator["client_id"], regulator["client_secret"]),
        ).json()["access_token"]
        checkpoint = httpx2.get(
            f"{demo.base_url}/v1/audit/checkpoint", headers={"Authorization": f"Bearer {token}"}
        )
        assert checkpoint.status_code == 200, checkpoint.text

        # The console users sign in with the generated passwords, over the demo's plain http.
        users = saved["console"]["users"]
        assert set(users) == {"admin", "admin2", "regulator", "reviewer", "reviewer2"}
        assert all(len(u["password"]) >= 12 for u in users.values())
        assert f"Web console (简体中文): {demo.base_url}/console/" in console
        assert saved["console"]["url"] == f"{demo.base_url}/console/"
        assert all(u["password"] not in console for u in users.values())
        with httpx2.Client(base_url=demo.base_url, follow_redirects=True) as browser:
            form = hidden_fields(browser.get("/console/signin").text)
            form.update(username="reviewer", password=users["reviewer"]["password"], totp="")
            home = browser.post("/oauth/authorize", data=form)
            assert home.status_code == 200, home.text
            assert str(home.url) == f"{demo.base_url}/console/"
            assert "/console/deliveries" in home.text
        # The administrators sign in with TOTP (required of policy:admin): the secret in demo.json.
        with httpx2.Client(base_url=demo.base_url, follow_redirects=True) as browser:
            secret = users["admin"]["totp_secret"]
            assert users["admin"]["otpauth_uri"].startswith("otpauth://totp/")
            form = hidden_fields(browser.get("/console/signin").text)
            code = totp(_key(secret), time.time())
            form.update(username="admin", password=users["admin"]["password"], totp=code)
            home = browser.post("/oauth/authorize", data=form)
            assert home.status_code == 200, home.text
            assert "/console/policies" in home.text

        # The printed administration line reaches this demo's data.
        admin = demo.wait_for(r"\n  (\S+ --data-dir \S+) clients list\n").group(1)
        program, rest = admin.split(" ", 1)
        assert Path(program).name == "gateway"
        listed = subprocess.run(
            [*GATEWAY, *shlex.split(rest), "clients", "list", "--json"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr
        assert {row["name"] for row in json.loads(listed.stdout)} >= {"court", "regulator"}

        # SIGTERM stops the gateway and the sample systems.
        [sandbox] = demo.children()
        demo.process.send_signal(signal.SIGTERM)
        assert demo.process.wait(timeout=30) == 0
        assert _process_gone(sandbox), "the sample systems outlived the demo"

    with running_demo(data_dir, port, sandbox_port) as again:
        again.wait_ready()
        restarted = json.loads((data_dir / "demo.json").read_text())
        assert {n: c["client_secret"] for n, c in restarted["clients"].items()} == {
            n: c["client_secret"] for n, c in saved["clients"].items()
        }
        assert restarted["console"] == saved["console"]  # the same passwords
        # A sample system that dies is reported on the console.
        [sandbox] = again.children()
        os.kill(sandbox, signal.SIGKILL)
        again.wait_for(r"the sample agency systems \(pid \d+\) stopped unexpectedly", timeout=20)
        # SIGINT (Ctrl-C) stops the demo too.
        again.process.send_signal(signal.SIGINT)
        assert again.process.wait(timeout=30) == 0
        assert "Traceback" not in again.text()
