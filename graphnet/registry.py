"""Finding plugins: entry points, ``--plugin`` and ``GRAPHNET_PLUGINS``, and the registry of types.

Plugins come from two places only: the ``graphnet`` entry-point group of installed packages
(the built-ins among them) and modules or files named explicitly with ``--plugin`` or the
``GRAPHNET_PLUGINS`` environment variable. A spec never causes an import.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy
from pydantic import BaseModel

from graphnet import hookspecs
from graphnet.base import DataSource, Layer, Loss, Metric, Optimizer, Plugin, Schedule
from graphnet.errors import GraphnetWarning, PluginError, suggest

PROJECT = "graphnet"
ENV_VAR = "GRAPHNET_PLUGINS"

hookimpl = pluggy.HookimplMarker(PROJECT)

# kind -> (hook name, base class, plural for messages)
KINDS: dict[str, tuple[str, type[Plugin], str]] = {
    "layer": ("graphnet_layers", Layer, "layers"),
    "loss": ("graphnet_losses", Loss, "losses"),
    "optimizer": ("graphnet_optimizers", Optimizer, "optimizers"),
    "data source": ("graphnet_data_sources", DataSource, "data sources"),
    "metric": ("graphnet_metrics", Metric, "metrics"),
    "schedule": ("graphnet_schedules", Schedule, "schedules"),
}


@dataclass(frozen=True)
class Entry:
    """One registered plugin class and the package it came from."""

    kind: str
    name: str
    cls: type[Any]
    package: str


class Registry:
    """The plugin manager and the types its plugins register, by kind."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.packages: dict[str, str] = {}
        self.broken: dict[str, str] = {}  # package -> why it failed to load
        self._entries: dict[str, dict[str, Entry]] = {}
        self._blocks: dict[str, tuple[dict[str, Any], str]] | None = None

    def register(self, plugin: Any, name: str, package: str | None = None) -> None:
        """Register a module or object holding hook implementations under ``name``."""
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except (ValueError, pluggy.PluginValidationError) as error:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            raise PluginError(f"plugin {name!r} cannot be registered: {error}") from None
        self.packages[name] = package or name
        self._entries.clear()
        self._blocks = None

    def unregister(self, name: str) -> None:
        """Remove the plugin registered under ``name``."""
        self.pm.unregister(name=name)
        self.packages.pop(name, None)
        self._entries.clear()
        self._blocks = None

    def blocks(self) -> dict[str, tuple[dict[str, Any], str]]:
        """The blocks plugins publish (``graphnet_blocks``): name -> (block, package)."""
        if self._blocks is None:
            found: dict[str, tuple[dict[str, Any], str]] = {}
            for impl in reversed(self.pm.hook.graphnet_blocks.get_hookimpls()):
                package, blocks = self._call(impl, "graphnet_blocks")
                if not isinstance(blocks, dict):
                    raise PluginError(
                        f"plugin {package!r}: graphnet_blocks() must return a mapping of block "
                        f"names to blocks, not {type(blocks).__name__}"
                    )
                for name, block in blocks.items():
                    if name in found:
                        raise PluginError(
                            f"block {name!r} is published twice: by {found[name][1]!r} and by "
                            f"{package!r}"
                        )
                    found[name] = (block, package)
            self._blocks = found
        return self._blocks

    def _call(self, impl: Any, hook_name: str) -> tuple[str, Any]:
        """The package of a hook implementation and what it returns; a failure names both."""
        package = self.packages.get(impl.plugin_name, impl.plugin_name)
        try:
            return package, impl.function()
        except Exception as error:
            raise PluginError(
                f"plugin {package!r} failed in {hook_name}(): {type(error).__name__}: {error}"
            ) from error

    def entries(self, kind: str) -> dict[str, Entry]:
        """Every registered type of ``kind``, keyed by its lower-case name."""
        if kind not in self._entries:
            self._entries[kind] = self._collect(kind)
        return self._entries[kind]

    def _collect(self, kind: str) -> dict[str, Entry]:
        hook_name, base, _ = KINDS[kind]
        found: dict[str, Entry] = {}
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            package, classes = self._call(impl, hook_name)
            if not isinstance(classes, list):
                raise PluginError(
                    f"plugin {package!r}: {hook_name}() must return a list of "
                    f"graphnet.{base.__name__} subclasses, not {type(classes).__name__} {classes!r}"
                )
            for cls in classes:
                if not (isinstance(cls, type) and issubclass(cls, base)):
                    raise PluginError(
                        f"plugin {package!r} returned {cls!r} from {hook_name}(), "
                        f"which is not a subclass of graphnet.{base.__name__}"
                    )
                name = str(getattr(cls, "type", "") or "").lower()
                if not name:
                    raise PluginError(
                        f"{kind} class {cls.__qualname__} of plugin {package!r} has no `type` name"
                    )
                options = getattr(cls, "Options", None)
                if not (isinstance(options, type) and issubclass(options, BaseModel)):
                    raise PluginError(
                        f"{kind} class {cls.__qualname__} of plugin {package!r}: its Options "
                        f"must be a pydantic BaseModel subclass, not {options!r}"
                    )
                if name in found and found[name].cls is not cls:
                    raise PluginError(
                        f"{kind} type {name!r} is registered twice: by {found[name].package!r} "
                        f"({found[name].cls.__module__}.{found[name].cls.__qualname__}) and by "
                        f"{package!r} ({cls.__module__}.{cls.__qualname__})"
                    )
                found[name] = Entry(kind, name, cls, package)
        return found

    def get(self, kind: str, name: str, where: str | None = None) -> type[Any]:
        """The class registered for ``name`` (case-insensitive), or a :class:`PluginError`."""
        return self.entry(kind, name, where).cls

    def entry(self, kind: str, name: str, where: str | None = None) -> Entry:
        """The registration of ``name`` (case-insensitive), or a :class:`PluginError`."""
        entries = self.entries(kind)
        entry = entries.get(str(name).lower())
        if entry is None:
            plural = KINDS[kind][2]
            known = ", ".join(sorted(entries)) or "none"
            packages = ", ".join(sorted(set(self.packages.values()))) or "none"
            if self.broken:
                packages += "; failed to load, so their types are missing: " + "; ".join(
                    f"{package} ({why})" for package, why in sorted(self.broken.items())
                )
            raise PluginError(
                f"unknown {kind} type {name!r}{suggest(str(name).lower(), entries)}; "
                f"{plural} available: {known}; plugins loaded: {packages}",
                where,
            )
        return entry


