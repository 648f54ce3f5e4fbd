"""Serve the lab to a room: N app processes behind HAProxy with sticky sessions, one database.

    .venv/bin/python scripts/workshop.py                  # one process per core, on :8501
    .venv/bin/python scripts/workshop.py --processes 3 --port 8080
    make workshop PROCESSES=3

One Streamlit process runs Python on about one core, so a room is served by several
processes, each on its own port on 127.0.0.1, behind HAProxy on `--port`. HAProxy pins each
browser to one process with a cookie (a session's page state lives in that process), sends
the websocket there too, checks every process's /_stcore/health and moves the browsers of a
process that died to another. Every process talks to the same PostgreSQL (the embedded
server, started once here, or DATABASE_URL), where tables, index builds and ground truths
are shared (lib/core/jobs.py), so nothing is built twice.

Stops everything on Ctrl-C. Needs Debian's haproxy (`make haproxy` installs it).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from lib.core import memory  # noqa: E402
from lib.core.database import PROCESSES_ENV, open_database  # noqa: E402
from lib.ui import room  # noqa: E402

RUN_DIR = PROJECT_DIR / ".cache" / "workshop"

HAPROXY_CFG = """# {origin}
global
    maxconn 2000

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    # a Streamlit page is a websocket that stays open for the whole visit
    timeout tunnel 2h
    option redispatch
    retries 2
{extra}
frontend lab
    bind {bind}:{port}
    default_backend apps

backend apps
    balance leastconn
    # sticky sessions: a browser stays with the process that holds its page state
    cookie LAB_APP insert indirect nocache httponly
    option httpchk GET /_stcore/health
    http-check expect status 200
{servers}
"""

# In Docker Compose the app containers are found by name through Docker's DNS, and a
# container that is not up yet must not stop HAProxy from starting.
COMPOSE_EXTRA = """
resolvers docker
    nameserver dns 127.0.0.11:53
"""
COMPOSE_SERVER = "resolvers docker init-addr last,libc,none"
COMPOSE_APPS = ("app1:8501", "app2:8501")
COMPOSE_CFG = PROJECT_DIR / "deploy" / "haproxy.cfg"


def haproxy_config(
    addresses: list[str], port: int, bind: str = "0.0.0.0", *, compose: bool = False
) -> str:
    """HAProxy's configuration for app processes at `addresses` (host:port)."""
    options = f" {COMPOSE_SERVER}" if compose else ""
    servers = "\n".join(
        f"    server app{i} {address} cookie app{i} check inter 2s fall 2 rise 1{options}"
        for i, address in enumerate(addresses, start=1)
    )
    origin = (
        "Docker Compose's workshop profile. Generated: scripts/workshop.py --write-compose-config"
        if compose
        else "Written by scripts/workshop.py for the app processes it started."
    )
    return HAPROXY_CFG.format(
        origin=origin, extra=COMPOSE_EXTRA if compose else "", bind=bind, port=port,
        servers=servers,
    )  # fmt: skip


def wait_healthy(
    url: str, proc: subprocess.Popen, timeout: float = 120, name: str = "an app process"
) -> None:
    """Until `url` answers Streamlit's health check (through HAProxy: an app behind it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with {proc.returncode}; see {RUN_DIR}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not become healthy in {timeout:.0f} s")


def free_ports(n: int) -> list[int]:
    """n ports that are free now (held open together, so they are distinct)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def start_apps(n: int, first_port: int, env: dict[str, str]) -> list[tuple[int, subprocess.Popen]]:
    """n app processes on first_port, first_port + 1, … (0: on free ports)."""
    ports = free_ports(n) if first_port == 0 else [first_port + i for i in range(n)]
    apps = []
    for i, port in enumerate(ports):
        log = open(RUN_DIR / f"app{i + 1}.log", "wb")  # noqa: SIM115 - lives with the process
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", "serve.py",
                "--server.port", str(port), "--server.address", "127.0.0.1",
                "--server.headless", "true",
            ],
            cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        apps.append((port, proc))
    return apps


