"""Registries that build objects from ``dict(type=..., **kwargs)`` configs, as Pointcept's (mmcv-style)."""
from __future__ import annotations

import copy
import difflib
import inspect
from typing import Any, Callable

__all__ = ["Registry", "build_from_cfg"]


def build_from_cfg(cfg: dict, registry: "Registry", default_args: dict | None = None) -> Any:
    """Build ``cfg['type'](**rest)``; ``type`` is a registered name or a class.

    The config is copied before ``type`` is popped, so the caller's dict is left untouched.
    Errors raised by the constructor are re-raised prefixed with the class name.
    """
    if not isinstance(cfg, dict):
        raise TypeError(f"{registry.name}: config must be a dict, got {type(cfg).__name__}")
    if "type" not in cfg:
        raise KeyError(f"{registry.name}: config {cfg!r} has no 'type' key")
    args = dict(cfg)
    for key, value in (default_args or {}).items():
        args.setdefault(key, value)
    obj_type = args.pop("type")
    obj_cls = registry.get(obj_type) if isinstance(obj_type, str) else obj_type
    if not (inspect.isclass(obj_cls) or callable(obj_cls)):
        raise TypeError(f"{registry.name}: type must be a str or class, got {obj_type!r}")
    try:
        return obj_cls(**args)
    except Exception as err:
        try:
            wrapped = type(err)(f"{obj_cls.__name__}: {err}")
        except Exception:  # exception types whose constructor takes other arguments
            raise err
        raise wrapped from err


class Registry:
    """A name -> class table. ``@REG.register_module()`` registers, ``REG.build(cfg)`` builds."""

    def __init__(self, name: str, build_func: Callable | None = None) -> None:
        self.name = name
        self._module_dict: dict[str, type] = {}
        self.build_func = build_func or build_from_cfg

    def __len__(self) -> int:
        return len(self._module_dict)

    def __contains__(self, key: str) -> bool:
        return key in self._module_dict

    def __repr__(self) -> str:
        return f"Registry(name={self.name}, items={sorted(self._module_dict)})"

    @property
    def module_dict(self) -> dict[str, type]:
        return self._module_dict

    def get(self, key: str) -> type:
        """Return the class registered as ``key``; an unknown key names the closest registered ones."""
        if key in self._module_dict:
            return self._module_dict[key]
        close = difflib.get_close_matches(key, list(self._module_dict), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(f"'{key}' is not in the {self.name} registry{hint} "
                       f"(registered: {', '.join(sorted(self._module_dict)) or 'none'})")

    def build(self, cfg: dict, default_args: dict | None = None) -> Any:
        return self.build_func(cfg, self, default_args)

    def _register(self, module: type, names: str | list[str] | None, force: bool) -> None:
        if names is None:
            names = module.__name__
        for name in [names] if isinstance(names, str) else names:
            if not force and name in self._module_dict:
                raise KeyError(f"'{name}' is already registered in {self.name}")
            self._module_dict[name] = module

    def register_module(self, name: str | list[str] | None = None, force: bool = False,
                        module: type | None = None) -> Callable:
        """Register a class, as a decorator (``@REG.register_module("Alias")``) or directly."""
        if module is not None:
            self._register(module, name, force)
            return module

        def decorator(cls: type) -> type:
            self._register(cls, name, force)
            return cls

        return decorator
