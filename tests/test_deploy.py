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


def test_compose_keeps_the_database_off_the_room_and_its_secrets_out_of_the_file():
    compose = yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())
    postgres = compose["services"]["postgres"]
    assert postgres["ports"] and all(p.startswith("127.0.0.1:") for p in postgres["ports"])
    env = postgres["environment"]
    assert env["POSTGRES_PASSWORD"].startswith("${LAB_DB_PASSWORD:?")  # no default password
    for name in ("app1", "app2"):
        app = compose["services"][name]["environment"]
        assert app["STREAMLIT_SERVER_COOKIE_SECRET"].startswith("${LAB_COOKIE_SECRET:?")
        assert app["DATABASE_URL"].startswith("postgresql://lab_app:${LAB_APP_PASSWORD:?")
        assert app["LAB_INSTRUCTOR_TOKEN"].startswith("${LAB_INSTRUCTOR_TOKEN:?")  # a room
    for service in compose["services"].values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:") or port == "8501:8501", port  # only the proxy


def test_the_image_installs_the_hashed_runtime_lock():
    dockerfile = (PROJECT_DIR / "Dockerfile").read_text()
    assert "--require-hashes --no-deps -r requirements/runtime.txt" in dockerfile
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert all("--no-deps" in line for line in installs), installs


@pytest.mark.db
def test_the_app_role_owns_its_schema_and_nothing_else(pg_url):
    """deploy/init-lab-role.sh run as the postgres image runs it, against a real server."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(pg_url)
    db_name = "init_role_test"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db_name}")
        conn.execute(f"CREATE DATABASE {db_name}")
        conn.execute("DROP ROLE IF EXISTS lab_app")
    env = {
        "PATH": "/usr/bin:/bin", "PGHOST": info.get("host", ""),
        "PGPORT": str(info.get("port", "")), "POSTGRES_USER": info.get("user", "postgres"),
        "POSTGRES_DB": db_name,
        "LAB_APP_PASSWORD": "app-secret",
    }  # fmt: skip
    out = subprocess.run(
        ["sh", str(PROJECT_DIR / "deploy" / "init-lab-role.sh")], env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    try:
        assert out.returncode == 0, out.stderr
        app_url = psycopg.conninfo.make_conninfo(
            pg_url, dbname=db_name, user="lab_app", password="app-secret"
        )
        with psycopg.connect(app_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE lab_table (id int, v vector(3))")  # the lab's tables
            (schema,) = conn.execute(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = 'lab_table'"
            ).fetchone()
            assert schema == "pgvector_lab"
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("CREATE TABLE public.elsewhere (id int)")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("COPY (SELECT 1) TO PROGRAM 'true'")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DROP EXTENSION vector")
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
            conn.execute("DROP ROLE IF EXISTS lab_app")
