"""The four coding-agent CLIs: pinned versions, installing them, and running each one
non-interactively against a base URL (offline, in a throw-away HOME, bounded in time).

Every recipe here is the one docs/agents.md documents: the same environment variables, settings
files and flags.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CLIENTS", "FAKE_KEY", "PREFIX", "AgentRun", "install", "missing", "run_agent"]

ROOT = Path(__file__).resolve().parents[2]
#: Where the CLIs are installed (ignored by git); MODELGUARD_CLIENTS_PREFIX moves it.
PREFIX = Path(os.environ.get("MODELGUARD_CLIENTS_PREFIX", ROOT / ".clients"))
#: npm package and pinned version per client.
PACKAGES = {
    "claude": ("@anthropic-ai/claude-code", "2.1.332"),
    "gemini": ("@google/gemini-cli", "0.61.0"),
    "codex": ("@openai/codex", "0.171.0"),
    "qwen": ("@qwen-code/qwen-code", "0.24.4"),
}
CLIENTS = tuple(PACKAGES)
#: The credential every client is given (and that fixtures carry in place of a real one).
FAKE_KEY = "sk-byts-modelguard-test-0000000000000000"
INSTALL_TIMEOUT = 900
RUN_TIMEOUT = 120
#: Environment the clients never get from the caller (real keys, proxies, endpoints).
_STRIP_PREFIXES = ("ANTHROPIC_", "OPENAI_", "GEMINI_", "GOOGLE_", "CODEX_", "QWEN_", "CLAUDE",
                   "DASHSCOPE_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy",
                   "https_proxy", "all_proxy")
_QUIET = {
    "NO_COLOR": "1", "CI": "1", "TERM": "dumb", "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
    # Claude Code: no telemetry, no update checks, no error reporting, nothing but the model calls.
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1",
    # Gemini CLI / Qwen Code: no telemetry, no update nags.
    "GEMINI_CLI_NO_RELAUNCH": "true", "QWEN_CODE_NO_RELAUNCH": "true",
}


def binary(client: str) -> Path:
    return PREFIX / "node_modules" / ".bin" / client


def _installed_version(client: str) -> str | None:
    package, _ = PACKAGES[client]
    manifest = PREFIX / "node_modules" / package / "package.json"
    try:
        return json.loads(manifest.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def missing() -> list[str]:
    """The clients not installed at their pinned version."""
    return [c for c, (_, version) in PACKAGES.items()
            if _installed_version(c) != version or not binary(c).exists()]


def install() -> None:
    """Install the pinned CLIs into PREFIX with npm (only when some are missing)."""
    if not missing():
        return
    if shutil.which("npm") is None:
        raise RuntimeError("npm is needed to install the coding-agent CLIs")
    PREFIX.mkdir(parents=True, exist_ok=True)
    manifest = PREFIX / "package.json"
    if not manifest.exists():
        manifest.write_text('{"name": "modelguard-test-clients", "private": true}\n')
    specs = [f"{package}@{version}" for package, version in PACKAGES.values()]
    subprocess.run(["npm", "install", "--prefix", str(PREFIX), "--no-audit", "--no-fund",
                    "--loglevel=error", *specs], check=True, timeout=INSTALL_TIMEOUT,
                   stdin=subprocess.DEVNULL)
    _link_claude_binary()
    if missing():
        raise RuntimeError(f"npm install left these clients missing: {missing()}")


def _link_claude_binary() -> None:
    """Claude Code's postinstall copies its native binary over a placeholder; npm versions that
    skip install scripts leave the placeholder, so do the copy here."""
    wrapper = PREFIX / "node_modules" / "@anthropic-ai" / "claude-code" / "bin" / "claude.exe"
    native = PREFIX / "node_modules" / "@anthropic-ai" / "claude-code-linux-x64" / "claude"
    if native.exists() and wrapper.exists() and wrapper.stat().st_size < 1_000_000:
        shutil.copyfile(native, wrapper)
        wrapper.chmod(0o755)


# -- running --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentRun:
    client: str
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool

    @property
    def output(self) -> str:
        return self.stdout + "\n" + self.stderr


def _base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIP_PREFIXES)}
    env.update(_QUIET, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_CACHE_HOME=str(home / ".cache"), XDG_DATA_HOME=str(home / ".local/share"),
               XDG_STATE_HOME=str(home / ".local/state"))
    return env


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def claude_command(base_url: str, model: str, prompt: str, home: Path,
                   env: dict[str, str]) -> tuple[list[str], list[str]]:
    """Claude Code: ANTHROPIC_BASE_URL is the gateway root (it appends /v1/messages)."""
    env.update(ANTHROPIC_BASE_URL=base_url, ANTHROPIC_API_KEY=FAKE_KEY)
    # Skip the first-run onboarding and the "use this API key?" question.
    _write(home / ".claude.json", json.dumps({
        "hasCompletedOnboarding": True, "bypassPermissionsModeAccepted": True,
        "customApiKeyResponses": {"approved": [FAKE_KEY[-20:]], "rejected": []}}))
    return [str(binary("claude")), "--model", model, "--output-format", "text",
            "--allowedTools", "Read"], ["-p", prompt]


def gemini_command(base_url: str, model: str, prompt: str, home: Path,
                   env: dict[str, str]) -> tuple[list[str], list[str]]:
    """Gemini CLI: GOOGLE_GEMINI_BASE_URL is the gateway root (it appends /v1beta/models/...);
    the API-key auth type must be chosen in settings.json (security.auth.selectedType)."""
    env.update(GOOGLE_GEMINI_BASE_URL=base_url, GEMINI_API_KEY=FAKE_KEY,
               GEMINI_CLI_TRUST_WORKSPACE="true")
    _write(home / ".gemini" / "settings.json", json.dumps({
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
    }, indent=2))
    return [str(binary("gemini")), "--model", model, "--output-format", "text"], ["-p", prompt]


def codex_command(base_url: str, model: str, prompt: str, home: Path,
                  env: dict[str, str]) -> tuple[list[str], list[str]]:
    """Codex CLI: a model_providers entry with wire_api = "responses" (base_url ends in /v1)."""
    codex_home = home / ".codex"
    env.update(CODEX_HOME=str(codex_home), BYTESPIKE_API_KEY=FAKE_KEY)
    _write(codex_home / "config.toml", "\n".join([
        f'model = "{model}"',
        'model_provider = "bytespike"',
        "",
        "[model_providers.bytespike]",
        'name = "ByteSpike"',
        f'base_url = "{base_url}/v1"',
        'env_key = "BYTESPIKE_API_KEY"',
        'wire_api = "responses"',
        "",
    ]))
    return [str(binary("codex")), "exec", "--skip-git-repo-check", "--model", model,
            "--dangerously-bypass-approvals-and-sandbox"], [prompt]


def qwen_command(base_url: str, model: str, prompt: str, home: Path,
                 env: dict[str, str]) -> tuple[list[str], list[str]]:
    """Qwen Code: OpenAI-compatible auth; OPENAI_BASE_URL ends in /v1."""
    env.update(OPENAI_BASE_URL=f"{base_url}/v1", OPENAI_API_KEY=FAKE_KEY, OPENAI_MODEL=model)
    _write(home / ".qwen" / "settings.json", json.dumps({
        "security": {"auth": {"selectedType": "openai"}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {"disableAutoUpdate": True},
    }, indent=2))
    return [str(binary("qwen")), "--model", model, "--auth-type", "openai",
            "--output-format", "text"], ["-p", prompt]


SETTINGS_FILES = {"claude": ".claude/settings.json", "gemini": ".gemini/settings.json",
                  "qwen": ".qwen/settings.json"}


def _merge_settings(client: str, home: Path, settings: dict[str, object]) -> None:
    """Add top-level keys to the client's user settings file (Codex: use extra_args -c)."""
    path = home / SETTINGS_FILES[client]
    doc = json.loads(path.read_text()) if path.exists() else {}
    doc.update(settings)
    _write(path, json.dumps(doc, indent=2))


