"""Right-to-left text: a page's direction from its language, and values isolated so that an
Arabic or Hebrew name does not reorder the words around it ("Dear 3 ,مريم new events").

In HTML a merged value gets its own ``<span dir="auto">`` (see merge.py); where markup cannot go
(headers, the text part, ``<title>``, attributes) a value holding a strong right-to-left
character is wrapped in FIRST STRONG ISOLATE ... POP DIRECTIONAL ISOLATE (Unicode 6.3).
"""

from __future__ import annotations

import re

__all__ = ["FSI", "LRI", "PDI", "RLM", "RTL_LANGUAGES", "direction", "has_rtl", "isolate"]

FSI = "\u2068"
LRI = "\u2066"  # LEFT-TO-RIGHT ISOLATE: an address or a number, whatever the text around it
RLM = "\u200f"  # RIGHT-TO-LEFT MARK: a line of a right-to-left text part starts right to left
PDI = "\u2069"
RTL_LANGUAGES = frozenset({"ar", "he", "fa", "ur", "yi", "ps", "sd", "ug", "dv", "ckb"})

# Strong right-to-left characters: Hebrew, Arabic, Syriac, Thaana, NKo, Samaritan, Mandaic and
# their presentation forms (bidi classes R and AL).
_RTL = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc\U00010800-\U00010fff\U0001e800-\U0001efff]")


def direction(language: str) -> str:
    """``rtl`` for a right-to-left language tag (``ar``, ``he-IL``), else ``ltr``: a document's
    direction comes from its language, never from the first strong character of its content."""
    primary = language.strip().lower().replace("_", "-").split("-", 1)[0]
    return "rtl" if primary in RTL_LANGUAGES else "ltr"


def has_rtl(value: str) -> bool:
    return _RTL.search(value) is not None


def isolate(value: str) -> str:
    """``value`` between FSI and PDI when it holds right-to-left text; as it is otherwise, so
    the usual Latin name costs nothing and reads the same in every client."""
    if value.isascii():  # no right-to-left character, and no search (CPython knows it at once)
        return value
    return f"{FSI}{value}{PDI}" if _RTL.search(value) else value
