"""Plain HTTP/1.1 for the bot's own outgoing calls: ``HttpClient.request`` sends one and
reads its whole answer (a ``Response``), over kept-alive connections within ``Limits``.
A call fails as ``NotSent`` (it never left), ``NoAnswer`` or ``TimeoutError``."""

from .answers import MAX_BODY_BYTES, Headers, NoAnswer, Response
from .client import HttpClient, Limits, NotSent

__all__ = ["MAX_BODY_BYTES", "Headers", "HttpClient", "Limits", "NoAnswer", "NotSent", "Response"]
