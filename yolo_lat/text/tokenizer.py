"""Tokenizers: bytes by default (vocabulary 256, nothing to download), Hugging Face ones on request.

``load_tokenizer("byte")`` needs nothing. ``load_tokenizer("path/to/tokenizer.json")`` uses the
``tokenizers`` package, and any other name goes to ``transformers.AutoTokenizer`` (local files or
the local cache; no network is assumed). Neither package is a dependency of yolo-lat: install one
to use it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol

__all__ = ["ByteTokenizer", "HuggingFaceTokenizer", "Tokenizer", "load_tokenizer", "printable"]


class Tokenizer(Protocol):
    """What the training and generation code needs from a tokenizer."""

    name: str
    vocab_size: int

    def encode(self, text: str) -> list[int]:
        """Token ids of a text."""

    def decode(self, ids: list[int]) -> str:
        """Text of token ids."""

    def token_text(self, token: int) -> str:
        """A short printable form of one token (for listings)."""


def printable(text: str) -> str:
    """``text`` with control and non-printable characters escaped (``\\n``, ``\\x00``, ...).

    Example:
        >>> printable("a\\nb")
        'a\\\\nb'
    """
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class ByteTokenizer:
    """UTF-8 bytes as tokens: ids 0..255, lossless, no vocabulary file.

    Example:
        >>> tok = ByteTokenizer()
        >>> tok.encode("hé")
        [104, 195, 169]
        >>> tok.decode([104, 195, 169])
        'hé'
    """

    name = "byte"
    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        """UTF-8 bytes of ``text``."""
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        """Text of byte ids; invalid UTF-8 (a cut multi-byte character) becomes U+FFFD."""
        return bytes(int(i) % 256 for i in ids).decode("utf-8", errors="replace")

    def token_text(self, token: int) -> str:
        """The byte as a printable character (ASCII) or ``\\xNN``."""
        byte = int(token)
        return chr(byte) if 32 <= byte < 127 else f"\\x{byte:02x}"


class HuggingFaceTokenizer:
    """Adapter for a ``tokenizers.Tokenizer`` or a ``transformers`` tokenizer.

    Args:
        backend: the loaded tokenizer object (has ``encode`` and ``decode``).
        name: how it was asked for (stored in checkpoints to reload it).

    Example:
        >>> tok = load_tokenizer("my_tokenizer.json")  # doctest: +SKIP
        >>> tok.decode(tok.encode("hello"))  # doctest: +SKIP
        'hello'
    """

    def __init__(self, backend: Any, name: str) -> None:
        self.backend = backend
        self.name = name
        size = getattr(backend, "get_vocab_size", None)
        self.vocab_size = int(size() if callable(size) else len(backend))

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added)."""
        encoded = self.backend.encode(text, add_special_tokens=False)
        return list(getattr(encoded, "ids", encoded))

    def decode(self, ids: list[int]) -> str:
        """Text of token ids."""
        return self.backend.decode([int(i) for i in ids])

    def token_text(self, token: int) -> str:
        """The token's text, escaped to be printable."""
        return printable(self.decode([int(token)]))


def load_tokenizer(name: str = "byte") -> Tokenizer:
    """Load a tokenizer by name.

    Args:
        name: ``byte`` (default), a ``tokenizer.json`` path (needs the ``tokenizers`` package), or
            a Hugging Face tokenizer name or folder (needs ``transformers``; loaded from local files).

    Returns:
        A tokenizer with ``encode``, ``decode``, ``token_text`` and ``vocab_size``.

    Raises:
        ValueError: the package it needs is not installed, or the tokenizer cannot be loaded.
    """
    if name in ("byte", "bytes", ""):
        return ByteTokenizer()
    if name.endswith(".json"):
        if not Path(name).is_file():
            raise ValueError(f"tokenizer file not found: {name}")
        module = _optional("tokenizers", name)
        return HuggingFaceTokenizer(module.Tokenizer.from_file(name), name)
    module = _optional("transformers", name)
    try:
        backend = module.AutoTokenizer.from_pretrained(name, local_files_only=True)
    except Exception as err:  # transformers raises OSError/ValueError subclasses
        raise ValueError(f"cannot load Hugging Face tokenizer {name!r} from local files: {err}") from err
    return HuggingFaceTokenizer(backend, name)


def _optional(package: str, wanted: str) -> Any:
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ValueError(
            f"tokenizer {wanted!r} needs the '{package}' package (pip install {package}); tokenizer=byte needs nothing"
        ) from None
