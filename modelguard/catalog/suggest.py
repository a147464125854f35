"""What to tell a caller whose model is not in its catalog (decisions.md §12).

"Did you mean" is offered only for a *spelling* of a model the key can use: another case, dots
or underscores for dashes, a ``models/`` prefix, a date or ``-latest`` suffix, missing dashes,
or at most two typed letters wrong in the words of the slug. Numbers are never changed
(``claude-opus-4-5`` is another model, not a typo of ``claude-opus-4-8``), and a known family
word is never swapped for another (``glm-5`` is not ``gpt-5``). Anything else gets the models
of the same family or owner that the key can use, named as such: never another tier passed
off as a typo fix.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import ModelInfo

__all__ = ["family_members", "family_word", "loose", "near_spelling"]

#: The most edits (insertions, deletions, substitutions, swaps of neighbours) in the words.
MAX_EDITS = 2
#: A word shorter than this is never corrected (``pro`` → ``max`` is no typo).
MIN_WORD = 4
#: Family words of well-known model lines, beside those the catalog itself shows: a slug that
#: starts with one of them names that family, even when the key has none of its models.
KNOWN_FAMILIES = frozenset({
    "claude", "gpt", "chatgpt", "o", "davinci", "dall", "sora", "whisper", "tts", "gemini",
    "gemma", "imagen", "veo", "lyria", "nano", "deepseek", "kimi", "moonshot", "glm",
    "chatglm", "cogview", "doubao", "seed", "seedream", "seedance", "minimax", "abab", "hailuo",
    "qwen", "qwq", "qvq", "wan", "llama", "mistral", "mixtral", "codestral", "magistral",
    "pixtral", "ministral", "grok", "command", "phi", "ernie", "hunyuan", "yi", "baichuan",
    "step", "jamba", "nova", "titan", "sonar", "flux", "midjourney", "kling", "runway",
})
_DATE_SUFFIXES = (
    re.compile(r"[-@]\d{8}$"),                                        # -20250514, @20250514
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),                               # -2024-08-06
    re.compile(r"-(?:0[1-9]|1[0-2])-?(?:0[1-9]|[12]\d|3[01])$"),      # -0613, -05-06
    re.compile(r"-latest$"),
)
_SPELLING = str.maketrans({".": "-", "_": "-", " ": "-"})
_DASHES = re.compile(r"-{2,}")
_LETTERS = re.compile(r"[a-z]+")


@functools.lru_cache(maxsize=8192)
def loose(model_id: str) -> str:
    """A spelling-insensitive form, used only to suggest, never to resolve."""
    text = model_id.strip().lower().removeprefix("models/").translate(_SPELLING)
    text = _DASHES.sub("-", text).strip("-")
    for pattern in _DATE_SUFFIXES:
        text = pattern.sub("", text)
    return text


def family_word(model_id: str) -> str:
    """The word a slug starts with (``claude``, ``gpt``, ``o`` for ``o3-mini``)."""
    first = loose(model_id).split("-", 1)[0]
    match = _LETTERS.match(first)
    return match.group() if match else first


def _edits(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance, or ``limit + 1`` once it is certainly above."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def _typo_distance(slug: str, candidate: str, families: frozenset[str]) -> int | None:
    """Edits between two loose forms if one is a misspelling of the other, else None."""
    if slug == candidate or slug.replace("-", "") == candidate.replace("-", ""):
        return 0
    words, others = slug.split("-"), candidate.split("-")
    if len(words) != len(others):
        return None
    total = 0
    for index, (word, other) in enumerate(zip(words, others, strict=True)):
        if word == other:
            continue
        if len(other) < MIN_WORD or any(c.isdigit() for c in word + other):
            return None
        if index == 0 and word in families:
            return None  # another family, however close the letters
        total += _edits(word, other, MAX_EDITS - total)
        if total > MAX_EDITS:
            return None
    return total


def near_spelling(slug: str, ids: Sequence[str], extra_families: Iterable[str] = ()) -> str | None:
    """The one id that ``slug`` misspells, or None (none, or two equally close)."""
    wanted = loose(slug[:128])
    families = KNOWN_FAMILIES.union(extra_families)
    best: list[str] = []
    best_distance = MAX_EDITS + 1
    for model_id in ids:
        distance = _typo_distance(wanted, loose(model_id), families)
        if distance is None or distance > best_distance:
            continue
        if distance == 0:
            return model_id
        if distance < best_distance:
            best, best_distance = [model_id], distance
        else:
            best.append(model_id)
    return best[0] if len(best) == 1 else None


def family_members(slug: str, entries: Sequence[ModelInfo],
                   limit: int = 3) -> tuple[str | None, list[str]]:
    """(family label, up to ``limit`` ids of the slug's family or owner), closest first.

    The label is the catalog's ``family`` of those models, else their owner, else the word.
    """
    word = family_word(slug[:128])
    if not word:
        return None, []
    members = [e for e in entries if family_word(e.id) == word
               or (e.family or "").lower() == word or (e.owned_by or "").lower() == word]
    if not members:
        return None, []
    wanted = loose(slug[:128])
    members.sort(key=lambda e: -difflib.SequenceMatcher(None, wanted, loose(e.id)).ratio())
    chosen = members[:limit]
    families = {e.family for e in chosen if e.family}
    owners = {e.owned_by for e in chosen if e.owned_by}
    label = families.pop() if len(families) == 1 else owners.pop() if len(owners) == 1 else word
    return label, [e.id for e in chosen]
