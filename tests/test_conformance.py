"""The JSONTestSuite parsing corpus through both strict decoders (decisions.md §8, §11).

Every file of ``test_parsing/`` goes through the accelerated decoder and the pure-Python one:
they must give the same answer (the same reason when they refuse, the same value when they
accept). ``n_`` files must be refused. ``y_`` files must be accepted, except the ones listed in
``REFUSED_ON_PURPOSE`` with the I-JSON rule that refuses them. ``i_`` files (the standard leaves
them to the parser) get the answer recorded in ``I_ACCEPTED`` (everything else is refused).

The corpus is written by others and lives next to the project: ``../shared/testdata`` seen from
the project root (the first ancestor of the project root that has ``shared/testdata``, so a
checkout in a worktree finds it too). Without it the tests are skipped, saying so.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from modelguard.body import ACCELERATED, BodyError, parse_json
from modelguard.errors import Reason
from modelguard.policy import DEFAULT_MAX_DEPTH
from tests.test_decoders import same_value

ROOT = Path(__file__).resolve().parents[1]
CORPUS_FILES = 318


def _find_testdata() -> Path | None:
    """``shared/testdata`` beside the project root (or beside one of its ancestors)."""
    for parent in ROOT.parents:
        candidate = parent / "shared" / "testdata"
        if candidate.is_dir():
            return candidate
    return None


TESTDATA = _find_testdata()
CORPUS = TESTDATA / "JSONTestSuite" / "test_parsing" if TESTDATA is not None else None
FILES = sorted(CORPUS.iterdir()) if CORPUS is not None and CORPUS.is_dir() else []

pytestmark = [
    pytest.mark.skipif(not FILES, reason="the JSONTestSuite corpus is absent: expected "
                       "../shared/testdata/JSONTestSuite/test_parsing/ beside the project root"),
]

#: Valid JSON that I-JSON (RFC 7493), and so this guard, refuses, and why.
REFUSED_ON_PURPOSE = {
    "y_object_duplicated_key.json":
        "duplicate keys: two readers may keep different copies (RFC 7493 §2.3)",
    "y_object_duplicated_key_and_value.json":
        "duplicate keys, even with equal values: refused before anyone has to pick one",
}

#: Implementation-defined inputs this guard accepts; every other ``i_`` file is refused (lone
#: or broken surrogates, invalid or non-UTF-8 text, a BOM, numbers that round to infinity as a
#: double, nesting beyond the depth limit).
I_ACCEPTED = {
    "i_number_double_huge_neg_exp.json": "underflows to 0.0, within double range",
    "i_number_real_underflow.json": "underflows to 0.0, within double range",
    "i_number_too_big_neg_int.json": "beyond 64 bits but within double range",
    "i_number_too_big_pos_int.json": "beyond 64 bits but within double range",
    "i_number_very_big_negative_int.json": "beyond 64 bits but within double range",
}


def outcome(raw: bytes, accelerated: bool) -> tuple[str, object]:
    try:
        return "ok", parse_json(raw, DEFAULT_MAX_DEPTH, accelerated=accelerated)
    except BodyError as error:
        return "refused", error.reason


def _ids(path: Path) -> str:
    return path.name


def test_the_whole_corpus_is_there() -> None:
    assert len(FILES) == CORPUS_FILES
    names = {path.name for path in FILES}
    assert set(REFUSED_ON_PURPOSE) <= names
    assert set(I_ACCEPTED) <= names


@pytest.mark.skipif(not ACCELERATED, reason="the C accelerator is not built here")
@pytest.mark.parametrize("path", FILES, ids=_ids)
def test_both_decoders_agree(path: Path) -> None:
    raw = path.read_bytes()
    fast, slow = outcome(raw, True), outcome(raw, False)
    assert fast[0] == slow[0], (path.name, fast, slow)
    if fast[0] == "ok":
        assert same_value(fast[1], slow[1]), path.name
    else:
        assert fast[1] == slow[1] == Reason.INVALID, (path.name, fast, slow)


@pytest.mark.parametrize("path", FILES, ids=_ids)
def test_expected_answer(path: Path) -> None:
    verdict, _ = outcome(path.read_bytes(), True)
    name = path.name
    if name.startswith("n_"):
        assert verdict == "refused", f"{name} is not JSON but was accepted"
    elif name.startswith("y_"):
        expected = "refused" if name in REFUSED_ON_PURPOSE else "ok"
        assert verdict == expected, (name, REFUSED_ON_PURPOSE.get(name, "valid JSON"))
    else:
        assert name.startswith("i_"), name
        assert verdict == ("ok" if name in I_ACCEPTED else "refused"), name
