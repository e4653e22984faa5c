"""Python-file configs with ``_base_`` inheritance and ``--options`` overrides, as Pointcept's.

A config is a Python file; every module-level name not starting with ``__`` is a key. ``_base_`` names
files (relative to the config) merged first: dicts merge recursively, any other value (lists included)
replaces, and a child dict with ``_delete_=True`` replaces the base dict.
"""
from __future__ import annotations

import ast
import copy
import difflib
import importlib
import os
import pprint
import re
import types
from typing import Any, Iterable

__all__ = ["Config", "ConfigDict", "OptionError", "parse_option_value", "parse_options", "apply_options"]

_RESERVED = ("filename", "text", "pretty_text")


class ConfigDict(dict):
    """A dict with attribute access; nested dicts become ConfigDicts."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    @staticmethod
    def _wrap(value: Any) -> Any:
        if isinstance(value, dict) and not isinstance(value, ConfigDict):
            return ConfigDict(value)
        if isinstance(value, list):
            return [ConfigDict._wrap(v) for v in value]
        if isinstance(value, tuple):
            return tuple(ConfigDict._wrap(v) for v in value)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, self._wrap(value))

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"config has no key '{key}'") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        del self[key]

    def __deepcopy__(self, memo: dict) -> "ConfigDict":
        return ConfigDict({k: copy.deepcopy(v, memo) for k, v in self.items()})

    def to_dict(self) -> dict:
        return _unwrap(self)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args, **kwargs) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_unwrap(v) for v in value)
    return value


def _merge_into(child: dict, base: dict) -> dict:
    """Merge ``child`` into a copy of ``base``: dicts recursively, everything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in child.items():
        if isinstance(value, dict) and value.get("_delete_", False):
            merged[key] = {k: v for k, v in value.items() if k != "_delete_"}
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge_into(value, merged[key])
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _module_keys(module_vars: dict) -> dict:
    return {k: v for k, v in module_vars.items()
            if not k.startswith("__") and not isinstance(v, (types.ModuleType, types.FunctionType, type))}


def _declared_bases(text: str, filename: str) -> list[str]:
    """The ``_base_`` list of a config file, read before the file runs (placeholders need the bases)."""
    for node in ast.parse(text, filename).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_base_" for t in node.targets):
            bases = ast.literal_eval(node.value)
            return [bases] if isinstance(bases, str) else list(bases)
    return []


def _base_lookup(merged_base: dict, filename: str):
    """``{{ _base_.a.b }}`` resolves to a copy of the merged bases' value at ``a.b``."""
    def lookup(dotted: str) -> Any:
        node: Any = merged_base
        for part in dotted.split("."):
            if isinstance(node, (list, tuple)) and part.isdigit():
                node = node[int(part)]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            else:
                raise KeyError(f"{filename}: placeholder {{{{ _base_.{dotted} }}}} names no base value")
        return copy.deepcopy(node)
    return lookup


def _read_file(filename: str) -> dict:
    filename = os.path.abspath(os.path.expanduser(filename))
    if not os.path.isfile(filename):
        raise FileNotFoundError(f"config file not found: {filename}")
    if not filename.endswith(".py"):
        raise NotImplementedError(f"{filename}: only Python config files are supported")
    with open(filename, encoding="utf-8") as f:
        text = f.read()
    stem = os.path.splitext(os.path.basename(filename))[0]
    for name, value in (("fileDirname", os.path.dirname(filename)), ("fileBasename", os.path.basename(filename)),
                        ("fileBasenameNoExtension", stem), ("fileExtname", ".py")):
        text = text.replace("{{ " + name + " }}", value).replace("{{" + name + "}}", value)
    merged_base: dict = {}
    for base in _declared_bases(text, filename):
        base_cfg = _read_file(os.path.join(os.path.dirname(filename), base))
        clash = set(base_cfg) & set(merged_base)
        if clash:
            raise KeyError(f"{filename}: base configs share keys {sorted(clash)}")
        merged_base.update(base_cfg)
    text = re.sub(r"\{\{\s*_base_\.([\w.]+)\s*\}\}", r'__base_lookup__("\1")', text)
    namespace: dict = {"__file__": filename, "__name__": f"_config_{stem}",
                       "__base_lookup__": _base_lookup(merged_base, filename)}
    try:
        exec(compile(text, filename, "exec"), namespace)
    except Exception as err:
        raise RuntimeError(f"{filename}: error while executing config: {err}") from err
    cfg = _module_keys(namespace)
    cfg.pop("_base_", None)
    for key in _RESERVED:
        if key in cfg:
            raise KeyError(f"{filename}: '{key}' is a reserved config key")
    return _merge_into(cfg, merged_base)


