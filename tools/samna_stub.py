"""An import stub for samna and samnagui: sinabs imports them, its CPU forward and its layer
mapping never use them. Import this module before sinabs."""

import importlib.abc
import importlib.machinery
import sys
import types


class _Stub:
    """Any attribute, any call: stands in for samna's objects, never used by the CPU forward."""

    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Stub()

    def __call__(self, *args, **kwargs):
        return _Stub()


class _Anything(types.ModuleType):
    """A module that is every name: enough for sinabs' import of samna and samnagui."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Stub()


class _SamnaFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("samna", "samnagui"):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        m = _Anything(spec.name)
        m.__path__ = []
        return m

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _SamnaFinder())
