"""Text-side helpers shared by every strategy: prompt validation, sentence and scene splitting,
shared-context extraction, balanced partitioning and composition of the per-segment prompts.

Everything here is pure (no ORM, no Django settings). Longer than 400 lines on purpose: it is the one
definition of how prompt text is read (sentences, scenes, labels) and written back (whole sentences,
shared context, cuts between grapheme clusters); the strategies only choose how to divide it.

Shared-context rule
-------------------
Each segment is rendered separately, so every segment prompt carries a *shared context* that keeps
the clips on-model:

1. Labelled lines. A line starting with one of the labels ``Style:``, ``Subject:``, ``Setting:``,
   ``Characters:`` (or ``Character:``), ``Look:`` or ``Camera:`` -- case-insensitive, optionally
   bulleted or in markdown bold, ASCII or full-width colon -- is global context. Labelled lines are
   removed from the narrative and, in the order written and verbatim (stripped), joined with newlines
   and prefixed to *every* segment's prompt. A label with nothing after the colon takes the bulleted
   or indented lines directly below it (e.g. a ``Characters:`` list); a label with no text at all is
   dropped.
2. First-sentence subject. If the prompt has no labelled lines, the first sentence of the narrative
   (scene markers and screenplay ``INT.``/``EXT.`` headings are not sentences) is the shared subject.
   It is prefixed to every segment *after the first*, and only when the narrative has more than one
   sentence and there is more than one segment. It is not repeated in a segment whose own text
   already contains it.

The composed prompt is deterministic::

    {shared context}\\n\\nShot {i} of {n}: {narrative}

The narrative is always whole units (see "Units" below; ``segmentation.parts`` lays them onto the
slices). When one action spans several consecutive segments, the header carries a cue saying where in
it the segment is: "Shot {i} of {n} (beginning, part 1 of 3)", "(continuation, part 2 of 3)",
"(ending, part 3 of 3)". The header is left out when there is only one segment, and the context block
is left out when there is no shared context for that segment. A composed prompt never exceeds
``max_segment_prompt_chars`` (only a prompt far longer than its segments can carry comes near it): the
narrative is then cut after its last whole sentence that fits, followed by " …" (at a word boundary
only when not even the first sentence fits), never the shared context; if the shared context alone
does not fit, SegmentationError(field="prompt").

Scene markers (used by the ``sentences`` strategy; every strategy drops the marker text itself):
``Scene 2:``/``SCENE 3 -``/``Shot 4.``/``Sequence 1``/``Shot 4 of 9:`` (a number, a number word or an
upper-case roman numeral such as ``Scene IV.``; "Shot mid-close..." and "Scene 2 opens..." are not
markers), screenplay headings ``INT.``/``EXT.``/``I/E`` (kept as the scene's heading), transitions on
their own line (``Cut to:``, ``Fade in:``, ``Dissolve to:``, ``Fade out.``), separator lines (``---``,
``***``, ``===``, ``* * *``) and markdown headings (kept as the scene's heading). Bulleted and
numbered list items stay in their scene as units of their own (the bullet dropped). Blank-line
paragraph breaks separate scenes when the prompt has none of those explicit markers; when it has
some, blank lines are only paragraph breaks inside a scene (a screenplay puts blank lines between
the heading and the action).

Units
-----
A unit is what a strategy may put in a segment but never cut: a sentence (split on ``. ! ? …`` before
white space, and on the CJK end marks U+3002, U+FF01, U+FF1F anywhere; abbreviations such as "Dr."
and "e.g.", initials, decimals, and an end mark followed by a lower-case word do not end a sentence;
closing quotes and brackets
stay with their sentence), a whole list item (an indented line below it continues it), a whole
screenplay speech (a character line in capitals, e.g. ``SARAH`` or ``JOHN (V.O.)``, with the dialogue
and parentheticals below it, written ``SARAH: Where is everyone?``; recognised when the prompt has an
``INT.``/``EXT.`` heading or the character line has an extension such as ``(V.O.)``), or a scene
heading. A unit longer than ``segmentation.clauses.LONG_UNIT_CHARS`` is cut into clauses by the rule in
``segmentation.clauses`` (a long list item or speech is first split into its sentences).
"""

