"""Classes registered by name and imported on first use (device backends, PLC transports).

A registry is a plain dict ``name -> (module, class)``: choosing one entry never
imports another's dependencies (the simulator never loads a protocol library).

Examples
--------
>>> load_class({"dict": ("builtins", "dict")}, "dict", "container", "containers")
<class 'dict'>
>>> load_class({"dict": ("builtins", "dict")}, "list", "container", "containers")
Traceback (most recent call last):
...
ValueError: unknown container 'list'; valid containers: dict
"""

from __future__ import annotations

import importlib


def load_class(registry: dict[str, tuple[str, str]], name: str, what: str, plural: str) -> type:
    """Import and return the class registered as ``name``; ValueError listing the valid names otherwise."""
    if name not in registry:
        raise ValueError(f"unknown {what} {name!r}; valid {plural}: {', '.join(registry)}")
    module_name, class_name = registry[name]
    return getattr(importlib.import_module(module_name), class_name)
