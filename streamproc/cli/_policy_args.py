"""Options shared by the commands that compile a policy (schema derive, sanitize)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from streamproc.errors import ConfigError


def add_policy_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strict", action="store_true", help="an unannotated field is an error, not dropped"
    )
    parser.add_argument(
        "--tags",
        type=Path,
        default=None,
        metavar="FILE",
        help="YAML/JSON mapping of Confluent tags to annotations, e.g. {PII: {action: drop}}",
    )


def load_tag_actions(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError):
        raise ConfigError(f"tag mapping {path}: cannot be read or parsed") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"tag mapping {path}: must be a mapping of tag -> annotation")
    return doc
