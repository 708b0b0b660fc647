"""The local provider's caption: the segment's whole prompt, wrapped to the frame and sized to fit.

drawtext does not wrap, so the lines are laid out here with the font drawtext will use (measured
with Pillow's FreeType binding, the same glyph advances), largest font size first:

* Lines break only between words (at white space) and, in text without spaces (Chinese, Japanese,
  Korean), between grapheme clusters where one side is a CJK character; a closing mark (``。``, ``」``,
  ``)``, ...) stays on the line of the character before it and an opening one with the character
  after it. A word is never cut, and a grapheme cluster (an accented letter, an emoji with its
  modifiers, a flag) never split.
* The font size is the largest from `max_size` down to `min_size` at which every line fits the width
  and all lines fit the height. A word wider than the line at `min_size` (a long URL) is the one case
  where a word is broken, at grapheme boundaries, because it cannot be shown otherwise.
* If even `min_size` cannot hold the whole prompt, as many lines as fit are kept and the last ends
  with " …" after a whole word, so the cut is visible and never falls mid-word.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import regex

ELLIPSIS = "\u2026"
_GRAPHEME = regex.compile(r"\X")
_CJK = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\u3000-\u303f\uff00-\uffef]")
# Never at the start of a line (closing marks) / never at the end of one (opening marks).
_NO_LINE_START = frozenset(
    "\u3001\u3002\uff0c\uff0e\uff01\uff1f\uff1a\uff1b\u300d\u300f\uff09\u3011\u3009\u300b\u3015"
    "\u30fc\u3005\u309d\u309e\u30fd\u30fe\u2026!?,.:;)]}\u201d\u2019"
)
_NO_LINE_END = frozenset("\u300c\u300e\uff08\u3010\u3008\u300a\u3014([{\u201c\u2018")
# Pillow measures at this size; advances scale linearly with the size (a small margin covers hinting).
_REFERENCE_SIZE = 100
_WIDTH_MARGIN = 1.04
# Extra space between lines as a share of the font size (drawtext's line_spacing).
LINE_GAP = 0.2
# A line's own height as a share of the font size when the font cannot say (DejaVu's is 1.164).
DEFAULT_FACE_HEIGHT = 1.2


@dataclass(frozen=True)
class Token:
    """An unbreakable piece of text and whether a space separates it from the piece before."""

    text: str
    space_before: bool


@dataclass(frozen=True)
class Caption:
    lines: tuple[str, ...]
    font_size: int
    line_spacing: int  # extra pixels between lines, as drawtext's line_spacing takes them
    complete: bool  # False when the prompt did not fit and the last line ends with the ellipsis

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def tokens(text: str) -> list[Token]:
    """Split `text` into the pieces a line may break between (see the module docstring)."""
    result: list[Token] = []
    for word in text.split():
        pieces: list[str] = []
        for cluster in (match.group() for match in _GRAPHEME.finditer(word)):
            if not pieces:
                pieces.append(cluster)
                continue
            previous = pieces[-1]
            cjk_edge = bool(_CJK.search(cluster[0]) or _CJK.search(previous[-1]))
            glued = (
                not cjk_edge  # a letter of a Latin (or other spaced) word
                or cluster[0] in _NO_LINE_START
                or previous[-1] in _NO_LINE_END
            )
            if glued:
                pieces[-1] = previous + cluster
            else:
                pieces.append(cluster)
        result.extend(Token(piece, space_before=index == 0) for index, piece in enumerate(pieces))
    if result:
        result[0] = Token(result[0].text, space_before=False)
    return result


class Measure:
    """Pixel widths of text at a font size, from one measurement per distinct piece."""

    def __init__(self, font_path: str | None) -> None:
        self._font = _load_font(font_path)
        self._widths: dict[str, float] = {}
        if self._font is not None:
            ascent, descent = self._font.getmetrics()
            self.face_height = (ascent + descent) / _REFERENCE_SIZE
        else:
            self.face_height = DEFAULT_FACE_HEIGHT

    def lines_that_fit(self, height: float, size: int) -> int:
        """How many lines drawtext can stack in `height` pixels: each the face's height, plus the gap."""
        line = self.face_height * size * _WIDTH_MARGIN
        return max(1, int((height + spacing(size)) // (line + spacing(size))))

    def width(self, text: str, size: int) -> float:
        reference = self._widths.get(text)
        if reference is None:
            if self._font is not None:
                reference = float(self._font.getlength(text))
            else:  # no font file: a typical sans advance, per grapheme (CJK ones twice as wide)
                reference = sum(
                    _REFERENCE_SIZE * (1.0 if _CJK.search(g) else 0.6)
                    for g in (m.group() for m in _GRAPHEME.finditer(text))
                )
            self._widths[text] = reference
        return reference * size / _REFERENCE_SIZE * _WIDTH_MARGIN


@lru_cache(maxsize=4)
def _load_font(font_path: str | None):
    if not font_path:
        return None
    try:
        from PIL import ImageFont

        return ImageFont.truetype(font_path, _REFERENCE_SIZE)
    except OSError:
        return None


def wrap(pieces: list[Token], width: float, size: int, measure: Measure) -> list[str] | None:
    """Greedy lines of at most `width` pixels at `size`; None if some piece alone is wider."""
    space = measure.width(" ", size)
    lines: list[str] = []
    line, used = "", 0.0
    for token in pieces:
        token_width = measure.width(token.text, size)
        if token_width > width:
            return None
        gap = space if (line and token.space_before) else 0.0
        if line and used + gap + token_width > width:
            lines.append(line)
            line, used = token.text, token_width
        else:
            line += (" " if gap else "") + token.text
            used += gap + token_width
    if line:
        lines.append(line)
    return lines


def spacing(size: int) -> int:
    return max(1, round(size * LINE_GAP))


def fit_caption(
    text: str, *, width: int, height: int, max_size: int, min_size: int, font_path: str | None
) -> Caption:
    """Lay `text` out in a `width` x `height` pixel box (rules in the module docstring)."""
    pieces = tokens(text)
    measure = Measure(font_path)
    if not pieces:
        return Caption((), max_size, spacing(max_size), True)
    min_size = max(1, min(min_size, max_size))

    def layout(size: int) -> list[str] | None:
        lines = wrap(pieces, width, size, measure)
        if lines is None or len(lines) > measure.lines_that_fit(height, size):
            return None
        return lines

    # The largest size that fits: fitting is monotone in the size, so bisect over the sizes.
    sizes = list(range(min_size, max_size + 1))
    low, high, best = 0, len(sizes) - 1, None
    while low <= high:
        middle = (low + high) // 2
        lines = layout(sizes[middle])
        if lines is not None:
            best, low = (sizes[middle], lines), middle + 1
        else:
            high = middle - 1
    if best is not None:
        size, lines = best
        return Caption(tuple(lines), size, spacing(size), True)
    return _truncated(pieces, width, height, min_size, measure)


def _break_wide(pieces: list[Token], width: float, size: int, measure: Measure) -> list[Token]:
    """Pieces wider than a whole line (a long URL at the smallest size), cut between graphemes."""
    result: list[Token] = []
    for token in pieces:
        if measure.width(token.text, size) <= width:
            result.append(token)
            continue
        chunk, first = "", True
        for cluster in (match.group() for match in _GRAPHEME.finditer(token.text)):
            if chunk and measure.width(chunk + cluster, size) > width:
                result.append(Token(chunk, token.space_before and first))
                chunk, first = "", False
            chunk += cluster
        result.append(Token(chunk, token.space_before and first))
    return result


def _truncated(pieces: list[Token], width: int, height: int, size: int, measure: Measure) -> Caption:
    pieces = _break_wide(pieces, width, size, measure)
    lines = wrap(pieces, width, size, measure) or []
    keep = measure.lines_that_fit(height, size)
    if len(lines) <= keep:
        return Caption(tuple(lines), size, spacing(size), True)
    kept = lines[:keep]
    # Drop whole tokens from the last line until " …" fits after it.
    last_tokens = tokens(kept[-1])
    while last_tokens:
        candidate = _join(last_tokens) + " " + ELLIPSIS
        if measure.width(candidate, size) <= width:
            break
        last_tokens.pop()
    kept[-1] = (_join(last_tokens) + " " + ELLIPSIS) if last_tokens else ELLIPSIS
    return Caption(tuple(kept), size, spacing(size), False)


def _join(pieces: list[Token]) -> str:
    return "".join(
        (" " if token.space_before and index else "") + token.text for index, token in enumerate(pieces)
    )