from __future__ import annotations

import bisect
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import regex

from .clauses import LONG_UNIT_CHARS, split_long_unit
from .types import Cue, Part, SegmentationContext, SegmentationError

__all__ = [
    "CONTEXT_LABELS",
    "ParsedPrompt",
    "Scene",
    "allocate_proportional",
    "compose_segment_prompt",
    "compose_segment_prompts",
    "is_blank",
    "parse_prompt",
    "partition_balanced",
    "safe_cut_index",
    "shared_context_for",
    "split_scenes",
    "split_sentences",
    "split_words",
    "truncate_at_sentences",
    "truncate_text",
    "validate_prompt",
]

CONTEXT_LABELS: tuple[str, ...] = ("style", "subject", "setting", "characters", "character", "look", "camera")
ELLIPSIS = "…"

# --------------------------------------------------------------------------------------------------
# Blank text and prompt validation
# --------------------------------------------------------------------------------------------------

# Characters that render as nothing but are not `str.isspace()`: fillers and the blank braille cell.
_INVISIBLE = frozenset("\u115f\u1160\u2800\u3164\uffa0")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def is_blank(text: str) -> bool:
    """True if `text` has nothing visible: whitespace (incl. \\u3000, \\u00a0), zero-width and format
    characters (\\u200b, \\u200d, \\ufeff, direction marks) or control characters only."""
    for char in text.strip():
        if not (char.isspace() or char in _INVISIBLE or unicodedata.category(char) in _INVISIBLE_CATEGORIES):
            return False
    return True


def validate_prompt(prompt: object, context: SegmentationContext) -> str:
    """Return the prompt unchanged, or raise SegmentationError(field="prompt") if it is unusable."""
    if not isinstance(prompt, str):
        raise SegmentationError(
            f"prompt must be text, got {type(prompt).__name__}; describe the video you want", field="prompt"
        )
    if is_blank(prompt):
        raise SegmentationError("prompt is empty; describe the video you want to generate", field="prompt")
    if len(prompt) > context.max_prompt_chars:
        raise SegmentationError(
            f"prompt is {len(prompt)} characters long; the maximum is {context.max_prompt_chars} "
            "characters, so shorten it",
            field="prompt",
        )
    return prompt


# --------------------------------------------------------------------------------------------------
# Sentences
# --------------------------------------------------------------------------------------------------

# Closing quotes and brackets (ASCII, curly, guillemets and CJK corner/lenticular/full-width ones).
_CLOSERS = "\"')]}\u201d\u2019\u00bb\u203a\u300d\u300f\uff09\u3011\u3009\u300b\u3015"
_TERMINATOR_RE = re.compile(
    # Latin-style terminators must be followed by whitespace or the end of the text (so "3.5",
    # "example.com" and "a.b" never split); CJK terminators end a sentence wherever they are.
    rf"(?P<latin>[.!?…؟।]+)[{re.escape(_CLOSERS)}]*(?=\s|$)"
    rf"|(?P<cjk>[\u3002\uff01\uff1f\uff61]+)[{re.escape(_CLOSERS)}]*"  # CJK full stop, ! and ?
)
# Words that end with a period without ending the sentence, whatever follows them.
_ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "mx", "dr", "prof", "sr", "jr", "st", "mt", "ft", "vs", "v", "e.g", "i.e",
        "eg", "ie", "cf", "approx", "fig", "capt", "col", "gen", "lt", "sgt", "gov", "rev", "hon",
        "pres", "sen", "rep", "int", "ext", "vol", "ch", "pp",
    }
)  # fmt: skip
_INITIAL_RE = re.compile(r"^[A-Z]$")
_TERMINAL_CHARS = frozenset(".!?…:;\u3002\uff01\uff1f\uff61\u061f\u0964\uff1a" + _CLOSERS)


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x3000 <= code <= 0x9FFF  # CJK punctuation, kana, unified ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul syllables
        or 0xF900 <= code <= 0xFAFF
        or 0xFF00 <= code <= 0xFFEF
        or 0x20000 <= code <= 0x3FFFF
    )


