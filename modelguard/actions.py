"""What the guard does with each kind of violation (decisions.md §12), as data.

Keys are capability tags and ``max_tokens`` (the output cap, whatever the protocol calls it).
``refuse`` is the default for every key; ``allow`` forwards unchanged and records the violation;
``strip`` removes a hint the model cannot honour; ``clamp`` lowers the output cap to the model's
``max_output_tokens``. Pairings outside :data:`ACTIONS_BY_KEY` are refused when the guard is
built, never discovered on a request.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["ACTIONS", "ACTIONS_BY_KEY", "ALLOW", "CLAMP", "KEYS", "MAX_TOKENS", "PRESETS",
           "REFUSE", "STRIP", "resolve_actions"]

REFUSE, ALLOW, STRIP, CLAMP = "refuse", "allow", "strip", "clamp"
ACTIONS = (REFUSE, ALLOW, STRIP, CLAMP)
#: The key of the output-cap check.
MAX_TOKENS = "max_tokens"

_BASIC = frozenset({REFUSE, ALLOW})
#: Every key and the actions it takes. Only hints can be stripped, only the cap clamped.
ACTIONS_BY_KEY: Mapping[str, frozenset[str]] = MappingProxyType({
    "vision": _BASIC,
    "audio": _BASIC,
    "video": _BASIC,
    "tool_use": _BASIC,
    "image_gen": _BASIC,
    "video_gen": _BASIC,
    "json_schema": _BASIC,
    "streaming": _BASIC,
    "logprobs": _BASIC,
    "thinking": _BASIC | {STRIP},
    "cache_control": _BASIC | {STRIP},
    MAX_TOKENS: _BASIC | {CLAMP},
})
KEYS = tuple(ACTIONS_BY_KEY)

#: Named action sets. ``compat``: what agent CLIs on a mixed catalog need (they send cache
#: breakpoints, thinking and a large ``max_tokens`` to every model).
PRESETS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "compat": MappingProxyType({"cache_control": STRIP, "thinking": STRIP, MAX_TOKENS: CLAMP}),
})

_EMPTY: Mapping[str, str] = MappingProxyType({})


def resolve_actions(actions: Mapping[str, str] | str | None) -> Mapping[str, str]:
    """A validated, read-only ``{key: action}`` (``refuse`` entries left out).

    ``actions`` is a mapping, a preset name (``"compat"``) or None. To start from a preset and
    change a key, merge first: ``{**PRESETS["compat"], "thinking": "refuse"}``. Raises
    :class:`ValueError` naming the bad key or pairing and what is allowed.
    """
    if actions is None:
        return _EMPTY
    if isinstance(actions, str):
        preset = PRESETS.get(actions)
        if preset is None:
            raise ValueError(f"unknown actions preset {actions!r}; presets: "
                             f"{', '.join(PRESETS)} (or pass a mapping of key to action)")
        return preset
    if not isinstance(actions, Mapping):
        raise ValueError("actions must be a preset name (e.g. 'compat') or a mapping of "
                         f"key to action, not {type(actions).__name__}")
    chosen: dict[str, str] = {}
    for key, action in actions.items():
        allowed = ACTIONS_BY_KEY.get(key) if isinstance(key, str) else None
        if allowed is None:
            raise ValueError(f"unknown action key {key!r}; keys are the capability tags and "
                             f"max_tokens: {', '.join(KEYS)}")
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r} for {key}; actions: "
                             f"{', '.join(ACTIONS)}")
        if action not in allowed:
            raise ValueError(f"{key} cannot be {action!r}: {_why(action)}; {key} takes "
                             f"{', '.join(a for a in ACTIONS if a in allowed)}")
        if action != REFUSE:
            chosen[key] = action
    return MappingProxyType(chosen)


def _why(action: str) -> str:
    if action == STRIP:
        return "only the hints cache_control and thinking can be stripped"
    return "only max_tokens can be clamped"