class OptionError(ValueError):
    """A ``--options KEY=VALUE`` override that cannot apply; the message names the key and what is expected."""


def _check_brackets(text: str) -> None:
    depth = 0
    for ch in text:
        depth += ch in "[("
        depth -= ch in "])"
        if depth < 0:
            break
    if depth:
        raise ValueError(f"unbalanced brackets in {text!r}; write a list as [a,b] or a tuple as (a,b)")


def parse_option_value(text: str) -> Any:
    """Pointcept's ``--options`` value parsing: int, float, bool, [list], (tuple), a,b lists, else str;
    ``ValueError`` for unbalanced brackets."""
    text = text.strip()
    _check_brackets(text)
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if len(text) >= 2 and text[0] + text[-1] in ("[]", "()"):
        items = [parse_option_value(item) for item in _split_top_level(text[1:-1])] if text[1:-1].strip() else []
        return items if text[0] == "[" else tuple(items)
    if "," in text:
        return [parse_option_value(item) for item in _split_top_level(text)]
    return text


def _split_top_level(text: str) -> list[str]:
    """Split at commas not inside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    tail = text[start:]
    if tail.strip():
        parts.append(tail)
    return parts


def parse_options(options: list[str]) -> dict:
    """``["a.b=1", "c=[1,2]"]`` -> ``{"a.b": 1, "c": [1, 2]}``."""
    parsed = {}
    for option in options or []:
        if "=" not in option:
            raise ValueError(f"--options: '{option}' is not of the form KEY=VALUE")
        key, value = option.split("=", 1)
        try:
            parsed[key.strip()] = parse_option_value(value)
        except ValueError as err:
            raise OptionError(f"--options {option}: {err}") from None
    return parsed


def _kind(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _expected(existing: Any, value: Any) -> str | None:
    """What a command-line value replacing ``existing`` should look like, or None when it fits."""
    if isinstance(existing, bool):
        return None if isinstance(value, bool) or value in (0, 1) else "expected True or False"
    if isinstance(existing, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"expected an integer (the config has {existing!r})"
    if isinstance(existing, float):
        numbers = value if isinstance(value, (list, tuple)) else [value]  # per-group lists, e.g. max_lr
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers)
        return None if ok else f"expected a number (the config has {existing!r})"
    if isinstance(existing, dict) and not isinstance(value, dict) and value is not None:
        return "expected a dict (set its entries with {key}.KEY=VALUE, or None)"
    return None


def _lookup(cfg: "Config", dotted: str) -> tuple[bool, Any]:
    """(whether ``dotted`` exists, its value); ``OptionError`` when a part on the way is a plain value."""
    node: Any = cfg._cfg_dict
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            child = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            child = node[int(part)]
        else:
            return False, None
        if i < len(parts) - 1 and child is not None and not isinstance(child, (dict, list, tuple)):
            raise OptionError(f"'{'.'.join(parts[: i + 1])}' is {_kind(child)}, not a dict: it has no entry "
                              f"'{parts[i + 1]}'")
        node = child
    return True, node


def _data_roots(node: Any, path: str = "data") -> list[tuple[str, Any]]:
    """(dotted key, value) of every ``data_root`` under ``node`` (the ``data`` section)."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, (list, tuple)) else []
    for key, value in items:
        if key == "data_root":
            found.append((f"{path}.{key}", value))
        else:
            found += _data_roots(value, f"{path}.{key}")
    return found


def _follow_root(cfg: "Config", dotted: str, old: Any, new: Any) -> dict:
    """The data sections' ``data_root`` entries a config built from the top-level root ``dotted`` (``data_root``,
    ``data_roots.<dataset>``) when it was read, set to ``new``; ``OptionError`` listing the keys to set when no
    data section holds its value."""
    roots = _data_roots(cfg._cfg_dict.get("data") or {})
    copies = {key: new for key, value in roots if old is not None and value == old}
    if not copies:
        keys = ", ".join(key for key, _ in roots) or "the data sections' data_root"
        raise OptionError(f"--options {dotted}={new}: the config's data sections do not use {dotted} ({old!r}), "
                          f"so this would change nothing; set {keys} instead")
    return copies


