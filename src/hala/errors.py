"""Errors the library raises on bad input; each message names the source, the field and what to do."""

from __future__ import annotations


class HalaError(Exception):
    """Base class of the errors a user can act on (the CLI prints them without a traceback)."""


class SourceReadError(HalaError):
    """A source's data files or hub repository cannot be read."""


class SourceSchemaError(HalaError):
    """A source lacks a column or a column has the wrong type."""
