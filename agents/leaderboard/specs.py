"""Learners and envs as one-line specs, as the CLI takes them: 'adam:num_layers=2',
'VSML/MNIST-Online-v0:resize=14,pixel_shuffle=true'."""

from __future__ import annotations

from typing import Any

import yaml


def parse_key_values(raw: str, text: str) -> dict[str, Any]:
    """'num_layers=2,hidden=[32, 32]' -> {'num_layers': 2, 'hidden': [32, 32]}: values are YAML,
    commas inside brackets belong to the value."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(raw + ","):
        depth += (char in "[{") - (char in "]}")
        if char == "," and depth == 0:
            items.append(raw[start:i])
            start = i + 1
    options = {}
    for item in filter(str.strip, items):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"option {item!r} in {text!r} must look like key=value")
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError(f"option {item!r} in {text!r}: {value!r} is not a value") from None
    return options


def split_env(text: str) -> tuple[str, str]:
    """'VSML/MNIST-Online-v0:resize=14,pixel_shuffle=true' -> (id, 'resize=14,pixel_shuffle=true').
    Gymnasium's 'module:Id' form stays an id: options start after the last ':' only if it holds a '='."""
    env_id, sep, raw = text.rpartition(":")
    if not sep or "=" not in raw:
        return text, ""
    return env_id, raw


def parse_env(text: str) -> tuple[str, dict[str, Any]]:
    """An env spec as its id and its options (values parsed as YAML)."""
    env_id, raw = split_env(text)
    return env_id, parse_key_values(raw, text)
