"""What Terry answers in chat: plain text and buttons, before any platform's markup.

``text`` is already inert (``terry.inert``): every piece of untrusted text in it (titles,
hosts, reasons, Claude's words) was rendered visibly. Each platform escapes what its own
markup would act on (``slack.py``, ``discord.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Answer", "Button", "ButtonAction"]


class ButtonAction(StrEnum):
    APPROVE = "approve"  # value: the proposal id
    REJECT = "reject"  # value: the proposal id
    CONFIRM = "confirm"  # value: a confirmation token (terry.chat.confirm)
    CANCEL = "cancel"  # value: unused


@dataclass(frozen=True)
class Button:
    label: str
    action: ButtonAction
    value: str
    danger: bool = False


@dataclass(frozen=True)
class Answer:
    text: str
    buttons: tuple[Button, ...] = ()
    ok: bool = True  # False: refused or failed (said in the text)
    public: bool = False  # shown to the channel, not only to the person who asked
