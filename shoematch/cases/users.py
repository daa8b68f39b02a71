"""Named bearer tokens: each examiner has a token, and the name it maps to goes into every
audit entry. Tokens come from a file (`name token` per line, `#` comments) and/or an
environment variable (`name:token,name:token`), plus the deployment's single shared API token
as user `api`; comparison is constant-time."""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from shoematch.errors import ConfigError

USERS_FILE_ENV = "SHOEMATCH_USERS_FILE"
USERS_ENV = "SHOEMATCH_USERS"


def _pairs_from_file(path: str) -> list[tuple[str, str]]:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"users file {path}: cannot read it ({exc.strerror})") from exc
    pairs = []
    for number, line in enumerate(lines, start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ConfigError(f"users file {path}, line {number}: expected 'name token'")
        pairs.append((parts[0], parts[1]))
    return pairs


def _pairs_from_env(value: str) -> list[tuple[str, str]]:
    pairs = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, sep, token = item.partition(":")
        if not sep or not name or not token:
            raise ConfigError(f"{USERS_ENV}: expected name:token pairs, got an item "
                              f"starting {item[:8]!r}")
        pairs.append((name, token))
    return pairs


class Users:
    """Token → user name. Empty means auth is off (a single local examiner)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        names = [name for name, _ in pairs]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ConfigError(f"user names given twice: {', '.join(sorted(duplicates))}")
        short = [name for name, token in pairs if len(token) < 12]
        if short:
            raise ConfigError(f"tokens of {', '.join(short)} are shorter than 12 characters")
        self._pairs = [(name, token.encode()) for name, token in pairs]

    @classmethod
    def from_environment(cls, users_file: str | None = None) -> Users:
        """The users file (argument or `SHOEMATCH_USERS_FILE`) and `SHOEMATCH_USERS`."""
        pairs: list[tuple[str, str]] = []
        path = users_file or os.environ.get(USERS_FILE_ENV)
        if path:
            pairs += _pairs_from_file(path)
        pairs += _pairs_from_env(os.environ.get(USERS_ENV, ""))
        return cls(pairs)

    def enabled(self, shared_token: str | None = None) -> bool:
        return bool(self._pairs or shared_token)

    def resolve(self, authorization: str | None, shared_token: str | None = None) -> str | None:
        """The user named by an `Authorization: Bearer …` header, or None; `shared_token` (the
        single API token of older deployments, read when the request comes) is user `api`.
        Every token is compared (constant time, no early exit): timing tells nothing."""
        if not authorization:
            return None
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return None
        candidate = presented.strip().encode()
        pairs = self._pairs + ([("api", shared_token.encode())] if shared_token else [])
        found = None
        for name, token in pairs:
            if hmac.compare_digest(candidate, token):
                found = name
        return found
