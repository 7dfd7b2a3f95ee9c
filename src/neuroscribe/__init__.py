"""neuroscribe: explain the units of a transformer and test the explanations on held-out text."""

__version__ = "0.1.0"
