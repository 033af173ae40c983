"""palette.py: WCAG contrast, and accent colours made readable in light and dark mode."""

from __future__ import annotations

import itertools

import pytest

from newsletter_mailer.compose.palette import (
    DARK_SURFACES,
    LIGHT_SURFACES,
    MIN_CONTRAST,
    MIN_SHAPE_CONTRAST,
    contrast,
    palette_for,
    parse_colour,
)


def rgb(value: str) -> tuple[int, int, int]:
    parsed = parse_colour(value)
    assert parsed is not None
    return parsed


def test_contrast_matches_wcag_reference_values() -> None:
    assert contrast(rgb("#000000"), rgb("#ffffff")) == pytest.approx(21.0)
    assert contrast(rgb("#777777"), rgb("#777777")) == pytest.approx(1.0)
    assert contrast(rgb("#767676"), rgb("#ffffff")) == pytest.approx(4.54, abs=0.01)  # the lightest AA grey
    assert contrast(rgb("#79c0ff"), rgb("#1a6fb5")) == pytest.approx(2.7, abs=0.05)  # the old dark-mode button


@pytest.mark.parametrize(
    ("text", "expected"),
    [("#1A6FB5", (26, 111, 181)), ("#fc0", (255, 204, 0)), (" #000000 ", (0, 0, 0))],
)
def test_hex_colours_parse(text: str, expected: tuple[int, int, int]) -> None:
    assert parse_colour(text) == expected


@pytest.mark.parametrize("text", ["tomato", "rgb(1,2,3)", "#12345", "#1a6fb5; color:red", "", "#ggg"])
def test_anything_else_is_not_a_colour(text: str) -> None:
    assert parse_colour(text) is None


def test_the_default_accent_is_kept_in_light_mode_and_lightened_for_dark() -> None:
    palette = palette_for("#1a6fb5")
    assert (palette.accent, palette.text_light, palette.button_text) == ("#1a6fb5", "#1a6fb5", "#ffffff")
    assert palette.text_dark == "#5393c8" and not palette.adjusted


STEPS = ("00", "33", "66", "99", "cc", "ff")


@pytest.mark.parametrize("red", STEPS)
def test_every_accent_gives_readable_text_in_both_modes(red: str) -> None:
    for green, blue in itertools.product(STEPS, STEPS):
        accent = f"#{red}{green}{blue}"
        palette = palette_for(accent)
        for surface in LIGHT_SURFACES:
            assert contrast(rgb(palette.text_light), rgb(surface)) >= MIN_CONTRAST, accent
        for surface in DARK_SURFACES:
            assert contrast(rgb(palette.text_dark), rgb(surface)) >= MIN_CONTRAST, accent
        assert contrast(rgb(palette.button_text), rgb(accent)) >= MIN_CONTRAST, accent
        assert palette.accent == accent


def test_an_unusable_value_falls_back_to_the_default_accent() -> None:
    assert palette_for("red;}</style>") == palette_for("#1a6fb5")


@pytest.mark.parametrize("red", STEPS)
def test_every_accent_gives_a_visible_button_in_dark_mode(red: str) -> None:
    for green, blue in itertools.product(STEPS, STEPS):
        palette = palette_for(f"#{red}{green}{blue}")
        for surface in DARK_SURFACES:
            assert contrast(rgb(palette.accent_dark), rgb(surface)) >= MIN_SHAPE_CONTRAST, palette
        assert contrast(rgb(palette.button_text_dark), rgb(palette.accent_dark)) >= MIN_CONTRAST, palette


def test_a_near_black_accent_is_lifted_in_dark_mode_to_near_the_body_text() -> None:
    palette = palette_for("#1a1a1a")
    assert palette.accent == "#1a1a1a" and palette.text_light == "#1a1a1a"
    assert contrast(rgb(palette.accent_dark), rgb(DARK_SURFACES[0])) >= MIN_SHAPE_CONTRAST
    assert contrast(rgb(palette.text_dark), rgb(DARK_SURFACES[1])) >= 12  # not #8c8c8c, dimmer than the text


def test_text_accent_is_the_editors_shade_for_text_in_light_mode() -> None:
    derived = palette_for("#ffff00")
    assert derived.text_light == "#737300" and derived.adjusted
    chosen = palette_for("#ffff00", "#6b4f00")
    assert chosen.text_light == "#6b4f00" and chosen.text_chosen and not chosen.adjusted
    assert chosen.accent == "#ffff00" and chosen.button_text == derived.button_text
    assert palette_for("#ffff00", "not a colour") == derived