def apply_options(cfg: "Config", options: dict, known: Iterable[str] = ()) -> None:
    """Apply command-line overrides to ``cfg`` after checking each: its top-level key must be a key of the config
    or of ``known`` (else ``OptionError`` with the closest known keys), no part of the key on the way may be a plain
    value, and a value replacing a bool, number or dict must be one. ``"None"`` replacing a value that is not a
    string becomes None. A top-level data root (``data_root``, ``data_roots.<name>``) also replaces the copies of
    its value the config put into ``data`` when it was read (see ``_follow_root``)."""
    known = set(cfg.keys()) | set(known)
    for dotted, value in options.items():
        top = dotted.split(".")[0]
        if top not in known:
            close = difflib.get_close_matches(top, sorted(known), n=3, cutoff=0.6)
            hint = (f"closest known keys: {', '.join(repr(k) for k in close)}" if close
                    else f"known keys: {', '.join(sorted(known))}")
            raise OptionError(f"--options {dotted}={value}: unknown config key '{top}' in "
                              f"{cfg.filename or 'the config'}; {hint}")
        try:
            exists, existing = _lookup(cfg, dotted)
        except OptionError as err:
            raise OptionError(f"--options {dotted}={value}: {err}") from None
        if exists and value == "None" and not isinstance(existing, str):
            value = None
        problem = _expected(existing, value) if exists else None
        if problem:
            raise OptionError(f"--options {dotted}={value}: {problem.format(key=dotted)}")
        update = {dotted: value}
        if exists and isinstance(existing, (str, type(None))) and (
                dotted == "data_root" or dotted.startswith("data_roots.")):
            update.update(_follow_root(cfg, dotted, existing, value))
        cfg.merge_from_dict(update)


class Config:
    """A loaded config: attribute and item access to a ConfigDict, ``dump`` to a Python file."""

    def __init__(self, cfg_dict: dict | None = None, filename: str | None = None) -> None:
        object.__setattr__(self, "_cfg_dict", ConfigDict(cfg_dict or {}))
        object.__setattr__(self, "filename", filename)

    @staticmethod
    def fromfile(filename: str) -> "Config":
        cfg = Config(_read_file(filename), filename=filename)
        custom = cfg._cfg_dict.get("custom_imports")
        if custom:
            for module in custom.get("imports", []):
                importlib.import_module(module)
        return cfg

    def merge_from_dict(self, options: dict, allow_list_keys: bool = True) -> None:
        """Apply dotted-key overrides; integer components index lists (``hooks.3.save_freq=5``)."""
        for dotted, value in options.items():
            node: Any = self._cfg_dict
            parts = dotted.split(".")
            for i, part in enumerate(parts[:-1]):
                node = _descend(node, part, ".".join(parts[: i + 1]), allow_list_keys)
            last = parts[-1]
            if isinstance(node, list):
                if not (allow_list_keys and last.isdigit() and int(last) < len(node)):
                    raise KeyError(f"--options {dotted}: '{last}' is not an index of a list of {len(node)}")
                node[int(last)] = ConfigDict._wrap(value)
            else:
                node[last] = value

    @property
    def pretty_text(self) -> str:
        lines = [f"{key} = {pprint.pformat(_unwrap(value), sort_dicts=False, width=100)}"
                 for key, value in self._cfg_dict.items()]
        return "\n".join(lines) + "\n"

    def dump(self, file: str) -> None:
        """Write the merged config as a Python file that loads back to the same dict (atomically)."""
        text = self.pretty_text
        ast.parse(text)  # every value must have a literal repr
        tmp = f"{file}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, file)

    def to_dict(self) -> dict:
        return _unwrap(self._cfg_dict)

    def __getstate__(self) -> tuple:
        # explicit, because __getattr__ delegates to _cfg_dict, which does not exist yet while unpickling
        return self._cfg_dict, self.filename

    def __setstate__(self, state: tuple) -> None:
        object.__setattr__(self, "_cfg_dict", state[0])
        object.__setattr__(self, "filename", state[1])

    def __getattr__(self, key: str) -> Any:
        return getattr(self._cfg_dict, key)

    def __setattr__(self, key: str, value: Any) -> None:
        self._cfg_dict[key] = value

    def __getitem__(self, key: str) -> Any:
        return self._cfg_dict[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._cfg_dict[key] = value

    def __contains__(self, key: str) -> bool:
        return key in self._cfg_dict

    def get(self, key: str, default: Any = None) -> Any:
        return self._cfg_dict.get(key, default)

    def keys(self):
        return self._cfg_dict.keys()

    def items(self):
        return self._cfg_dict.items()

    def __repr__(self) -> str:
        return f"Config(filename={self.filename!r}):\n{self.pretty_text}"


def _descend(node: Any, part: str, path: str, allow_list_keys: bool) -> Any:
    if isinstance(node, list):
        if not (allow_list_keys and part.isdigit() and int(part) < len(node)):
            raise KeyError(f"--options: '{path}' indexes a list of {len(node)} items")
        return node[int(part)]
    if part not in node or not isinstance(node[part], (dict, list)):
        node[part] = ConfigDict()
    return node[part]
