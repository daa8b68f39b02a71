"""shoematch: crime-scene shoeprint retrieval (CriSp) — the library, usable without Ray."""

__version__ = "0.1.0"
