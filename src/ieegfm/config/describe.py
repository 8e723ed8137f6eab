"""``ieegfm CMD --help``: every key of a command with its default, unit and help text, read from its schema."""

from __future__ import annotations

import dataclasses

from omegaconf import MISSING

from ieegfm.config.schemas import SCHEMAS

__all__ = ["describe_keys"]


def describe_keys(command: str) -> str:
    """Human-readable list of the keys of a command, with defaults and help (for ``--help``)."""
    lines: list[str] = []

    def walk(schema: type, prefix: str) -> None:
        for f in dataclasses.fields(schema):
            key = prefix + f.name
            if dataclasses.is_dataclass(f.type) or (
                isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory)
            ):
                walk(f.default_factory, key + ".")  # type: ignore[arg-type]
                continue
            default = "(required)" if f.default is MISSING else repr(f.default)
            if f.default is dataclasses.MISSING:
                default = "(required)" if f.default_factory is dataclasses.MISSING else repr(f.default_factory())
            help_ = f.metadata.get("help", "")
            lines.append(f"  {key:<28} {default:<22} {help_}")

    walk(SCHEMAS[command], "")
    return "\n".join(lines)
