"""Packaging and the public surface: the distribution name, license metadata, what the sdist and
wheels carry, ``--version``, ``doctor``, the exported names and their types, and the docs nav.

Building and installing from a fresh clone is ``.ci/package`` (it needs the network)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
import typing
from pathlib import Path

import pytest

import modelguard
from modelguard import Guard, ModelGuardMiddleware
from modelguard.cli import doctor_report, main

ROOT = Path(__file__).parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def test_distribution_name_is_not_the_taken_one_and_used_everywhere():
    assert PROJECT["name"] == modelguard.DISTRIBUTION == "modelguard-gateway"
    sources = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
               *sorted((ROOT / "modelguard").rglob("*.py"))]
    for path in sources:
        text = path.read_text()
        # every install command names the distribution, never the unrelated `modelguard`
        assert not re.search(r"pip install ['\"]?modelguard(\[|['\"\s]|$)", text, re.M), path


def test_license_is_an_spdx_string_with_its_file():
    assert PROJECT["license"] == "MIT"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert not any(c.startswith("License ::") for c in PROJECT["classifiers"])
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(PROJECT["urls"])


def test_wheels_carry_no_c_source_and_the_sdist_its_tests():
    excluded = PYPROJECT["tool"]["setuptools"]["exclude-package-data"]["modelguard"]
    assert "*.c" in excluded
    manifest = (ROOT / "MANIFEST.in").read_text().split("\n")
    assert {"graft tests", "graft examples", "graft docs"} <= set(manifest)
    tracked = subprocess.run(["git", "ls-files", "modelguard"], cwd=ROOT, capture_output=True,
                             text=True, check=False).stdout.split()
    assert not [name for name in tracked if name.endswith((".so", ".pyd", ".o"))]


def test_every_test_dependency_is_in_the_test_extra():
    test_extra = {re.split(r"[<>=\[]", req)[0].lower().replace("_", "-")
                  for req in PROJECT["optional-dependencies"]["test"]}
    assert {"fastapi", "httpx2", "uvicorn", "httptools", "hypothesis", "atheris", "redis",
            "anthropic", "openai", "google-genai", "prometheus-client", "build"} <= test_extra
    docs = {re.split(r"[<>=\[]", req)[0] for req in PROJECT["optional-dependencies"]["docs"]}
    assert {"mkdocs", "mkdocs-material", "mkdocstrings"} <= docs


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == \
        f"modelguard {modelguard.__version__} (modelguard-gateway)"
    assert modelguard.__version__ == PROJECT["version"]


def test_doctor_names_versions_accelerator_and_http_stack(capsys):
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == doctor_report()
    assert report["modelguard"].startswith(modelguard.__version__)
    assert report["accelerator"].startswith("C" if modelguard.ACCELERATED else "none")
    assert report["http client"]["httpx2"] is not None
    assert report["server"]["uvicorn"] is not None
    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    assert "accelerator" in text and "http client" in text


def test_python_m_modelguard_version():
    out = subprocess.run([sys.executable, "-m", "modelguard", "--version"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.startswith("modelguard ")


def test_public_names_and_types():
    for name in ("ACCELERATED", "Violation", "Reason", "Mode", "CatalogLike", "Verdict",
                 "Guard", "ModelGuardMiddleware", "RemoteCatalog", "Catalog"):
        assert name in modelguard.__all__ and hasattr(modelguard, name)
    assert isinstance(modelguard.ACCELERATED, bool)
    assert typing.get_args(modelguard.Mode) == ("enforce", "report")
    assert set(typing.get_args(modelguard.CatalogLike)) >= {modelguard.Catalog,
                                                            modelguard.CatalogSource, str}
    for cls in (Guard, ModelGuardMiddleware):
        hints = typing.get_type_hints(cls.__init__)
        assert hints["mode"] == modelguard.Mode
        assert hints["catalog"] == modelguard.CatalogLike


def test_docs_nav_names_every_page_and_every_page_is_in_the_nav():
    text = (ROOT / "mkdocs.yml").read_text()
    nav = set(re.findall(r":\s+([\w-]+\.md)\s*$", text, re.M))
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert nav == pages
    assert {"reliability.md", "routes.md", "policy.md", "agents.md", "client.md",
            "performance.md", "sidecar.md", "catalogs.md", "middleware.md",
            "reference.md", "getting-started.md"} <= nav


def test_readme_is_short_and_its_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert "pip install -e '.[test]' && python -m pytest" in readme
    assert "pip install . && modelguard check examples/" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\npython -m pytest\n" in ci and "mkdocs build --strict" in ci
    # users do not have the specification: no citation of its files
    assert not re.search(r"(?<!docs/)\b(decisions|threats|protocols|upstream)\.md", readme)