# After a closing quote, these go on with the same sentence: the Japanese quotative particles to and
# tte (a quoted exclamation, then "she said") and the CJK commas.
_QUOTE_CONTINUERS = ("\u3068", "\u3063\u3066", "\u3001", "\uff0c")


def _ends_sentence(text: str, match: re.Match[str]) -> bool:
    if match.group("cjk"):
        closed = match.end() > match.end("cjk")
        return not (closed and text.startswith(_QUOTE_CONTINUERS, match.end()))
    # Next visible character: a lowercase letter means the sentence goes on ("Wait... what", "etc. and").
    # (Index scans, not slices: slicing a 200,000-character prompt per match would be quadratic.)
    after, length = match.end(), len(text)
    while after < length and text[after].isspace():
        after += 1
    if after < length and text[after].islower():
        return False
    if match.group("latin") == ".":
        end = match.start()
        start = end
        while start > 0 and end - start < 40 and not text[start - 1].isspace():
            start -= 1
        word = text[start:end].lstrip("\"'([{«\u201c\u2018")
        if word.lower() in _ABBREVIATIONS or _INITIAL_RE.match(word):
            return False
    return True


def split_sentences(text: str) -> list[str]:
    """Split text into sentences on . ! ? … (and ؟ ।) followed by whitespace, and on the CJK full
    stop, exclamation and question marks (U+3002, U+FF01, U+FF1F) wherever they are.

    Closing quotes and brackets stay with their sentence. Abbreviations ("Dr.", "Mr.", "e.g."),
    single initials ("J. R. R."), decimals ("3.5") and a terminator followed by a lowercase word do not
    split. Whitespace runs inside a sentence are kept as written; the sentences are stripped.
    """
    sentences: list[str] = []
    start = 0
    for match in _TERMINATOR_RE.finditer(text):
        if _ends_sentence(text, match):
            piece = text[start : match.end()].strip()
            if piece:
                sentences.append(piece)
            start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def split_words(text: str) -> list[str]:
    """Whitespace-separated words (Unicode whitespace), never splitting inside a word."""
    return text.split()


def _terminate(text: str) -> str:
    """Give a heading or list item an end mark so it reads as its own sentence when joined."""
    text = text.strip()
    if not text or text[-1] in _TERMINAL_CHARS:
        return text
    return text + ("。" if _is_cjk(text[-1]) else ".")


# --------------------------------------------------------------------------------------------------
# Scenes and labelled context
# --------------------------------------------------------------------------------------------------

_LABEL_RE = re.compile(
    r"^(?:[-*•+]\s+)?[*_]{0,2}(?P<label>" + "|".join(CONTEXT_LABELS) + r")[*_]{0,2}\s*[:\uff1a][*_]{0,2}"
    r"\s*(?P<value>.*)$",
    re.IGNORECASE,
)
_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    "sixteen|seventeen|eighteen|nineteen|twenty"
)
_SCENE_RE = re.compile(
    r"^(?:#{1,6}\s*)?[*_]{0,2}(?:scene|shot|sequence|场景|場景|シーン|장면)\s*(?:#\s*)?"
    # A number, a number word, or an upper-case roman numeral (so "Shot mid-close" is not a marker).
    rf"(?:\d+[a-z]?|{_NUMBER_WORDS}|(?-i:(?=[IVX])X{{0,3}}(?:IX|IV|V?I{{0,3}})))(?:\s+of\s+\d+)?[*_]{{0,2}}"
    # The separator: "Scene 2:", "Scene 2.", "SCENE 3 - ...", or nothing else on the line.
    r"(?:\s*[:\uff1a)]|\.(?!\d)|\s+[-\u2013\u2014|]|\s*$)[*_]{0,2}\s*(?P<rest>.*)$",
    re.IGNORECASE,
)
_TRANSITION_RE = re.compile(
    r"^(?:(?:smash|match|jump|hard|quick)\s+)?(?:cut\s+to|dissolve\s+to|wipe\s+to|fade\s+to(?:\s+black)?"
    r"|fade\s+in|fade\s+out)\s*(?:[:\uff1a]\s*(?P<rest>.*)|[.!…]*\s*$)",
    re.IGNORECASE,
)
_HEADING_RE = re.compile(r"^(?:(?:INT|EXT)\.?\s*/\s*(?:INT|EXT)|I\s*/\s*E|INT|EXT|Int\.|Ext\.)\.?\s+\S")
_MARKDOWN_HEADING_RE = re.compile(r"^#{1,6}\s+(?P<rest>.*?)\s*#*$")
_SEPARATOR_RE = re.compile(r"^(?:(?:[-\u2013\u2014_=~]\s*){3,}|(?:[*•·]\s*){3,})$")
_LIST_ITEM_RE = re.compile(r"^(?:[-*•+]|\d{1,3}[.)])\s+(?P<rest>\S.*)$")

