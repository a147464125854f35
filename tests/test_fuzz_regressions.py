"""Fuzzing in CI: replay every saved input, then a short bounded libFuzzer run per harness.

* Every file in ``tests/fuzz/corpus/{body,path}`` (seeds) and ``tests/fuzz/crashes/{body,path}``
  (inputs that once failed) goes through its harness's ``test_one_input``. This needs only
  pytest, not atheris. A crash input whose bug is still open is a strict xfail naming the bug
  (``KNOWN_BUGS``): when the bug is fixed it XPASSes, the test fails, and the entry goes.
* With atheris installed, each harness also runs for a bounded time in a subprocess (its own
  process, a hard timeout, a throwaway corpus and artifact directory), and must exit cleanly.
  Without atheris those tests are skipped with the reason.

Long runs are documented in tests/fuzz/README.md.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz import fuzz_body, fuzz_path

FUZZ = Path(__file__).parent / "fuzz"
HARNESSES = {"body": fuzz_body, "path": fuzz_path}
HAVE_ATHERIS = importlib.util.find_spec("atheris") is not None

#: crashes/<harness>/<file> -> the open bug it reproduces (see tests/fuzz/crashes/README.md).
KNOWN_BUGS: dict[str, str] = {}  # crash input -> "BUG: ..." while a found bug is open


def _inputs() -> list[object]:
    params = []
    for kind in ("corpus", "crashes"):
        for harness in HARNESSES:
            for path in sorted((FUZZ / kind / harness).glob("*")):
                if path.name.startswith(".") or path.suffix == ".md":
                    continue
                name = f"{harness}/{path.name}"
                marks = []
                if kind == "crashes" and name in KNOWN_BUGS:
                    marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[name]))
                params.append(pytest.param(harness, path, id=f"{kind}/{name}", marks=marks))
    return params


@pytest.mark.parametrize(("harness", "path"), _inputs())
def test_replay(harness: str, path: Path) -> None:
    HARNESSES[harness].test_one_input(path.read_bytes(), tolerate_known=False)


def test_known_bugs_have_inputs() -> None:
    """Every known bug keeps its reproducer, and the corpus has a few dozen seeds."""
    for name in KNOWN_BUGS:
        assert (FUZZ / "crashes" / name).is_file(), name
    assert len(list((FUZZ / "corpus" / "body").glob("*.bin"))) >= 30
    assert len(list((FUZZ / "corpus" / "path").glob("*.bin"))) >= 10


#: A CI fuzz run: bounded by runs and by time inside libFuzzer, and by a hard timeout outside.
CI_RUNS = int(os.environ.get("MODELGUARD_FUZZ_RUNS", "3000"))
CI_SECONDS = int(os.environ.get("MODELGUARD_FUZZ_SECONDS", "10"))


@pytest.mark.skipif(not HAVE_ATHERIS, reason="atheris is not installed (pip install atheris); "
                    "the saved inputs are still replayed by test_replay")
@pytest.mark.parametrize("harness", sorted(HARNESSES))
def test_short_fuzz_run(harness: str, tmp_path: Path) -> None:
    scratch = tmp_path / "corpus"
    scratch.mkdir()
    args = [sys.executable, str(FUZZ / f"fuzz_{harness}.py"), f"-runs={CI_RUNS}",
            f"-max_total_time={CI_SECONDS}", "-seed=1", "-timeout=20", "-rss_limit_mb=2048",
            f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"]
    if harness == "body":
        args.append(f"-dict={FUZZ / 'json.dict'}")
    # New inputs go to the scratch directory (the first); the seeds are only read.
    args += [str(scratch), str(FUZZ / "corpus" / harness)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=CI_SECONDS + 110,
                              env=env, cwd=tmp_path)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"fuzz_{harness} did not finish in time:\n{(exc.stderr or '')[-3000:]}")
    artifacts = sorted(p for p in tmp_path.iterdir()
                       if p.name.startswith(("crash-", "timeout-", "oom-", "leak-")))
    if done.returncode != 0 or artifacts:
        found = "\n".join(f"{p} = {p.read_bytes()[:2000]!r}" for p in artifacts)
        pytest.fail(f"fuzz_{harness} exited {done.returncode}; triage the input and keep it in "
                    f"tests/fuzz/crashes/{harness}/:\n{found}\n{done.stderr[-4000:]}")
    assert "Done" in done.stderr or "stat::number_of_executed_units" in done.stderr, \
        done.stderr[-2000:]
