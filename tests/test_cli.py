"""The ``modelguard`` command line: check (exit 0/1/2) and catalog."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from modelguard.cli import main

from .conftest import model_entry
from .gateway import Gateway
from .upstream import serve

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"
KEY = "sk-byts-cli-key-123"


def request(model: str, content: object = "hi") -> dict:
    return {"method": "POST", "path": "/v1/chat/completions",
            "headers": {"content-type": "application/json"},
            "body": {"model": model, "messages": [{"role": "user", "content": content}]}}


def test_examples_folder_mixes_allowed_and_refused(capsys) -> None:
    assert main(["check", str(EXAMPLES)]) == 1
    out = capsys.readouterr().out.splitlines()
    files = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".json", ".jsonl"))
    assert len(out) >= len(files)
    assert any(": allowed " in line for line in out)
    # a retired slug is no typo: the key's models of that family are offered as such
    retired = next(line for line in out if "retired-slug" in line)
    assert ": REFUSED 400 unsupported_model" in retired and "Did you mean" not in retired
    assert "Other claude models this key can use instead: " in retired
    # a dotted Gemini slug is a spelling of a model the key has
    assert any(": REFUSED 400 UNSUPPORTED_MODEL" in line and "Did you mean 'gemini-" in line
               for line in out)
    assert any("UNSUPPORTED_CAPABILITY" in line for line in out)


def test_all_allowed_exits_0_and_json_lines(tmp_path, capsys) -> None:
    file = tmp_path / "ok.jsonl"
    file.write_text("\n".join(json.dumps(request(m)) for m in ("gpt-5-4", "claude-sonnet-4-6")))
    assert main(["check", "--json", str(file)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["source"] for r in rows] == [f"{file}:1", f"{file}:2"]
    assert all(r["allowed"] and r["status"] == 200 and r["error"] is None for r in rows)


def test_refused_exits_1_with_the_envelope(tmp_path, capsys) -> None:
    file = tmp_path / "bad.json"
    image = [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]
    file.write_text(json.dumps(request("glm-5", image), indent=2))
    assert main(["check", "--json", str(file)]) == 1
    row = json.loads(capsys.readouterr().out)
    assert (row["source"], row["allowed"], row["status"]) == (str(file), False, 400)
    assert row["error"]["error"]["code"] == "unsupported_capability"
    assert row["error"]["error"]["param"] == "messages[0].content[0]"


def test_stdin(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(request("no-such-model"))))
    assert main(["check", "-"]) == 1
    assert "<stdin>: REFUSED 400 unsupported_model" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["check"],
    ["check", "/no/such/file.json"],
    ["check", "--catalog", "/no/such/catalog.json", str(EXAMPLES)],
    [],
])
def test_bad_usage_or_unreadable_input_exits_2(argv, capsys) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err


def test_unreadable_record_exits_2(tmp_path, capsys) -> None:
    file = tmp_path / "mixed.jsonl"
    file.write_text(json.dumps(request("gpt-5-4")) + "\n{not json\n" + json.dumps([1, 2]) + "\n")
    assert main(["check", str(file)]) == 2
    captured = capsys.readouterr()
    assert "allowed" in captured.out and f"{file}:2" in captured.err and f"{file}:3" in captured.err


def test_catalog_file_option(tmp_path, capsys) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"object": "list", "data": [model_entry("only-one", set())]}))
    file = tmp_path / "r.jsonl"
    file.write_text(json.dumps(request("only-one")) + "\n" + json.dumps(request("gpt-5-4")))
    assert main(["check", "--catalog", str(catalog), str(file)]) == 1
    out = capsys.readouterr().out
    assert "r.jsonl:1: allowed" in out and "r.jsonl:2: REFUSED" in out


def test_console_entry_point_runs_the_examples() -> None:
    done = subprocess.run([sys.executable, "-m", "modelguard", "check", str(EXAMPLES)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "REFUSED" in done.stdout and "allowed" in done.stdout


# -- against a stand-in gateway -------------------------------------------------------------------


@pytest.fixture
def gateway(monkeypatch):
    gw = Gateway()
    gw.set_models(KEY, model_entry("vision-model", {"vision", "streaming"}, "openai"),
                  model_entry("claude-x", {"thinking"}, "anthropic"))
    gw.catalogs[KEY][1]["family"] = "claude"
    with serve(gw.app()) as served:
        monkeypatch.setenv("BYTESPIKE_API_KEY", KEY)
        monkeypatch.delenv("BYTESPIKE_BASE_URL", raising=False)
        yield gw, served.url


def test_check_with_a_url_catalog(gateway, tmp_path, capsys) -> None:
    gw, url = gateway
    file = tmp_path / "r.jsonl"
    file.write_text(json.dumps(request("vision-model")) + "\n" + json.dumps(request("gpt-5-4")))
    assert main(["check", "--catalog", url, str(file)]) == 1
    assert gw.hits[KEY] == 1


def test_catalog_table_json_and_filters(gateway, capsys) -> None:
    _, url = gateway
    assert main(["catalog", "--base-url", url]) == 0
    table = capsys.readouterr().out
    assert "vision-model" in table and "claude-x" in table and "2 models" in table
    assert main(["catalog", "--base-url", url, "--json", "--capability", "vision",
                 "--capability", "streaming"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [m["id"] for m in listing["data"]] == ["vision-model"]
    assert main(["catalog", "--base-url", url, "--json", "--family", "CLAUDE"]) == 0
    assert [m["id"] for m in json.loads(capsys.readouterr().out)["data"]] == ["claude-x"]
    assert main(["catalog", "--base-url", url, "--json", "--family", "Anthropic"]) == 0
    assert [m["id"] for m in json.loads(capsys.readouterr().out)["data"]] == ["claude-x"]


def test_catalog_refused_key_and_unreachable_gateway(gateway, monkeypatch, capsys) -> None:
    _, url = gateway
    monkeypatch.setenv("BYTESPIKE_API_KEY", "sk-byts-wrong")
    assert main(["catalog", "--base-url", url]) == 1
    err = capsys.readouterr().err
    assert "401" in err and "sk-byts-wrong" not in err
    monkeypatch.setenv("BYTESPIKE_BASE_URL", "http://127.0.0.1:9")
    assert main(["catalog"]) == 1
    assert "unavailable" in capsys.readouterr().err
    monkeypatch.delenv("BYTESPIKE_API_KEY")
    assert main(["catalog", "--base-url", url]) == 2


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path: Path) -> None:
    """``modelguard check ... | head -1``: the pipe closes, the command ends quietly."""
    request = json.loads((EXAMPLES / "openai-chat-allowed.json").read_text())
    many = tmp_path / "many.jsonl"  # far more output than a pipe buffers
    many.write_text((json.dumps(request) + "\n") * 5000)
    check = subprocess.Popen([sys.executable, "-m", "modelguard", "check", str(many)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    assert check.stdout is not None and check.stderr is not None
    first = check.stdout.readline()
    check.stdout.close()  # the reader leaves after one line
    errors = check.stderr.read()
    assert check.wait(timeout=60) in (0, 1)
    assert first and b"Traceback" not in errors and b"BrokenPipeError" not in errors