# Every line that any of the patterns above can match starts like this (a cheap first check).
_MAY_BE_MARKER_RE = re.compile(
    r"^(?:[-\u2013\u2014_=~*\u2022\u00b7#+\d]|scene|shot|seq|cut|fade|dissolve|wipe|smash|match|jump|hard"
    r"|quick|int|ext|i\s*/|场景|場景|シーン|장면)",
    re.IGNORECASE,
)
# Line kinds produced by the first parsing pass.
_BLANK, _SEPARATOR, _MARKER, _HEADING, _ITEM, _TEXT = range(6)

# A screenplay character line: a name in capitals, optionally with an extension such as (V.O.),
# (O.S.) or (CONT'D), ending in a letter, a digit or the extension's bracket (so "NIGHT FALLS." is
# not one).
_CHARACTER_RE = re.compile(
    r"^(?P<name>[A-Z][A-Z0-9 .'\u2019&-]{0,38}[A-Z0-9])"
    r"\s*(?P<extension>\([A-Z0-9 .'\u2019/-]{1,20}\))?\s*\^?$"
)


@dataclass(frozen=True)
class Scene:
    """One scene of the narrative: an optional screenplay/markdown heading and its units (sentences,
    list items, speeches; see "Units" in the module docstring)."""

    heading: str | None
    sentences: tuple[str, ...]

    @property
    def units(self) -> tuple[str, ...]:
        """Heading (if any) then sentences: the pieces a split may cut between."""
        return ((self.heading,) if self.heading else ()) + self.sentences

    @property
    def beats(self) -> tuple[str, ...]:
        """The units with the heading joined to the unit after it: a heading alone is no shot."""
        if not self.heading:
            return self.sentences
        if not self.sentences:
            return (self.heading,)
        return (f"{self.heading} {self.sentences[0]}", *self.sentences[1:])

    @property
    def text(self) -> str:
        return " ".join(self.units)


@dataclass(frozen=True)
class ParsedPrompt:
    """A prompt split into labelled context lines and narrative scenes (derived views are cached).

    `whole_sentences` are the narrative's sentences before long ones were cut into clauses (None when
    built by hand: then the units are the sentences)."""

    context_lines: tuple[str, ...]
    scenes: tuple[Scene, ...]
    whole_sentences: tuple[str, ...] | None = None

    @property
    def labelled(self) -> bool:
        return bool(self.context_lines)

    @cached_property
    def shared_context(self) -> str:
        """The labelled context block (empty when there are no labelled lines)."""
        return "\n".join(self.context_lines)

    @cached_property
    def units(self) -> list[str]:
        return [unit for scene in self.scenes for unit in scene.units]

    @cached_property
    def sentences(self) -> list[str]:
        return [sentence for scene in self.scenes for sentence in scene.sentences]

    @cached_property
    def beats(self) -> list[str]:
        """Every scene's beats (`Scene.beats`), in order."""
        return [beat for scene in self.scenes for beat in scene.beats]

    @cached_property
    def narrative(self) -> str:
        return " ".join(self.units)

    @cached_property
    def subject(self) -> str | None:
        """The first-sentence shared subject, when the fallback rule applies (no labels, >1 sentence)."""
        if self.labelled:
            return None
        sentences = self.whole_sentences if self.whole_sentences is not None else tuple(self.sentences)
        return sentences[0] if len(sentences) > 1 else None


