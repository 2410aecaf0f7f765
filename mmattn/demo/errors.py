"""What the page says when a request cannot be answered: :class:`UserError`, one line in the
user's language (``mmattn/teach/text_*.py``, keys ``err_*``) and a short title."""

from __future__ import annotations

from mmattn.teach.text import t


class UserError(ValueError):
    """A problem with what the user sent (not a bug): ``message`` is shown as it is."""

    def __init__(self, message: str, title: str = "Error"):
        super().__init__(message)
        self.message, self.title = message, title


def refuse(key: str, lang: str = "en", title: str = "error", **values) -> UserError:
    """The UserError ``err_<key>`` in ``lang``, its placeholders filled from ``values``."""
    return UserError(t(f"err_{key}", lang, **values), t(f"title_{title}", lang))


def from_library(e: Exception, lang: str = "en") -> UserError:
    """A library ValueError / TypeError (written for users, in English) as a UserError."""
    if isinstance(e, UserError):
        return e
    msg = str(e)
    return UserError(msg[:1].upper() + msg[1:], t("title_error", lang))
