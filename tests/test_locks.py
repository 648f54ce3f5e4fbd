"""The locks in requirements/ match pyproject.toml, this environment is exactly the locked
one, and the README's "Tested with" table is what this install runs on."""

from __future__ import annotations

import os
import platform
import re
import tomllib
from importlib.metadata import distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from lib.core import versions

PROJECT_DIR = Path(__file__).resolve().parent.parent
RUNTIME = PROJECT_DIR / "requirements" / "runtime.txt"
TEST = PROJECT_DIR / "requirements" / "test.txt"
PYPROJECT = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]

_PIN = re.compile(
    r"^([A-Za-z0-9._-]+)==(\S+) \\\n((?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", re.M
)


def pins(lock: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """{name: (version, hashes)} of a pip-compile lock."""
    found = {
        canonicalize_name(m[1]): (m[2], frozenset(re.findall(r"sha256:([0-9a-f]{64})", m[3])))
        for m in _PIN.finditer(lock.read_text())
    }
    lines = [line for line in lock.read_text().splitlines() if re.match(r"^[A-Za-z0-9]", line)]
    assert len(found) == len(lines), "every requirement is pinned with == and hashes"
    return found


def test_the_runtime_lock_satisfies_pyproject_dependencies():
    locked = pins(RUNTIME)
    for spec in PYPROJECT["dependencies"]:
        req = Requirement(spec)
        version, _ = locked[canonicalize_name(req.name)]
        assert req.specifier.contains(version, prereleases=True), (spec, version)


def test_the_test_lock_is_the_runtime_lock_plus_the_test_tools():
    runtime, test = pins(RUNTIME), pins(TEST)
    assert {name: test[name] for name in runtime} == runtime, "same versions, same hashes"
    tools = [Requirement(s) for s in PYPROJECT["optional-dependencies"]["test"]]
    for req in tools:
        version, _ = test[canonicalize_name(req.name)]
        assert req.specifier.contains(version), (req, version)
    # some test extras (pyyaml, websockets, psutil) come with the app's own dependencies anyway;
    # the tools that only tests use never reach `make run`'s environment
    assert not {"pytest", "hypothesis", "playwright", "ruff"} & set(runtime)


def test_torch_is_locked_to_its_cpu_build():
    version, hashes = pins(RUNTIME)["torch"]
    assert version.endswith("+cpu") and len(hashes) == 1


def test_this_environment_is_exactly_the_test_lock():
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}
    locked = {name: version for name, (version, _) in pins(TEST).items()}
    assert {name: installed.get(name) for name in locked} == locked


def test_the_locks_were_compiled_for_this_python():
    header = RUNTIME.read_text().splitlines()[1]
    assert header.endswith(
        f"with Python {platform.python_version_tuple()[0]}.{platform.python_version_tuple()[1]}"
    )
    assert f">={header.rsplit(' ', 1)[1]}" == PYPROJECT["requires-python"], "the lowest allowed"


def test_the_readme_section_is_replaced_and_nothing_else():
    text = f"intro\n{versions.START}\nold\n{versions.END}\noutro\n"
    new = versions.with_table(text, "| a | b |")
    assert new == f"intro\n{versions.START}\n| a | b |\n{versions.END}\noutro\n"
    assert versions.readme_table(new) == "| a | b |"


@pytest.mark.skipif(
    bool(os.environ.get("TEST_DATABASE_URL")),
    reason="the table describes the bundled embedded server, not TEST_DATABASE_URL",
)
def test_the_readme_tested_with_table_is_this_install(db):
    readme = versions.readme_table((PROJECT_DIR / "README.md").read_text())
    expected = versions.table(versions.rows(db.info()))
    # Python's patch level is the machine's, not the lock's: compare major.minor only.
    patch = re.compile(r"^(\| Python \| \d+\.\d+)\.\d+", re.M)
    assert patch.sub(r"\1", readme) == patch.sub(r"\1", expected), (
        "run `make tested-with` after changing the locks"
    )