class _SceneBuilder:
    def __init__(self) -> None:
        self.heading: str | None = None
        # (text, whole): a whole chunk (a list item, a speech) is one unit, not split into sentences.
        self.chunks: list[tuple[str, bool]] = []
        self.lines: list[str] = []

    def end_chunk(self) -> None:
        if self.lines:
            self.chunks.append((" ".join(self.lines), False))
            self.lines = []

    def add_chunk(self, text: str, *, whole: bool = False) -> None:
        self.end_chunk()
        if text:
            self.chunks.append((text, whole))

    def extend_last_chunk(self, text: str) -> None:
        """Continue the last whole chunk (an indented line below a list item)."""
        last, whole = self.chunks[-1]
        self.chunks[-1] = (f"{last} {text}", whole)

    def build(self, whole_sentences: list[str]) -> Scene | None:
        """The scene; its whole sentences (before clause cuts) are appended to `whole_sentences`."""
        self.end_chunk()
        units: list[str] = []
        for text, whole in self.chunks:
            if whole:  # given its end mark only now: an indented line may have continued it
                text = _terminate(text)
            sentences = [text] if whole and len(text) <= LONG_UNIT_CHARS else split_sentences(text)
            whole_sentences.extend(sentences)
            for sentence in sentences:
                units.extend(split_long_unit(sentence))
        if not units and not self.heading:
            return None
        return Scene(heading=self.heading, sentences=tuple(units))


def _normalise_lines(text: str) -> list[str]:
    # \u2029 is a paragraph separator: make it a blank line. splitlines() handles \r\n, \r, \u2028, ...
    return text.replace("\u2029", "\n\n").splitlines()


def _classify(line: str) -> tuple[int, str]:
    if not _MAY_BE_MARKER_RE.match(line):
        return _TEXT, line  # fast path: most lines cannot start a marker, heading or list item
    if _SEPARATOR_RE.match(line):
        return _SEPARATOR, ""
    if match := _SCENE_RE.match(line):
        return _MARKER, match.group("rest").strip()
    if match := _TRANSITION_RE.match(line):
        return _MARKER, (match.group("rest") or "").strip()
    if _HEADING_RE.match(line):
        return _HEADING, line
    if match := _MARKDOWN_HEADING_RE.match(line):
        return _HEADING, match.group("rest")
    if match := _LIST_ITEM_RE.match(line):
        return _ITEM, match.group("rest")
    return _TEXT, line


def _speaker(line: str, screenplay: bool) -> str | None:
    """The character cue of a screenplay speech ("JOHN (V.O.)"), or None if `line` is not one."""
    if len(line) > 60 or not any(char.isalpha() for char in line):
        return None
    match = _CHARACTER_RE.match(line)
    if match is None or not (screenplay or match.group("extension")):
        return None
    return " ".join(line.rstrip("^ ").split())


def _speeches(tokens: list[tuple[int, str, bool]]) -> list[tuple[int, str, bool]]:
    """Fold each screenplay speech (a character line, then dialogue and parenthetical lines up to a
    blank line) into one whole unit "NAME: dialogue", kept as a list item is."""
    screenplay = any(kind == _HEADING and _HEADING_RE.match(text) for kind, text, _ in tokens)
    folded: list[tuple[int, str, bool]] = []
    position = 0
    while position < len(tokens):
        kind, text, indented = tokens[position]
        name = _speaker(text, screenplay) if kind == _TEXT else None
        following = position + 1
        dialogue: list[str] = []
        while (
            name
            and following < len(tokens)
            and tokens[following][0] == _TEXT
            and _speaker(tokens[following][1], screenplay) is None  # the next speech, not this one's
        ):
            dialogue.append(tokens[following][1])
            following += 1
        if name and dialogue:
            folded.append((_ITEM, _terminate(f"{name}: {' '.join(dialogue)}"), False))
            position = following
        else:
            folded.append((kind, text, indented))
            position += 1
    return folded


