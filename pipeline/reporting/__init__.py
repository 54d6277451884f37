"""Helpers that turn the stages' JSON into what people read: the report's sections."""
