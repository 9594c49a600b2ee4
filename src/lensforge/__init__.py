"""lensforge: data-versioned simplex lenses on language-model activations."""

__version__ = "0.1.0"
