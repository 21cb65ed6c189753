"""Errors meant for people: the entry points print their message without a traceback."""


class UserError(Exception):
    """Bad input (a file, a config value, a dataset on disk); the message says what was expected."""


class ConfigError(UserError, ValueError):
    """A config value does not fit (names the key and what was expected)."""


class CheckpointNotFoundError(UserError, FileNotFoundError):
    """A checkpoint path does not exist."""
