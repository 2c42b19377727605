"""The tray icon's images, drawn with Pillow: nothing to ship, one look per state.

Each image is a rounded square in the state's colour with a white glyph: a card, a padlock,
a check mark, a person, an up arrow with a count badge, an exclamation mark. Shapes are drawn
at four times the size and scaled down, so edges stay smooth at 64x64 and in a 24-pixel tray.
Glyphs are shapes, not font characters, so they look the same on every machine; only the
badge's digits use Pillow's bundled font.
"""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image, ImageDraw, ImageFont

SIZE = 64
_SCALE = 4
WHITE = (255, 255, 255, 255)

Colour = tuple[int, int, int]
Glyph = Callable[[ImageDraw.ImageDraw, Colour], None]


def _box(*coords: float) -> list[float]:
    """Coordinates given on the 64-pixel grid, scaled to the drawing grid."""
    return [c * _SCALE for c in coords]


def _card(draw: ImageDraw.ImageDraw, background: Colour) -> None:
    draw.rounded_rectangle(_box(11, 18, 53, 46), radius=4 * _SCALE, outline=WHITE,
                           width=4 * _SCALE)
    draw.rounded_rectangle(_box(17, 25, 29, 35), radius=2 * _SCALE, fill=WHITE)


def _padlock(draw: ImageDraw.ImageDraw, background: Colour) -> None:
    draw.arc(_box(21, 10, 43, 36), start=180, end=360, fill=WHITE, width=5 * _SCALE)
    draw.line(_box(23.5, 23, 23.5, 30), fill=WHITE, width=5 * _SCALE)
    draw.line(_box(40.5, 23, 40.5, 30), fill=WHITE, width=5 * _SCALE)
    draw.rounded_rectangle(_box(15, 28, 49, 54), radius=4 * _SCALE, fill=WHITE)
    draw.ellipse(_box(29, 35, 35, 41), fill=background)
    draw.rectangle(_box(30.5, 39, 33.5, 47), fill=background)


def _check(draw: ImageDraw.ImageDraw, background: Colour) -> None:
    draw.line(_box(15, 33, 27, 45, 49, 20), fill=WHITE, width=8 * _SCALE, joint="curve")


def _person(draw: ImageDraw.ImageDraw, background: Colour) -> None:
    draw.ellipse(_box(22, 9, 42, 29), fill=WHITE)
    draw.chord(_box(12, 33, 52, 73), start=180, end=360, fill=WHITE)
    draw.rectangle(_box(12, 52, 52, 54), fill=WHITE)


def _arrow_up(draw: ImageDraw.ImageDraw, background: Colour) -> None:
    draw.polygon(_box(26, 8, 10, 28, 42, 28), fill=WHITE)
    draw.rectangle(_box(21, 27, 31, 52), fill=WHITE)


def _exclamation(draw: ImageDraw.ImageDraw, background: Colour) -> None:
    draw.rounded_rectangle(_box(27, 10, 37, 40), radius=4 * _SCALE, fill=WHITE)
    draw.ellipse(_box(27, 45, 37, 55), fill=WHITE)


GLYPHS: dict[str, Glyph] = {
    "card": _card,
    "padlock": _padlock,
    "check": _check,
    "person": _person,
    "arrow-up": _arrow_up,
    "exclamation": _exclamation,
}


def _badge(draw: ImageDraw.ImageDraw, background: Colour, count: int) -> None:
    """A white disc in the bottom-right corner with the count (9+ above nine)."""
    text = str(count) if count <= 9 else "9+"
    draw.ellipse(_box(34, 34, 62, 62), fill=WHITE, outline=background, width=2 * _SCALE)
    font = ImageFont.load_default(size=(23 if len(text) == 1 else 17) * _SCALE)
    draw.text((48 * _SCALE, 48.5 * _SCALE), text, fill=background, font=font, anchor="mm")


def draw_icon(colour: Colour, glyph: str, badge: int = 0) -> Image.Image:
    """A 64x64 RGBA image: ``colour`` rounded square, white ``glyph``, and a count badge
    when ``badge`` is positive."""
    big = Image.new("RGBA", (SIZE * _SCALE, SIZE * _SCALE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(big)
    draw.rounded_rectangle(_box(1, 1, 63, 63), radius=12 * _SCALE, fill=(*colour, 255))
    GLYPHS[glyph](draw, colour)
    if badge > 0:
        _badge(draw, colour, badge)
    return big.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