def parse_prompt(prompt: str) -> ParsedPrompt:
    """Split a prompt into labelled context lines and narrative scenes (see the module docstring).

    Raises SegmentationError(field="prompt") if nothing is left to describe (e.g. only "---").
    """
    context: list[list[str]] = []
    tokens: list[tuple[int, str, bool]] = []  # (kind, text, indented)
    absorbing: list[str] | None = None  # an empty "Characters:" label taking the list below it
    for raw in _normalise_lines(prompt):
        line = raw.strip()
        if not line or is_blank(line):
            tokens.append((_BLANK, "", False))
            absorbing = None
            continue
        if match := _LABEL_RE.match(line):
            entry = [line]
            context.append(entry)
            absorbing = None if match.group("value").strip() else entry
            continue
        kind, text = _classify(line)
        indented = raw[:1].isspace()
        if absorbing is not None and (kind == _ITEM or (kind == _TEXT and indented)):
            absorbing.append(line)
            continue
        absorbing = None
        tokens.append((kind, text, indented))
    tokens = _speeches(tokens)

    explicit = any(kind in (_SEPARATOR, _MARKER, _HEADING) for kind, _, _ in tokens)
    scenes: list[Scene] = []
    whole_sentences: list[str] = []
    builder = _SceneBuilder()
    in_item = False  # the last line was a list item (or continued one): an indented line continues it

    def flush() -> None:
        nonlocal builder
        scene = builder.build(whole_sentences)
        if scene is not None:
            scenes.append(scene)
        builder = _SceneBuilder()

    for kind, text, indented in tokens:
        if kind == _TEXT and indented and in_item:
            builder.extend_last_chunk(text)
            continue
        in_item = kind == _ITEM
        if kind == _BLANK:
            if explicit:
                builder.end_chunk()
            else:
                flush()
        elif kind == _SEPARATOR:
            flush()
        elif kind == _MARKER:
            flush()
            builder.add_chunk(_terminate(text))
        elif kind == _HEADING:
            flush()
            builder.heading = _terminate(text) or None
        elif kind == _ITEM:
            builder.add_chunk(text, whole=True)
        else:
            builder.lines.append(text)
    flush()

    # A label with an empty value and nothing below it carries no information.
    context_lines = tuple(
        "\n".join(entry) for entry in context if len(entry) > 1 or not _label_only(entry[0])
    )
    if not context_lines and not scenes:
        raise SegmentationError(
            "prompt has no description left once scene markers are removed; describe what happens",
            field="prompt",
        )
    return ParsedPrompt(
        context_lines=context_lines, scenes=tuple(scenes), whole_sentences=tuple(whole_sentences)
    )


def _label_only(line: str) -> bool:
    match = _LABEL_RE.match(line)
    return bool(match) and not match.group("value").strip(" *_")


def split_scenes(text: str) -> list[Scene]:
    """The narrative scenes of `text` (labelled context lines removed)."""
    return list(parse_prompt(text).scenes)


# --------------------------------------------------------------------------------------------------
# Balanced partitioning
# --------------------------------------------------------------------------------------------------


def _closest(values: Sequence[float], lo: int, hi: int, target: float) -> int:
    """Index in [lo, hi] of the nondecreasing `values` closest to `target` (ties: the lower index)."""
    j = bisect.bisect_left(values, target, lo, hi + 1)
    candidates = [i for i in (j - 1, j) if lo <= i <= hi]
    return min(candidates, key=lambda i: (abs(values[i] - target), i))


