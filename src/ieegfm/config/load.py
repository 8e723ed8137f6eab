"""Loading a command's config: schema defaults, a YAML file and ``key=value`` overrides, checked.

A YAML file given with ``--config`` and OmegaConf dotlist overrides are merged on top of the schema, so a misspelled
key is an error naming the key; a choice key outside its allowed values (:data:`ieegfm.config.choices.CHOICES`) and
a key of another component than the one selected (:data:`ieegfm.config.choices.OPTION_GROUPS`) are errors too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException
from omegaconf.nodes import StringNode

from ieegfm.config.choices import CHOICES, OPTION_GROUP_OF, OPTION_GROUPS
from ieegfm.config.schemas import SCHEMAS
from ieegfm.errors import ConfigError

__all__ = ["load_config"]


#: A number YAML would read losing its leading zeros (a BIDS label such as ``01``).
_ZERO_PADDED = re.compile(r"^0\d+$")


def _labels_as_text(cfg: DictConfig, item: str) -> str:
    """``item`` with zero-padded numbers quoted where the schema wants text (``subject=01``,
    ``subjects=[01,02]``), so that ``01`` stays ``'01'`` instead of becoming ``1``."""
    key, _, value = item.partition("=")
    parent, _, leaf = key.rpartition(".")
    try:
        holder = OmegaConf.select(cfg, parent) if parent else cfg
        node = holder._get_node(leaf) if isinstance(holder, DictConfig) else None
    except Exception:  # an unknown key: the merge names it
        return item
    text = isinstance(node, StringNode) or (isinstance(node, ListConfig) and node._metadata.element_type is str)
    if not text:
        return item
    v = value.strip()
    if v.startswith("[") and v.endswith("]"):
        cells = [c.strip() for c in v[1:-1].split(",")] if v[1:-1].strip() else []
        return f"{key}=[" + ",".join(f"'{c}'" if _ZERO_PADDED.match(c) else c for c in cells) + "]"
    return f"{key}='{v}'" if _ZERO_PADDED.match(v) else item


def _check_option_groups(command: str, cfg: DictConfig) -> None:
    defaults = OmegaConf.structured(SCHEMAS[command])
    for selector, options in OPTION_GROUPS.get(command, {}).items():
        group = OPTION_GROUP_OF.get(selector, selector.rsplit(".", 1)[0])
        chosen = OmegaConf.select(cfg, selector)
        allowed = set(options.get(chosen, ()))
        others = {k for keys in options.values() for k in keys} - allowed
        for key in sorted(others):
            full = f"{group}.{key}"
            value = OmegaConf.select(cfg, full)
            if value != OmegaConf.select(defaults, full):
                raise ConfigError(
                    f"{full}={value!r} does not apply to {selector}={chosen} (it takes "
                    f"{', '.join(f'{group}.{k}' for k in options[chosen]) or 'no options'})"
                )


def load_config(
    command: str,
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
    check_missing: bool = True,
    base: dict | None = None,
) -> DictConfig:
    """Merge schema defaults, an optional YAML file and dotlist overrides.

    Parameters
    ----------
    command : str
        A key of :data:`SCHEMAS` (``simulate``, ``pack``, ``pretrain``, ``evaluate``, ``finetune``, ``compare``,
        ``cards``).
    config_file : str | Path | None
        YAML file merged over the defaults.
    overrides : list of str
        OmegaConf dotlist (``key=value``) merged last.
    check_missing : bool
        Raise when a required key (``???``) is unset (False for ``--print-config``).
    base : dict, optional
        Values merged over the defaults before the file and the overrides (a caller's config, e.g. the pretraining
        keys of a ``scale`` sweep); checked like them.

    Returns
    -------
    cfg : DictConfig
        Structured (typed) config; all required keys present.

    Raises
    ------
    ConfigError
        Unknown key, wrong type, value outside its allowed choices, a key of another component than the one
        selected (:data:`OPTION_GROUPS`), missing required key, unreadable file.
    """
    if command not in SCHEMAS:
        raise ConfigError(f"unknown command {command!r}; expected one of {sorted(SCHEMAS)}")
    cfg = OmegaConf.structured(SCHEMAS[command])
    sources: list[tuple[str, Any]] = [] if base is None else [("config", OmegaConf.create(base))]
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"--config {path}: file not found")
        try:
            sources.append((str(path), OmegaConf.load(path)))
        except Exception as err:  # yaml errors
            raise ConfigError(f"--config {path}: not valid YAML ({err})") from None
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"argument {item!r}: expected key=value (an OmegaConf dotlist override)")
        sources.append((f"override {item!r}", OmegaConf.from_dotlist([_labels_as_text(cfg, item)])))
    for where, src in sources:
        try:
            cfg = OmegaConf.merge(cfg, src)
        except ConfigKeyError as err:
            raise ConfigError(
                f"{where}: unknown config key {err.full_key!r} for `ieegfm {command}` (see `ieegfm {command} --help`)"
            ) from None
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None)
            msg = str(err).splitlines()[0]
            raise ConfigError(f"{where}: bad value for {key!r}: {msg}") from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing and check_missing:
        raise ConfigError(f"`ieegfm {command}` needs {', '.join(k + '=...' for k in missing)}")
    for key, allowed in CHOICES.get(command, {}).items():
        value = OmegaConf.select(cfg, key, default=None)
        if isinstance(value, ListConfig):  # a list key: each element a choice, each once, at least one
            values = list(value)
            if not values or len(set(values)) < len(values) or any(v not in allowed for v in values):
                raise ConfigError(f"{key}={values!r}: expected a list of distinct values, each one of {list(allowed)}")
        elif value is not None and value not in allowed:
            raise ConfigError(f"{key}={value!r}: expected one of {list(allowed)}")
    _check_option_groups(command, cfg)
    return cfg