def app_env(processes: int) -> dict[str, str]:
    """The app processes' environment: this one's, plus what a room needs."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        **memory.SERVER_ENV,  # closed sessions' memory goes back to the OS (lib/core/memory.py)
        # one secret for every process: cookies and upload tokens are valid in each of them
        "STREAMLIT_SERVER_COOKIE_SECRET": secrets.token_hex(32),
        # only the instructor's link starts shared work (lib/ui/room.py); given or made here
        room.TOKEN_ENV: os.environ.get(room.TOKEN_ENV) or secrets.token_urlsafe(16),
        # each process sizes its pool to its share of the server's connections
        PROCESSES_ENV: str(processes),
    }


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--port", type=int, default=8501, help="where HAProxy listens")
    ap.add_argument("--bind", default="0.0.0.0", help="HAProxy's address (0.0.0.0: the room)")
    ap.add_argument(
        "--first-app-port",
        type=int,
        default=8611,
        help="the app processes' first port (0: any free)",
    )
    ap.add_argument(
        "--write-compose-config", action="store_true",
        help=f"write {COMPOSE_CFG.relative_to(PROJECT_DIR)} for docker-compose.yml, and stop",
    )  # fmt: skip
    args = ap.parse_args(argv)
    first = args.first_app_port
    if first and first <= args.port < first + args.processes:
        args.first_app_port = args.port + 1  # the proxy's port is not an app's
    if args.write_compose_config:
        COMPOSE_CFG.write_text(haproxy_config(list(COMPOSE_APPS), 8501, compose=True))
        print(f"wrote {COMPOSE_CFG}")
        return 0

    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        print("HAProxy is missing: `make haproxy` installs Debian's package.", file=sys.stderr)
        return 2
    RUN_DIR.mkdir(parents=True, exist_ok=True)

    db = open_database()  # start (or reach) the one database before the processes race for it
    info = db.info()
    db.close()
    print(f"PostgreSQL {info.server_version} · pgvector {info.pgvector_version}: {info.location}")

    env = app_env(args.processes)
    # Stopped by a supervisor (SIGTERM) or a closed terminal (SIGHUP) as by Ctrl-C: the app
    # processes and HAProxy stop too (else they keep the ports, and the next start fails).
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    apps = start_apps(args.processes, args.first_app_port, env)
    proxy = None
    try:
        for port, proc in apps:
            wait_healthy(f"http://127.0.0.1:{port}", proc)
            print(f"app process on 127.0.0.1:{port} (pid {proc.pid}) is up")
        cfg = RUN_DIR / "haproxy.cfg"
        cfg.write_text(haproxy_config([f"127.0.0.1:{p}" for p, _ in apps], args.port, args.bind))
        proxy = subprocess.Popen([haproxy, "-db", "-f", str(cfg)])
        # Announced once it answers: a browser sent to the address before gets no page.
        here = "127.0.0.1" if args.bind in ("0.0.0.0", "::", "") else args.bind
        wait_healthy(f"http://{here}:{args.port}", proxy, timeout=30, name="HAProxy")
        print(
            f"HAProxy on {args.bind}:{args.port} → {len(apps)} app processes; "
            f"open http://localhost:{args.port}. Logs in {RUN_DIR}. Ctrl-C stops everything.\n"
            f"Instructor link (keep it to yourself; it starts builds for the room): "
            f"http://localhost:{args.port}/?{room.PARAM}={env[room.TOKEN_ENV]}",
            flush=True,
        )
        while proxy.poll() is None and all(p.poll() is None for _, p in apps):
            time.sleep(1)
        dead = [port for port, p in apps if p.poll() is not None]
        if dead:
            print(f"app process(es) on {dead} stopped; see {RUN_DIR}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in [proxy] + [p for _, p in apps]:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in [proxy] + [p for _, p in apps]:
            if p is not None:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    sys.exit(main())
