"""Actions (decisions.md §12): which pairings exist, and that every other one fails at once.

An invalid pairing is a ``ValueError`` when the guard is built (``Guard``, the middleware, the
sidecar app) and a usage error (exit 2) in the CLI, never something found on a request.
"""

from __future__ import annotations

import itertools
import json

import pytest

from modelguard import Catalog, Guard, ModelGuardMiddleware
from modelguard.actions import ACTIONS, ACTIONS_BY_KEY, KEYS, PRESETS, resolve_actions
from modelguard.cli import main
from modelguard.serve.sidecar import create_app

from .conftest import ALL_TAGS

VALID = {("cache_control", "strip"), ("thinking", "strip"), ("max_tokens", "clamp")} | {
    (key, action) for key in (*ALL_TAGS, "max_tokens") for action in ("refuse", "allow")}
PAIRS = list(itertools.product((*ALL_TAGS, "max_tokens"), ACTIONS))


def test_keys_are_every_tag_and_the_output_cap() -> None:
    assert set(KEYS) == {*ALL_TAGS, "max_tokens"}
    assert {(k, a) for k, allowed in ACTIONS_BY_KEY.items() for a in allowed} == VALID


@pytest.mark.parametrize(("key", "action"), PAIRS, ids=[f"{k}={a}" for k, a in PAIRS])
def test_every_pairing_is_accepted_or_refused_at_construction(key: str, action: str) -> None:
    catalog = Catalog.default()
    if (key, action) in VALID:
        guard = Guard(catalog, actions={key: action})
        assert dict(guard.actions) == ({} if action == "refuse" else {key: action})
        ModelGuardMiddleware(lambda *a: None, catalog, actions={key: action})
        return
    for build in (lambda: Guard(catalog, actions={key: action}),
                  lambda: ModelGuardMiddleware(lambda *a: None, catalog, actions={key: action}),
                  lambda: create_app("http://127.0.0.1:9", catalog, actions={key: action})):
        with pytest.raises(ValueError, match=f"{key} cannot be '{action}'"):
            build()


@pytest.mark.parametrize("actions", [
    {"cache-control": "strip"}, {"vision ": "allow"}, {"max_output_tokens": "clamp"},
    {"thinking": "drop"}, {"thinking": "STRIP"}, {"thinking": None}, {1: "allow"},
    "compatible", "", ["thinking"],
])
def test_unknown_keys_actions_and_presets_are_refused(actions: object) -> None:
    with pytest.raises(ValueError) as info:
        Guard(Catalog.default(), actions=actions)  # type: ignore[arg-type]
    assert "thinking" in str(info.value) or "compat" in str(info.value) \
        or "preset" in str(info.value) or "unknown" in str(info.value)


def test_compat_preset() -> None:
    assert dict(PRESETS["compat"]) == {"cache_control": "strip", "thinking": "strip",
                                       "max_tokens": "clamp"}
    assert dict(Guard(Catalog.default(), actions="compat").actions) == dict(PRESETS["compat"])
    assert resolve_actions(None) == {}
    # refuse entries are the default and are left out
    assert dict(resolve_actions({"vision": "refuse", "audio": "allow"})) == {"audio": "allow"}


def test_the_action_table_cannot_be_changed_from_outside() -> None:
    with pytest.raises(TypeError):
        PRESETS["compat"]["vision"] = "allow"  # type: ignore[index]
    guard = Guard(Catalog.default(), actions={"vision": "allow"})
    with pytest.raises(TypeError):
        guard.actions["audio"] = "allow"  # type: ignore[index]


def _request_file(tmp_path) -> str:
    path = tmp_path / "req.json"
    path.write_text(json.dumps({"method": "POST", "path": "/v1/chat/completions", "body": {
        "model": "gpt-5-4", "max_tokens": 99999, "messages": [{"role": "user", "content": "x"}],
    }}))
    return str(path)


@pytest.mark.parametrize("flags", [
    ["--action", "vision=strip"], ["--action", "max_tokens=strip"],
    ["--action", "thinking=clamp"], ["--action", "thinking"], ["--action", "=allow"],
    ["--action", "nope=allow"], ["--actions", "compat", "--action", "tool_use=clamp"],
])
def test_cli_invalid_pairings_exit_2(tmp_path, capsys, flags: list[str]) -> None:
    assert main(["check", *flags, _request_file(tmp_path)]) == 2
    assert main(["serve", "--upstream", "http://127.0.0.1:9", *flags]) == 2
    err = capsys.readouterr().err
    assert "modelguard check:" in err and "modelguard serve:" in err


def test_cli_unknown_preset_is_a_usage_error(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check", "--actions", "lenient", _request_file(tmp_path)])
    assert info.value.code == 2
    assert "compat" in capsys.readouterr().err


def test_cli_check_applies_actions(tmp_path, capsys) -> None:
    file = _request_file(tmp_path)
    assert main(["check", file]) == 1
    assert "REFUSED 400 max_tokens_exceeded" in capsys.readouterr().out
    assert main(["check", "--action", "max_tokens=clamp", "--json", file]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["allowed"] and row["adjustments"] == ["max_tokens=16384"]
    assert row["violations"] == [{"reason": "max_tokens_exceeded", "key": "max_tokens",
                                  "path": "max_tokens", "action": "clamp"}]
    # a later --action overrides the preset
    assert main(["check", "--actions", "compat", "--action", "max_tokens=refuse", file]) == 1
