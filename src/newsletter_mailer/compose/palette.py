"""The email's and the served pages' colours in light and dark mode, derived from one accent
colour so that headings, links and buttons reach WCAG's 4.5:1 contrast (3:1 for a button's shape)
whatever accent an editor picks, from bright yellow to near-black.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "DARK_SURFACES",
    "DEFAULT_ACCENT",
    "LIGHT_SURFACES",
    "MIN_CONTRAST",
    "MIN_SHAPE_CONTRAST",
    "Palette",
    "contrast",
    "palette_for",
    "parse_colour",
]

DEFAULT_ACCENT = "#1a6fb5"
MIN_CONTRAST = 4.5
MIN_SHAPE_CONTRAST = 3.0  # WCAG 1.4.11: a button or a border against what it sits on
# A near-grey accent gives grey headings and links in dark mode; at 4.5:1 they would be dimmer
# than the body text (#e6edf3, 15:1), so they are lifted close to it instead.
GREY_DARK_CONTRAST = 12.0
GREY_SPREAD = 32  # channels this close together make a grey

Rgb = tuple[int, int, int]

# The surfaces accent-coloured text sits on: the card and the highlights box, per mode.
LIGHT_SURFACES = ("#ffffff", "#f6f8fa")
DARK_SURFACES = ("#161b22", "#21262d")
_DARK_TEXT = "#1f2328"


@dataclass(frozen=True)
class Palette:
    """Colours the template uses; every text colour meets MIN_CONTRAST on its surfaces."""

    accent: str  # as set: the button's background and the highlights box's border
    text_light: str  # headings and links in light mode ([brand] text_accent when set)
    text_dark: str  # headings and links in dark mode
    button_text: str  # the label on an accent-coloured button in light mode
    accent_dark: str  # buttons and borders in dark mode: the accent, lightened if it vanishes
    button_text_dark: str  # the label on accent_dark
    text_chosen: bool = False  # text_light is the editor's [brand] text_accent, used as set

    @property
    def adjusted(self) -> bool:
        """True when light-mode text could not use the accent as set."""
        return self.text_light != self.accent and not self.text_chosen


_HEX = re.compile(r"^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


def parse_colour(value: str) -> Rgb | None:
    """``#rgb`` or ``#rrggbb`` as a triple; None for anything else (names, rgb(), CSS tricks)."""
    match = _HEX.match(value.strip())
    if match is None:
        return None
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))


def _hex(rgb: Rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _luminance(rgb: Rgb) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(first: Rgb, second: Rgb) -> float:
    """WCAG 2 contrast ratio, 1 to 21."""
    a, b = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def _mix(rgb: Rgb, toward: Rgb, amount: float) -> Rgb:
    r, g, b = (round(c + (t - c) * amount) for c, t in zip(rgb, toward, strict=True))
    return (r, g, b)


def _readable(rgb: Rgb, surfaces: tuple[str, ...], toward: Rgb, target: float = MIN_CONTRAST) -> Rgb:
    """The colour nearest ``rgb`` on the way to ``toward`` that reaches ``target`` on every
    surface. Mixing all the way to black or white always gets there: both exceed 15:1 on our
    surfaces."""
    backgrounds = [parse_colour(s) or (0, 0, 0) for s in surfaces]
    for step in range(41):
        candidate = _mix(rgb, toward, step / 40)
        if all(contrast(candidate, bg) >= target for bg in backgrounds):
            return candidate
    return toward


def _label(rgb: Rgb) -> str:
    """White, our dark text or black: the first readable on a button of this colour."""
    if contrast(rgb, (255, 255, 255)) >= MIN_CONTRAST:
        return "#ffffff"
    if contrast(rgb, parse_colour(_DARK_TEXT) or (0, 0, 0)) >= MIN_CONTRAST:
        return _DARK_TEXT
    return "#000000"


def _is_grey(rgb: Rgb) -> bool:
    return max(rgb) - min(rgb) <= GREY_SPREAD


def palette_for(accent: str, text_accent: str = "") -> Palette:
    """The palette for an accent (one that is not a hex colour gives the default's), and the
    editor's own shade for text in light mode when given (used as set; ``check`` warns when it
    is hard to read)."""
    rgb = parse_colour(accent) or parse_colour(DEFAULT_ACCENT)
    assert rgb is not None
    white = (255, 255, 255)
    chosen = parse_colour(text_accent) if text_accent else None
    dark_target = GREY_DARK_CONTRAST if _is_grey(rgb) else MIN_CONTRAST
    shape = _readable(rgb, DARK_SURFACES, white, MIN_SHAPE_CONTRAST)
    return Palette(
        accent=_hex(rgb),
        text_light=_hex(chosen) if chosen else _hex(_readable(rgb, LIGHT_SURFACES, (0, 0, 0))),
        text_dark=_hex(_readable(rgb, DARK_SURFACES, white, dark_target)),
        button_text=_label(rgb),
        accent_dark=_hex(shape),
        button_text_dark=_label(shape),
        text_chosen=chosen is not None,
    )
