"""The public surface: ``spanledger.__all__`` is exactly what the package exposes (as httpx tests it)."""

from __future__ import annotations
import __future__

import importlib
import inspect
import types

import spanledger


def _exposed_names() -> set[str]:
    # dir(), not vars(): names are imported on first use (spanledger.__getattr__), dir() lists them all
    return {
        name
        for name in dir(spanledger)
        if not name.startswith("_")
        and not isinstance(value := getattr(spanledger, name), types.ModuleType)
        and not isinstance(value, __future__._Feature)  # `from __future__ import annotations`
    } | {"__version__"}


def test_all_matches_the_public_names() -> None:
    assert len(spanledger.__all__) == len(set(spanledger.__all__)), "duplicates in __all__"
    assert set(spanledger.__all__) == _exposed_names()


def test_every_name_in_all_is_importable() -> None:
    namespace: dict[str, object] = {}
    exec(f"from spanledger import {', '.join(spanledger.__all__)}", namespace)
    module = importlib.import_module("spanledger")
    for name in spanledger.__all__:
        assert namespace[name] is getattr(module, name)


def test_public_classes_and_functions_are_defined_in_the_package() -> None:
    for name in spanledger.__all__:
        value = getattr(spanledger, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__.startswith("spanledger."), name
            assert inspect.getdoc(value), f"{name} has no docstring"


def test_version_matches_the_distribution() -> None:
    from importlib.metadata import version

    assert spanledger.__version__ == version("spanledger")
