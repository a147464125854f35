"""The accelerated decoder lets other threads run while it reads a large body.

A large body is inspected in a worker thread so that the event loop keeps serving; that only
helps if the decoder does not hold the GIL for the whole body. It releases it while scanning a
long string (base64 media are most of a large body) and hands it to a waiting thread every
64 KiB of a body of small values. These tests watch another thread's progress during a single
``loads`` call (never durations), and check that reading across the release points changes
nothing: the same answers, errors and error positions, for both decoders.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable

import pytest

from modelguard import body as body_module
from modelguard.body import ACCELERATED, BodyError, parse_json

from .test_decoders import agree

pytestmark = pytest.mark.skipif(not ACCELERATED, reason="the C accelerator is not built here")

#: The decoder's release point (RELEASE_AFTER and YIELD_BYTES in _strictjson.c).
RELEASE = 64 * 1024
#: A string this long is scanned mostly with the GIL released.
LONG = 8 * 1024 * 1024
#: Bounds on the calls each test makes.
TRIES = 200


def _loads(raw: bytes, budget: int = 1 << 30) -> Callable[[], object]:
    def call() -> object:
        try:
            return body_module._strictjson.loads(raw, 128, budget)
        except ValueError as error:  # StrictJSONError / StructureLimitError
            return error
    return call


def _steps_while_released(call: Callable[[], object]) -> int:
    """How far another thread got while ``call`` ran, with forced switching off.

    The switch interval is made longer than the test, so the other thread, woken and waiting
    for the GIL, can only take it when ``call`` releases it of its own accord: never between
    bytecodes, and never in the few bytecodes around the call. ``call`` is retried (a bounded
    number of times) until the other thread got in, since it needs a moment to wake up."""
    counter = [0]
    go, done = threading.Event(), threading.Event()

    def other() -> None:
        go.wait()
        while counter[0] < 1000 and not done.is_set():
            counter[0] += 1
        done.wait()  # blocks, so it never holds the GIL for long

    interval = sys.getswitchinterval()
    thread = threading.Thread(target=other, daemon=True)
    thread.start()
    sys.setswitchinterval(120.0)
    try:
        go.set()
        before = counter[0]
        for _ in range(TRIES):
            call()
            if counter[0] != before:
                break
        return counter[0] - before
    finally:
        done.set()
        thread.join()
        sys.setswitchinterval(interval)


def _turns_during(call: Callable[[], object]) -> int:
    """How many times a thread asking for the GIL got it during one ``call`` (the most over a
    few calls). The other thread takes one step per turn and gives the GIL back at once; the
    switch interval is made short, so it asks again soon after."""
    counter = [0]
    done = threading.Event()

    def other() -> None:
        while not done.is_set():
            counter[0] += 1
            time.sleep(0)  # gives the GIL back: one step per turn

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    thread = threading.Thread(target=other, daemon=True)
    thread.start()
    best = 0
    try:
        for _ in range(5):
            before = counter[0]
            call()
            best = max(best, counter[0] - before)
    finally:
        done.set()
        thread.join()
        sys.setswitchinterval(interval)
    return best


def test_the_probe_sees_nothing_when_the_gil_is_held() -> None:
    """The measure itself: a long call that never releases the GIL lets nothing in."""
    assert _steps_while_released(lambda: bytes(bytearray(LONG))) == 0


def _escaped(size: int) -> bytes:
    line = b"x" * 70 + b"\\n"
    return line * (size // len(line))


@pytest.mark.parametrize("raw", [
    b'{"data":"' + b"QUJD" * (LONG // 4) + b'"}',                       # base64, dropped
    b'{"url":"data:image/png;base64,' + b"QUJD" * (LONG // 4) + b'"}',  # a data: URL's head
    b'{"text":"' + _escaped(LONG) + b'"}',                               # escapes, measured only
    b'{"k":"' + _escaped(LONG // 4) + b'"}',                             # escapes, unescaped
    b'{"k":"' + "é€😀".encode() * (LONG // 36) + b'"}',                 # UTF-8, built
    b'{"parameters":{"a":"' + b"QUJD" * (LONG // 4) + b'"}}',           # inside a skipped subtree
    b'{"data":"' + b"QUJD" * (LONG // 4) + b'\x01"}',                  # an error past the release
    b'{"data":"' + b"QUJD" * (LONG // 4),                                # unterminated
], ids=["base64", "data-url", "escaped-measured", "escaped-built", "utf8", "skipped",
        "control-char", "unterminated"])
def test_the_gil_is_released_while_a_long_string_is_scanned(raw: bytes) -> None:
    assert _steps_while_released(_loads(raw)) > 0


def _dense_objects(size: int) -> bytes:
    return b'{"pad":[' + b",".join([b'{"a":1}'] * (size // 8)) + b"]}"


def _schema(size: int) -> bytes:
    members = b",".join(b'"p%d":{"type":"string","enum":["a","b"]}' % i for i in range(size // 40))
    return b'{"tools":[{"name":"t","input_schema":{"type":"object","properties":{' + members \
        + b"}}}]}"


@pytest.mark.parametrize(("raw", "budget"), [
    (b'{"k":[' + b"1," * (LONG // 4) + b"1]}", 1 << 30),      # built
    (_schema(LONG * 2), 1 << 30),                              # validated, not built (fast:
                                                               # a larger body for as many turns)
    (_dense_objects(LONG // 2), body_module.BUDGET_FLOOR),     # over budget: validated only
], ids=["built", "skipped", "over-budget"])
def test_a_body_of_small_values_hands_the_gil_over(raw: bytes, budget: int) -> None:
    """No long string to release it for: the decoder still gives a waiting thread a turn
    every 64 KiB; without that, it could get one only around the call (at most two)."""
    assert _turns_during(_loads(raw, budget)) > 4


# -- the same answers across the release point ---------------------------------------------

_PIECES = [b"A", b"\\n", b"\\u00e9", b"\\ud83d\\ude00", "é".encode(), "😀".encode(), b"\\/"]
_ERRORS = [b"\x01", b"\\x", b"\\u12", b"\\ud800", b"\\udc00x", b"\xc3", b"\xff", b"\xed\xa0\x80",
           b"\\ud800\\u0041"]


def _text(size: int, seed: int) -> bytes:
    """``size`` bytes or a few more of string content: mostly plain, some escapes and UTF-8."""
    out = bytearray()
    i = seed
    while len(out) < size:
        out += b"A" * (1 + (i * 7919) % 3000) if i % 5 else _PIECES[i % len(_PIECES)]
        i += 1
    return bytes(out)


_SIZES = [RELEASE - 40, RELEASE - 3, RELEASE - 1, RELEASE, RELEASE + 1, RELEASE + 5,
          3 * RELEASE + 7]


@pytest.mark.parametrize("size", _SIZES)
@pytest.mark.parametrize("key", [b"data", b"url", b"k", b"parameters"])
def test_strings_across_the_release_point_read_the_same(size: int, key: bytes) -> None:
    text = _text(size, size)
    for raw in (b'{"%s":"%s"}' % (key, text), b'{"%s":{"%s":1}}' % (key, text),
                b'["%s","%s"]' % (text, text)):
        agree(raw)


@pytest.mark.parametrize("size", _SIZES)
@pytest.mark.parametrize("error", _ERRORS)
def test_errors_past_the_release_point_are_found_where_they_are(size: int, error: bytes) -> None:
    """An error found while the GIL was released is reported once it is held again, at the
    same byte, by the accelerated decoder; both decoders refuse the body."""
    text = _text(size + 8, size)
    for at in (size // 2, size - 2, size + 1):
        body = text[:at]
        body = body[:body.rindex(b"A") + 1]  # whole pieces: none of them holds an "A"
        raw = b'{"data":"' + body + error + b'"}'
        agree(raw)
        with pytest.raises(BodyError) as info:
            parse_json(raw, 128)
        position = int(re.search(r"at byte (\d+)", info.value.message).group(1))
        assert len(b'{"data":"') + len(body) <= position <= len(raw)
        assert position <= len(b'{"data":"') + len(body) + len(error)


@pytest.mark.parametrize("size", [RELEASE - 1, RELEASE, RELEASE + 1, 3 * RELEASE])
def test_an_unterminated_long_string_is_refused(size: int) -> None:
    for raw in (b'{"data":"' + b"A" * size, b'{"data":"' + b"A" * size + b"\\",
                b'{"k":"' + b"A\\n" * size):
        agree(raw)
        with pytest.raises(BodyError, match="unterminated string"):
            parse_json(raw, 128)
