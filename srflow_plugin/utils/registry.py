"""Registration in BasicSR's registries that survives importing a module again."""
from .basicsr_compat import registry_put


def register(registry):
    """Decorator registering a class or function in a BasicSR ``Registry`` under its own name.

    BasicSR's ``Registry.register`` rejects a name that is already taken, which breaks
    ``importlib.reload`` and a module imported under two names. Here the same object (same module and
    qualified name) may register again and replaces the old entry; a different object with the same
    name is still an error.

    Args:
        registry (basicsr.utils.registry.Registry): e.g. ``ARCH_REGISTRY``.
    """

    def deco(obj):
        name = obj.__name__
        existing = registry.get(name) if name in registry else None
        if existing is not None and (existing.__module__, existing.__qualname__) != (obj.__module__,
                                                                                     obj.__qualname__):
            raise KeyError(f"{registry._name} registry already has a different '{name}' "
                           f'(from {existing.__module__}); srflow_plugin cannot register its own.')
        registry_put(registry, name, obj)
        return obj

    return deco
