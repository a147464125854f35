"""Route canonicalization (decisions.md §1): nothing a lenient router matches slips past."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelguard.routing import canonical_path, is_post, match_route


@pytest.mark.parametrize(("path", "kind"), [
    ("/v1/messages", "messages"),
    ("/v1/messages/", "messages"),
    ("//v1///messages", "messages"),
    ("/v1/./messages", "messages"),
    ("/v1/x/../messages", "messages"),
    ("/v1/x/%2e%2e/messages", "messages"),
    ("/v1/%6Dessages", "messages"),
    ("/V1/MESSAGES", "messages"),
    ("http://evil.test/v1/messages", "messages"),
    ("HTTPS://evil.test:8443/v1/messages?beta=true", "messages"),
    ("/v1/messages#frag", "messages"),
    ("/v1/messages/count_tokens", "count_tokens"),
    ("/v1\\messages", "messages"),
    ("/chat/completions", "chat"),
    ("/v1/chat/completions/", "chat"),
    ("/v1/images/generations", "images"),
    ("/v1/videos/generations", "videos"),
    ("/v1beta/models/gemini-3-flash:generateContent", "generateContent"),
    ("/v1/models/gemini-3-flash:streamGenerateContent?alt=sse", "streamGenerateContent"),
    ("/v1alpha/models/gemini-3-flash:countTokens", "countTokens"),
    ("/v1beta/models%2Fgemini-3-flash%3AgenerateContent", "generateContent"),
    ("/v1beta/models/gemini-3-flash:GENERATECONTENT", "generateContent"),
])
def test_guarded(path: str, kind: str) -> None:
    route = match_route(path)
    assert route is not None and route.kind == kind


@pytest.mark.parametrize("path", [
    "/v1/models", "/v1/messages/batches", "/v1/embeddings", "/v1/responses/resp_1", "/healthz",
    "/v1beta/models/gemini-3-flash:embedContent", "/v2/messages", "/v1/messagesx",
    "/v1beta/models/gemini-3-flash:generateContent/extra", "/v1/chat/completions/x",
])
def test_not_guarded(path: str) -> None:
    assert match_route(path) is None


@pytest.mark.parametrize(("path", "model"), [
    ("/v1beta/models/gemini-3-flash:generateContent", "gemini-3-flash"),
    ("/v1beta/models/models/x:generateContent", "models/x"),
    ("/v1beta/tunedModels/abc:generateContent", "tunedModels/abc"),
    ("/v1beta/dynamic/abc:generateContent", "dynamic/abc"),
    ("/v1beta/models/a:b:generateContent", "a:b"),
    ("/v1beta/models/Gemini-3-Flash:generateContent", "Gemini-3-Flash"),
    ("/v1beta/models/gemini%202.5:generateContent", "gemini 2.5"),
])
def test_gemini_model_is_taken_as_written(path: str, model: str) -> None:
    route = match_route(path)
    assert route is not None and route.model == model


def test_root_path_is_removed() -> None:
    assert match_route("/proxy/v1/messages", root_path="/proxy").kind == "messages"
    assert match_route("/v1/messages", root_path="/proxy").kind == "messages"
    # an app mounted at /v1 still forwards /v1/messages: that reading is matched too
    assert match_route("/v1/messages", root_path="/v1").kind == "messages"


def test_matrix_parameters_are_a_reading_too() -> None:
    assert match_route("/v1/messages;jsessionid=1").kind == "messages"
    assert match_route("/v1;x/chat/completions;y").kind == "chat"
    route = match_route("/v1beta/models/gemini-3-flash;x:generateContent")
    assert route is not None and route.model == "gemini-3-flash;x"


def test_models_collection_is_case_folded_like_the_route() -> None:
    assert match_route("/V1BETA/MODELS/gemini-3-flash:GENERATECONTENT").model == "gemini-3-flash"


def test_two_readings_that_disagree_are_ambiguous() -> None:
    raw, decoded = "/v1beta/models/a%253Ab:generateContent", "/v1beta/models/a%3Ab:generateContent"
    route = match_route(raw, decoded)
    assert route is not None and route.ambiguous
    assert not match_route("/v1/messages", "/v1/messages").ambiguous


def test_readings_checked_alike_are_not_ambiguous() -> None:
    """``//v1beta//openai/...`` also reads as a network path to ``/chat/completions``: another
    row, but checked exactly alike, so the plain reading's route is kept."""
    target = "http://example.com//v1beta//openai/c%68at/completions?beta=true"
    route = match_route(target)
    assert route == match_route("/v1beta/openai/chat/completions")
    assert not route.ambiguous
    # A network-path reading that lands on a route checked differently stays ambiguous.
    assert match_route("//v1//models/v1/models/x:generateContent").ambiguous  # model x or v1/..


def test_method_override() -> None:
    assert is_post("post", [])
    assert not is_post("GET", [])
    assert is_post("GET", [("x-http-method-override", " post ")])
    assert not is_post("GET", [("x-http-method-override", "DELETE")])


_segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~%/:", max_size=12)


@given(st.lists(_segment, max_size=6), st.sampled_from(["/v1/messages", "/v1/chat/completions",
                                                         "/chat/completions"]))
def test_any_prefix_that_resolves_away_still_matches(junk: list[str], target: str) -> None:
    """``/a/b/../../<route>`` and friends resolve to the route, whatever the junk."""
    clean = [s.replace("/", "").replace("%", "").replace(".", "x") or "x" for s in junk]
    path = "/" + "/".join(clean) + "/" + "/".join([".."] * len(clean)) + target
    assert match_route(path) is not None


@given(st.text(max_size=80))
def test_canonical_path_is_total_and_idempotent_on_its_output_shape(path: str) -> None:
    canonical = canonical_path(path)
    assert canonical.startswith("/")
    assert "//" not in canonical
    assert "/./" not in canonical + "/" and "/../" not in canonical + "/"
