"""The files that serve a room: HAProxy's Compose configuration and the Compose profile."""

import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import PROJECT_DIR

sys.path.insert(0, str(PROJECT_DIR / "scripts"))
import workshop  # noqa: E402


def test_the_compose_haproxy_config_is_the_generated_one():
    generated = workshop.haproxy_config(list(workshop.COMPOSE_APPS), 8501, compose=True)
    assert workshop.COMPOSE_CFG.read_text() == generated, (
        "deploy/haproxy.cfg is stale: run scripts/workshop.py --write-compose-config"
    )


@pytest.mark.parametrize("compose", [False, True])
def test_haproxy_accepts_the_configuration(tmp_path, compose):
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    cfg = tmp_path / "haproxy.cfg"
    addresses = list(workshop.COMPOSE_APPS) if compose else ["127.0.0.1:8611", "127.0.0.1:8612"]
    cfg.write_text(workshop.haproxy_config(addresses, 8501, compose=compose))
    out = subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "cookie LAB_APP insert" in cfg.read_text()  # sticky sessions


def test_the_workshop_profile_runs_two_apps_behind_the_proxy_on_one_database():
    compose = yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())
    services = compose["services"]
    apps = [services[name] for name in ("app1", "app2")]
    for app in apps:
        assert app["profiles"] == ["workshop"]
        assert app["environment"]["DATABASE_URL"].endswith("@postgres:5432/lab")
        assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "profiles" not in services["postgres"]  # `docker compose up -d` still gives the DB
    proxy = services["proxy"]
    assert "./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in proxy["volumes"]
    assert [f"{n}:8501" for n in ("app1", "app2")] == list(workshop.COMPOSE_APPS)