def is_file_ref(ref: str) -> bool:
    """Whether a ``--plugin`` reference names a ``.py`` file (else a module)."""
    return ref.endswith(".py") or os.sep in ref or "/" in ref


def _load_module(ref: str) -> tuple[ModuleType, str]:
    """Import ``ref``, a module name or a path to a ``.py`` file."""
    path = Path(ref)
    if is_file_ref(ref):
        if not path.is_file():
            raise PluginError(f"plugin file not found: {ref}")
        module_name = f"graphnet_plugin_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise PluginError(f"plugin file {ref} cannot be imported")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            del sys.modules[module_name]
            raise PluginError(
                f"plugin file {ref} failed to import: {type(error).__name__}: {error}"
            ) from None
        return module, str(path)
    try:
        return importlib.import_module(ref), ref
    except Exception as error:
        raise PluginError(
            f"plugin module {ref!r} failed to import: {type(error).__name__}: {error}"
        ) from None


def plugin_refs(extra: Sequence[str]) -> tuple[str, ...]:
    """``extra`` and the ``GRAPHNET_PLUGINS`` ones: every plugin the registry loads beside the
    installed packages."""
    from_env = [r.strip() for r in os.environ.get(ENV_VAR, "").split(",") if r.strip()]
    return tuple(dict.fromkeys([*from_env, *extra]))


def _installed() -> list[tuple[EntryPoint, str]]:
    """The installed ``graphnet`` entry points, each with the name of its package. A package's
    metadata is parsed once, however many entry points it has: parsing it is what is slow."""
    names: dict[int, str] = {}  # id of a distribution -> its name; its entry points hold it
    found = []
    for ep in entry_points(group=PROJECT):
        if ep.dist is None:
            found.append((ep, ep.module))
            continue
        if id(ep.dist) not in names:
            names[id(ep.dist)] = ep.dist.name
        found.append((ep, names[id(ep.dist)]))
    return found


@lru_cache(maxsize=8)
def _registry(refs: tuple[str, ...]) -> Registry:
    registry = Registry()
    for ep, dist in _installed():
        name = f"{dist}:{ep.name}"
        if registry.pm.has_plugin(name):
            continue
        try:
            module = ep.load()
        except Exception as error:  # one broken package must not disable every command
            why = f"{type(error).__name__}: {error}"
            registry.broken[dist] = why
            warnings.warn(
                f"plugin {ep.name!r} of package {dist!r} ({ep.value}) failed to import: {why}; "
                "its types are unavailable",
                GraphnetWarning,
                stacklevel=2,
            )
            continue
        registry.register(module, name, dist)
    for ref in refs:
        module, package = _load_module(ref)
        if not registry.pm.is_registered(module):  # already installed through an entry point
            registry.register(module, ref, package)
    return registry


def get_registry(extra: Sequence[str] = ()) -> Registry:
    """The registry of installed plugins plus ``extra`` and ``GRAPHNET_PLUGINS`` ones (cached)."""
    return _registry(plugin_refs(extra))
