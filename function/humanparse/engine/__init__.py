"""Parsing engines. ``load_parser`` picks one from a model folder; nothing here downloads."""

from humanparse.engine.types import ModelInfo, Parser, ParseResult, Person

__all__ = ["ModelInfo", "Parser", "ParseResult", "Person"]
