"""The email's colours in light and dark mode, derived from one accent colour so that headings,
links and buttons reach WCAG's 4.5:1 contrast whatever accent an editor picks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "DARK_SURFACES",
    "DEFAULT_ACCENT",
    "LIGHT_SURFACES",
    "MIN_CONTRAST",
    "Palette",
    "contrast",
    "palette_for",
    "parse_colour",
]

DEFAULT_ACCENT = "#1a6fb5"
MIN_CONTRAST = 4.5

Rgb = tuple[int, int, int]

# The surfaces accent-coloured text sits on: the card and the highlights box, per mode.
LIGHT_SURFACES = ("#ffffff", "#f6f8fa")
DARK_SURFACES = ("#161b22", "#21262d")
_DARK_TEXT = "#1f2328"


@dataclass(frozen=True)
class Palette:
    """Colours the template uses; every text colour meets MIN_CONTRAST on its surfaces."""

    accent: str  # as set: the button's background and the highlights box's border
    text_light: str  # headings and links in light mode
    text_dark: str  # headings and links in dark mode
    button_text: str  # the label on an accent-coloured button, both modes

    @property
    def adjusted(self) -> bool:
        """True when light-mode text could not use the accent as set."""
        return self.text_light != self.accent


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


def _readable(rgb: Rgb, surfaces: tuple[str, ...], toward: Rgb) -> Rgb:
    """The colour nearest ``rgb`` on the way to ``toward`` that is readable on every surface.
    Mixing all the way to black or white always gets there: both exceed 15:1 on our surfaces."""
    backgrounds = [parse_colour(s) or (0, 0, 0) for s in surfaces]
    for step in range(41):
        candidate = _mix(rgb, toward, step / 40)
        if all(contrast(candidate, bg) >= MIN_CONTRAST for bg in backgrounds):
            return candidate
    return toward


def palette_for(accent: str) -> Palette:
    """The palette for an accent; one that is not a hex colour gives the default's."""
    rgb = parse_colour(accent) or parse_colour(DEFAULT_ACCENT)
    assert rgb is not None
    white, dark = (255, 255, 255), parse_colour(_DARK_TEXT) or (0, 0, 0)
    if contrast(rgb, white) >= MIN_CONTRAST:
        label = "#ffffff"
    elif contrast(rgb, dark) >= MIN_CONTRAST:
        label = _DARK_TEXT
    else:
        label = "#000000"
    return Palette(
        accent=_hex(rgb),
        text_light=_hex(_readable(rgb, LIGHT_SURFACES, (0, 0, 0))),
        text_dark=_hex(_readable(rgb, DARK_SURFACES, white)),
        button_text=label,
    )
