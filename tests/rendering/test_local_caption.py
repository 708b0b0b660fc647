"""The local provider's caption: the whole prompt, wrapped between words, sized to fit the frame."""

from __future__ import annotations

import pytest
import regex

from rendering.ffmpeg_binary import font_file
from rendering.providers.local_caption import ELLIPSIS, Measure, fit_caption, tokens, wrap

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
STORY = (
    "A red fox wakes in a snowy forest, stretches, and sniffs the cold air while a hawk circles "
    "above the pines and the first light of dawn turns the snow a soft pink."
)


def fit(text: str, width: int = 600, height: int = 300, max_size: int = 36, min_size: int = 12):
    return fit_caption(
        text, width=width, height=height, max_size=max_size, min_size=min_size, font_path=font_file()
    )


@pytest.mark.parametrize("width", [120, 200, 320, 600, 1200])
def test_lines_never_cut_a_word(width: int) -> None:
    caption = fit(STORY, width=width, height=2000)
    assert caption.complete
    for line in caption.lines:
        assert line == line.strip()
        assert all(word in STORY.split() for word in line.split())
    assert " ".join(caption.lines).split() == STORY.split()  # all words, in order, none split


def test_every_line_fits_the_width_at_the_chosen_size() -> None:
    measure = Measure(font_file())
    for width in (150, 300, 600):
        caption = fit(STORY, width=width, height=400)
        assert all(measure.width(line, caption.font_size) <= width for line in caption.lines)


def test_the_largest_font_that_holds_the_whole_prompt() -> None:
    assert fit("A fox.").font_size == 36
    smaller = fit(STORY * 3, width=400, height=300)
    assert smaller.complete and 12 <= smaller.font_size < 36
    # No larger size holds it: asked to stay above the chosen size, the caption comes back cut short.
    bigger = fit_caption(
        STORY * 3, width=400, height=300, max_size=36, min_size=smaller.font_size + 1, font_path=font_file()
    )
    assert not bigger.complete


def test_too_long_ends_with_an_ellipsis_after_a_whole_word() -> None:
    caption = fit(STORY * 30, width=300, height=100)
    assert not caption.complete
    assert caption.font_size == 12
    assert caption.lines[-1].endswith(" " + ELLIPSIS)
    words = " ".join(caption.lines)[: -len(ELLIPSIS)].split()
    assert words == (STORY * 30).split()[: len(words)]  # a prefix of whole words


def test_cjk_breaks_between_characters_but_keeps_punctuation_attached() -> None:
    text = "狐狸在雪中醒来。它跑过寂静的白桦林，太阳慢慢升起。「好冷」她说。" * 4  # noqa: RUF001
    caption = fit(text, width=200, height=2000)
    assert "".join(caption.lines) == text
    for line in caption.lines:
        assert line[0] not in "。，」"  # noqa: RUF001 -- a closing mark never starts a line
        assert line[-1] != "「"  # an opening one never ends it


def test_grapheme_clusters_are_never_split() -> None:
    text = f"A {FAMILY} family walks to the cafe\u0301 under a 🇫🇷 flag " * 6
    caption = fit(text, width=160, height=2000)
    clusters = {match.group() for match in regex.finditer(r"\X", text)}
    for line in caption.lines:
        for cluster in regex.finditer(r"\X", line):
            assert cluster.group() in clusters


def test_a_word_wider_than_any_line_is_broken_only_when_nothing_else_fits() -> None:
    url = "https://example.com/" + "a" * 200
    caption = fit(f"See {url} now", width=200, height=2000, min_size=12)
    assert caption.font_size == 12
    assert "".join(caption.lines).replace(" ", "") == f"See{url}now"


def test_tokens_and_wrap_basics() -> None:
    assert [token.text for token in tokens("  A  fox\tjumps ")] == ["A", "fox", "jumps"]
    measure = Measure(None)  # no font: the typical-advance estimate
    assert wrap(tokens("aaa bbb ccc"), width=10_000, size=10, measure=measure) == ["aaa bbb ccc"]
    assert wrap(tokens("aaaaaaaaaa"), width=5, size=10, measure=measure) is None
    assert fit_caption("", width=100, height=100, max_size=20, min_size=8, font_path=None).lines == ()
