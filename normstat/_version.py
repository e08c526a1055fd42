"""The version, in a module of its own so that nothing imports it through the package."""

__version__ = "0.2.0"
