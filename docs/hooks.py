"""MkDocs hooks for the tokenpair documentation.

The docstrings use Sphinx roles (``:class:`Store```), which Markdown renders
as the role's name followed by code; this keeps the code and drops the role.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(
    r":(?:py:)?(?:class|meth|func|attr|data|exc|mod|obj|const):<code>(~?)([^<]+)</code>"
)


def _shorten(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    shown = target.rsplit(".", 1)[-1] if tilde else target
    return f"<code>{shown}</code>"


def on_page_content(html: str, **kwargs: Any) -> str:
    return _ROLE.sub(_shorten, html)