def partition_balanced(
    weights: Sequence[float], n: int, *, preferred_cuts: Iterable[int] = (), tolerance: float = 0.0
) -> list[tuple[int, int]]:
    """Cut `weights` into `n` consecutive non-empty groups of roughly equal total weight.

    Returns `(start, end)` index ranges. Cut k lands on the boundary whose running total is closest to
    k/n of the total; a boundary in `preferred_cuts` (e.g. a scene break) wins if it is at most
    `tolerance` further from that target. Needs 1 <= n <= len(weights). O(n log m).
    """
    count = len(weights)
    if not 1 <= n <= count:
        raise ValueError(f"cannot cut {count} items into {n} non-empty groups")
    prefix = [0.0]
    for weight in weights:
        prefix.append(prefix[-1] + weight)
    total = prefix[-1]
    preferred = sorted({cut for cut in preferred_cuts if 0 < cut < count})
    preferred_totals = [prefix[cut] for cut in preferred]
    cuts = [0]
    for k in range(1, n):
        lo, hi = cuts[-1] + 1, count - (n - k)
        target = total * k / n
        best = _closest(prefix, lo, hi, target)
        first = bisect.bisect_left(preferred, lo)
        last = bisect.bisect_right(preferred, hi) - 1
        if first <= last:
            option = preferred[_closest(preferred_totals, first, last, target)]
            if abs(prefix[option] - target) <= abs(prefix[best] - target) + tolerance:
                best = option
        cuts.append(best)
    cuts.append(count)
    return [(cuts[i], cuts[i + 1]) for i in range(n)]


def allocate_proportional(weights: Sequence[float], n: int) -> list[int]:
    """Share `n` slots among items in proportion to their weights, at least one each (largest remainder).

    Needs 1 <= len(weights) <= n. Ties go to the earlier item.
    """
    count = len(weights)
    if not 1 <= count <= n:
        raise ValueError(f"cannot give each of {count} items at least one of {n} slots")
    total = float(sum(weights))
    ideal = [n * weight / total for weight in weights] if total > 0 else [n / count] * count
    shares = [max(1, math.floor(value)) for value in ideal]
    assigned = sum(shares)
    while assigned < n:
        i = max(range(count), key=lambda i: (ideal[i] - shares[i], -i))
        shares[i] += 1
        assigned += 1
    while assigned > n:
        i = min((i for i in range(count) if shares[i] > 1), key=lambda i: (ideal[i] - shares[i], -i))
        shares[i] -= 1
        assigned -= 1
    return shares


# --------------------------------------------------------------------------------------------------
# Unicode-safe truncation
# --------------------------------------------------------------------------------------------------


# One extended grapheme cluster (a user-perceived character: a letter with its accents, an emoji with its
# modifiers and joiners, a flag), by Unicode's own rules (UAX #29) as the `regex` package implements them.
_GRAPHEME = regex.compile(r"\X")


# A position where a grapheme cluster certainly starts, whatever came before: an ordinary character
# (Grapheme_Cluster_Break=Other) after one that joins nothing to what follows (not a ZWJ, a Prepend
# sign, a Hangul jamo or syllable, or an Extend mark, which in an Indic conjunct does join). Scanning
# clusters from such a point gives the same boundaries as scanning from the start of the text.
_CLUSTER_START = regex.compile(
    r"(?<=[\p{GCB=Other}\p{GCB=Control}\p{GCB=CR}\p{GCB=LF}\p{GCB=SpacingMark}])\p{GCB=Other}"
)
# How far back a cut looks for such a point before it scans from the start: clusters are short, and
# scanning from the start for every cut made planning a 200,000-character unspaced prompt quadratic.
_CUT_WINDOW = 256


def safe_cut_index(text: str, index: int) -> int:
    """The largest position <= index where `text` can be cut without breaking a grapheme cluster."""
    index = max(0, min(index, len(text)))
    if index in (0, len(text)):
        return index
    start = max(0, index - _CUT_WINDOW)
    if start:
        anchor = _CLUSTER_START.search(text, start, index)
        start = anchor.start() if anchor else 0
    cut = start
    for match in _GRAPHEME.finditer(text, start):
        if match.end() > index:
            break
        cut = match.end()
    return cut


