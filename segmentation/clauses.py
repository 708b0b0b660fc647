"""Cutting a very long sentence into clauses, so that no segment is handed a piece of a clause.

A strategy never cuts inside a unit (a sentence, a list item, a screenplay speech). A unit longer than
``LONG_UNIT_CHARS`` characters (a run-on sentence without end punctuation, a pasted paragraph with only
commas) is first cut here into clauses, and the clauses become the units. The rule, in order:

1. Punctuation boundaries: right after a comma, semicolon, colon or dash (em dash, en dash, or
   `` - ``) followed by white space, and right after the CJK comma, enumeration comma, semicolon,
   colon or end marks (U+FF0C, U+3001, U+FF1B, U+FF1A, U+3002, U+FF01, U+FF1F) wherever they are.
   (Latin end marks are not clause boundaries here: a long unit is split into sentences first, by
   ``segmentation.text``, which knows "Dr." and "3.5".)
2. Only if a piece is still longer than the limit: before a conjunction that starts a clause (``and``,
   ``but``, ``or``, ``so``, ``yet``, ``then``, ``while``, ``as``, ``when``, ``until``, ``before``,
   ``after``, ``because``, ``where``, ``which``, ``who``, lower case), and only where both sides keep at
   least ``MIN_CLAUSE_WORDS`` words, so "salt and pepper" stays whole.
3. Never elsewhere: a piece with no such boundary stays whole, however long.

Each piece is made as long as the limit allows (the last boundary that keeps it within the limit, or
the first boundary after it when none does), and no piece is shorter than ``MIN_CLAUSE_CHARS``
characters (a boundary that would leave a scrap is skipped). Every cut lands on white space or right
after a punctuation mark, at a grapheme-cluster boundary; joining the pieces with single spaces gives
the unit back (white space between clauses normalised to one space).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

import regex

# About 40 words: more than one 10 s shot can show, so such a sentence may need to span segments.
LONG_UNIT_CHARS = 240
MIN_CLAUSE_CHARS = 16
MIN_CLAUSE_WORDS = 4

# A cut position is the end of the match (after the mark, before the white space that follows).
_PUNCTUATION_BOUNDARY = regex.compile(
    r"(?:[,;:\u2014\u2013]|\s-)(?=\s)|[\uff0c\u3001\uff1b\uff1a\u3002\uff01\uff1f]"
)
_CONJUNCTION_BOUNDARY = regex.compile(
    r"\s+(?=(?:and|but|or|so|yet|then|while|as|when|until|before|after|because|where|which|who)\b)"
)
_GRAPHEME = regex.compile(r"\X")
_WORD = regex.compile(r"\S+")


def _grapheme_boundaries(text: str) -> set[int]:
    return {match.end() for match in _GRAPHEME.finditer(text)}


def _punctuation_cuts(text: str) -> list[int]:
    return [match.end() for match in _PUNCTUATION_BOUNDARY.finditer(text)]


def _conjunction_cuts(text: str) -> list[int]:
    word_starts = [match.start() for match in _WORD.finditer(text)]
    cuts = []
    for match in _CONJUNCTION_BOUNDARY.finditer(text):
        cut = match.start()
        before = bisect.bisect_left(word_starts, cut)  # words starting before the cut
        if before >= MIN_CLAUSE_WORDS and len(word_starts) - before > MIN_CLAUSE_WORDS:
            cuts.append(cut)
    return cuts


def _cut(text: str, cuts: Iterable[int], limit: int) -> list[str]:
    """Cut `text` greedily at `cuts` into pieces of at most `limit` characters where the cuts allow.

    Linear in the text plus O(log n) per piece (a 200,000-character run-on is cut in milliseconds)."""
    safe = _grapheme_boundaries(text)
    end = len(text)
    usable = sorted(
        cut for cut in set(cuts) if cut in safe and MIN_CLAUSE_CHARS <= cut <= end - MIN_CLAUSE_CHARS
    )
    pieces: list[str] = []
    start = 0
    while end - start > limit:
        first = bisect.bisect_left(usable, start + MIN_CLAUSE_CHARS)  # no scrap of a piece
        if first == len(usable):
            break
        last = bisect.bisect_right(usable, start + limit) - 1  # the last cut within the limit
        cut = usable[last] if last >= first else usable[first]
        pieces.append(text[start:cut].strip())
        start = cut
    pieces.append(text[start:].strip())
    return [piece for piece in pieces if piece]


def split_long_unit(text: str, limit: int = LONG_UNIT_CHARS) -> list[str]:
    """`[text]` when it is at most `limit` characters, else its clauses by the module's rule."""
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    clauses: list[str] = []
    for piece in _cut(text, _punctuation_cuts(text), limit):
        if len(piece) > limit:
            clauses.extend(_cut(piece, _conjunction_cuts(piece), limit))
        else:
            clauses.append(piece)
    return clauses