COMMANDS = {"claude": claude_command, "gemini": gemini_command, "codex": codex_command,
            "qwen": qwen_command}


def run_agent(client: str, base_url: str, model: str, prompt: str, *, workdir: Path,
              timeout: float = RUN_TIMEOUT, extra_env: dict[str, str] | None = None,
              extra_args: list[str] | None = None,
              settings: dict[str, object] | None = None) -> AgentRun:
    """Run one CLI once, non-interactively, in ``workdir`` with a fresh HOME; bounded by
    ``timeout`` (the whole process group is killed past it)."""
    with tempfile.TemporaryDirectory(prefix=f"mg-{client}-home-") as tmp:
        home = Path(tmp)
        env = _base_env(home)
        head, tail = COMMANDS[client](base_url.rstrip("/"), model, prompt, home, env)
        env.update(extra_env or {})
        if settings:
            _merge_settings(client, home, settings)
        argv = [*head, *(extra_args or []), *tail]
        proc = subprocess.Popen(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        timed_out = False
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, 9)
            out, err = proc.communicate(timeout=30)
        return AgentRun(client, proc.returncode, out, err, timed_out)


if __name__ == "__main__":  # python -m tests.clients.agents: install the pinned CLIs
    install()
    print("coding-agent CLIs:", ", ".join(f"{c} {v}" for c, (_, v) in PACKAGES.items()))