def truncate_text(text: str, limit: int, marker: str = ELLIPSIS) -> str:
    """`text` if it fits in `limit` characters, else cut at a word boundary and end with `marker`.

    Text without usable spaces (e.g. CJK) is cut at a grapheme-cluster boundary instead.
    """
    if len(text) <= limit:
        return text
    if limit <= len(marker):
        return marker[: max(limit, 0)]
    room = limit - len(marker)
    space = max(text.rfind(" ", 0, room + 1), text.rfind("\n", 0, room + 1))
    cut = len(text[:space].rstrip()) if space >= room // 2 else 0
    if cut == 0:  # no usable space (e.g. CJK): cut between grapheme clusters
        cut = safe_cut_index(text, room)
    return text[:cut].rstrip() + marker


# --------------------------------------------------------------------------------------------------
# Composition
# --------------------------------------------------------------------------------------------------


def shared_context_for(parsed: ParsedPrompt, index: int, count: int, narrative: str) -> str:
    """The shared context to prefix to segment `index` (0-based) of `count`, per the module rule."""
    if parsed.labelled:
        return parsed.shared_context
    subject = parsed.subject
    if subject and count > 1 and index > 0 and subject not in narrative:
        return subject
    return ""


def compose_segment_prompt(
    narrative: str,
    index: int,
    count: int,
    *,
    shared_context: str = "",
    cue: Cue | None = None,
    max_chars: int = 32000,
    context_description: str = "the shared context",
) -> str:
    """Build one segment prompt: "{context}\\n\\nShot {i} of {n}: {narrative}" (see module docstring).

    Truncates only the narrative to respect `max_chars`; raises SegmentationError(field="prompt") if the
    shared context and header alone leave no room.
    """
    header = ""
    if count > 1:
        header = f"Shot {index + 1} of {count}" + (f" ({cue.label})" if cue else "")
    narrative = narrative.strip()
    if header and narrative:
        lead, body = f"{header}: ", narrative
    else:
        lead, body = header, narrative
    if shared_context:
        lead = f"{shared_context}\n\n{lead}" if (lead or body) else shared_context
    room = max_chars - len(lead)
    if room < (1 if body else 0) and not shared_context:
        raise SegmentationError(
            f"a segment prompt limit of {max_chars} characters is too small to hold even the shot header "
            f"{header!r}; raise max_segment_prompt_chars",
            field="segments",
        )
    if room < (1 if body else 0):
        raise SegmentationError(
            f"{context_description} is {len(shared_context)} characters, which leaves no room for the shot "
            f"description in a segment prompt of at most {max_chars} characters; shorten it",
            field="prompt",
        )
    return lead + truncate_at_sentences(body, room)


def truncate_at_sentences(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else its leading whole sentences that fit, then " …";
    `truncate_text` (a word boundary) when not even the first sentence fits."""
    if len(text) <= limit:
        return text
    room = limit - len(ELLIPSIS) - 1
    kept, used = [], 0
    for sentence in split_sentences(text):
        needed = len(sentence) + (1 if kept else 0)
        if used + needed > room:
            break
        kept.append(sentence)
        used += needed
    if not kept:
        return truncate_text(text, limit)
    return " ".join(kept) + " " + ELLIPSIS


def compose_segment_prompts(parsed: ParsedPrompt, parts: Sequence[Part], max_chars: int) -> list[str]:
    """Compose every segment prompt from its part (whole units and a cue), applying the shared-context
    rule."""
    description = (
        "the shared context (the Style:/Subject:/Setting:/... lines)"
        if parsed.labelled
        else "the first sentence, which is repeated in every segment as the shared subject,"
    )
    count = len(parts)
    return [
        compose_segment_prompt(
            part.text,
            index,
            count,
            shared_context=shared_context_for(parsed, index, count, part.text),
            cue=part.cue,
            max_chars=max_chars,
            context_description=description,
        )
        for index, part in enumerate(parts)
    ]
