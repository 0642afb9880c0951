"""What an AI answer is held to, from ``ai:`` in ``terry.yml`` (see docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from terry.ai.modules import DEFAULT_ALLOWED_MODULES, DEFAULT_ALLOWED_PATHS, check_allowed_modules
from terry.errors import ConfigError

if TYPE_CHECKING:
    from terry.config import AIConfig

__all__ = ["DEFAULT_ALLOWED_PATHS", "AnswerRules"]


@dataclass(frozen=True)
class AnswerRules:
    allowed_modules: tuple[str, ...] = DEFAULT_ALLOWED_MODULES
    allow_shell: bool = False
    # Below this confidence a valid answer is kept for a human instead of proposed.
    min_confidence: int = 60
    allowed_paths: tuple[str, ...] = DEFAULT_ALLOWED_PATHS
    max_tasks: int = 10

    def __post_init__(self) -> None:
        try:
            modules = check_allowed_modules(self.allowed_modules, allow_shell=self.allow_shell)
        except ValueError as exc:
            raise ConfigError(f"ai.allowed_modules: {exc}") from exc
        object.__setattr__(self, "allowed_modules", modules)
        if not 0 <= self.min_confidence <= 100:
            raise ConfigError("ai.min_confidence must be between 0 and 100")

    @classmethod
    def from_config(cls, ai: AIConfig) -> AnswerRules:
        return cls(
            allowed_modules=tuple(ai.allowed_modules),
            allow_shell=ai.allow_shell,
            min_confidence=ai.min_confidence,
            allowed_paths=tuple(ai.allowed_paths),
        )

    def roots(self, host_paths: tuple[str, ...]) -> tuple[str, ...]:
        """The roots a task may touch files under: the host's own, else the default."""
        return host_paths or self.allowed_paths
