"""Text-side rules: blank detection, sentences, scenes, labelled context, partitioning, truncation."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from segmentation.text import (
    CONTEXT_LABELS,
    ParsedPrompt,
    Scene,
    allocate_proportional,
    compose_segment_prompt,
    compose_segment_prompts,
    is_blank,
    parse_prompt,
    partition_balanced,
    safe_cut_index,
    shared_context_for,
    split_scenes,
    split_sentences,
    split_words,
    truncate_text,
)
from segmentation.types import Cue, Part, SegmentationError

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # man ZWJ woman ZWJ girl
FLAG_FR = "\U0001f1eb\U0001f1f7"
E_ACUTE = "e\u0301"  # e + combining acute accent
LQ, RQ = "\u201c", "\u201d"  # curly double quotes
CJK_FULL_STOP, CJK_BANG, CJK_QUESTION = "\u3002", "\uff01", "\uff1f"


# --- blank text -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", " ", "\t\n\r", "\u3000", "\u00a0", "\u2028\u2029", "\u200b", "\ufeff\u200d\u200e", " \u3164 "],
)
def test_blank(text: str) -> None:
    assert is_blank(text)


@pytest.mark.parametrize("text", ["a", " x ", "\U0001f600", CJK_FULL_STOP, "\u200bb", "\u0301"])
def test_not_blank(text: str) -> None:
    assert not is_blank(text)


# --- sentences ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello world. How are you? Fine!", ["Hello world.", "How are you?", "Fine!"]),
        (
            "Dr. Smith met Mr. Jones and Mrs. Lee. They talked.",
            ["Dr. Smith met Mr. Jones and Mrs. Lee.", "They talked."],
        ),
        (
            "Use props, e.g. a hat, i.e. something. Then leave.",
            ["Use props, e.g. a hat, i.e. something.", "Then leave."],
        ),
        ("It is 3.5 km away. Version 2.0 ships.", ["It is 3.5 km away.", "Version 2.0 ships."]),
        ("Visit example.com today. Now.", ["Visit example.com today.", "Now."]),
        ("It costs $3. Then more.", ["It costs $3.", "Then more."]),
        ("Wait... what happened? Nothing.", ["Wait... what happened?", "Nothing."]),
        ("He paused\u2026 Then he ran.", ["He paused\u2026", "Then he ran."]),
        ("Really?! Yes!!! Ok.", ["Really?!", "Yes!!!", "Ok."]),
        ('She said "Go!" Then she left.', ['She said "Go!"', "Then she left."]),
        (f"{LQ}Stop!{RQ} she cried. He stopped.", [f"{LQ}Stop!{RQ} she cried.", "He stopped."]),
        ("(A quiet street.) Rain falls.", ["(A quiet street.)", "Rain falls."]),
        ("J. R. R. Tolkien writes. Then sleeps.", ["J. R. R. Tolkien writes.", "Then sleeps."]),
        ("No terminal punctuation", ["No terminal punctuation"]),
        ("Trailing words. and lowercase continues.", ["Trailing words. and lowercase continues."]),
        ("   ", []),
        ("", []),
        (
            f"\u732b\u304c\u5bdd\u3066\u3044\u308b{CJK_FULL_STOP}\u72ac\u304c\u8d70\u308b{CJK_BANG}\u9ce5\u306f{CJK_QUESTION}",
            [
                f"\u732b\u304c\u5bdd\u3066\u3044\u308b{CJK_FULL_STOP}",
                f"\u72ac\u304c\u8d70\u308b{CJK_BANG}",
                f"\u9ce5\u306f{CJK_QUESTION}",
            ],
        ),
        (
            f"\u4ed6\u8bf4\uff1a\u300c\u8d70\u5427{CJK_FULL_STOP}\u300d\u7136\u540e\u79bb\u5f00{CJK_FULL_STOP}",
            [
                f"\u4ed6\u8bf4\uff1a\u300c\u8d70\u5427{CJK_FULL_STOP}\u300d",
                f"\u7136\u540e\u79bb\u5f00{CJK_FULL_STOP}",
            ],
        ),
        (
            "مرحبا. كيف حالك؟ بخير.",  # right-to-left text with the Arabic question mark
            ["مرحبا.", "كيف حالك؟", "بخير."],
        ),
        (
            f"A {FAMILY} walks. Caf{E_ACUTE} opens! {FLAG_FR} waves.",
            [f"A {FAMILY} walks.", f"Caf{E_ACUTE} opens!", f"{FLAG_FR} waves."],
        ),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_split_sentences_keeps_every_character() -> None:
    text = "One. Two! Three? Dr. Who arrives at 3.5 p.m. exactly. \u5b8c\u4e86\u3002\u7d42\u308f\u308a"
    assert split_sentences(text) == [
        "One.",
        "Two!",
        "Three?",
        "Dr. Who arrives at 3.5 p.m. exactly.",
        "\u5b8c\u4e86\u3002",
        "\u7d42\u308f\u308a",
    ]
    assert " ".join(split_sentences(text)).replace(" ", "") == text.replace(" ", "")


def test_split_words_uses_unicode_whitespace() -> None:
    assert split_words("a\u3000b\u00a0c  d\n") == ["a", "b", "c", "d"]


# --- labelled shared context ----------------------------------------------------------------------


@pytest.mark.parametrize("label", CONTEXT_LABELS)
@pytest.mark.parametrize("spelling", [str.lower, str.upper, str.title])
def test_every_label_is_context_case_insensitive(label: str, spelling: Callable[[str], str]) -> None:
    line = f"{spelling(label)}: warm light"
    parsed = parse_prompt(f"{line}\nA fox runs. It jumps.")
    assert parsed.context_lines == (line,)
    assert parsed.narrative == "A fox runs. It jumps."
    assert parsed.labelled and parsed.subject is None


@pytest.mark.parametrize(
    "line",
    [
        "**Style:** noir",
        "- Camera: handheld",
        "  Look : grainy 16mm",
        "Setting\uff1a\u4eac\u90fd\u306e\u591c",
    ],
)
def test_label_variants(line: str) -> None:
    parsed = parse_prompt(f"{line}\nThe fox runs.")
    assert parsed.context_lines == (line.strip(),)
    assert parsed.narrative == "The fox runs."


def test_labels_anywhere_are_removed_from_narrative_in_order() -> None:
    parsed = parse_prompt("A fox runs.\nStyle: noir.\nIt jumps.\n\nCamera: slow dolly.\nIt lands.")
    assert parsed.context_lines == ("Style: noir.", "Camera: slow dolly.")
    assert parsed.shared_context == "Style: noir.\nCamera: slow dolly."
    assert "Style" not in parsed.narrative and "dolly" not in parsed.narrative
    assert parsed.sentences == ["A fox runs.", "It jumps.", "It lands."]


def test_empty_label_takes_the_list_below_it() -> None:
    parsed = parse_prompt("Characters:\n- Anna, a pilot\n  Ben, her son\nThey fly home. It rains.")
    assert parsed.context_lines == ("Characters:\n- Anna, a pilot\nBen, her son",)
    assert parsed.sentences == ["They fly home.", "It rains."]


def test_empty_label_alone_is_dropped_and_unindented_text_stays_narrative() -> None:
    parsed = parse_prompt("Style:\nA fox runs. It jumps.")
    assert parsed.context_lines == ()
    assert parsed.sentences == ["A fox runs.", "It jumps."]
    assert parsed.subject == "A fox runs."


@pytest.mark.parametrize(
    "text", ["Lookout: a tower stands.", "Stylish: a fox.", "The style: noir.", "Sub: x."]
)
def test_not_labels(text: str) -> None:
    assert parse_prompt(text).context_lines == ()


def test_subject_fallback_needs_more_than_one_sentence() -> None:
    assert parse_prompt("A fox runs through snow").subject is None
    assert parse_prompt("A fox runs. It jumps.").subject == "A fox runs."


def test_subject_skips_screenplay_heading() -> None:
    parsed = parse_prompt("INT. BARN - NIGHT\nA fox hides. A dog sniffs.")
    assert parsed.subject == "A fox hides."


# --- scenes ---------------------------------------------------------------------------------------


def sentences_per_scene(text: str) -> list[list[str]]:
    return [list(scene.units) for scene in split_scenes(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Scene 1: A beach.\nWaves roll.\nScene 2: A cliff.\nWind blows.",
            [["A beach.", "Waves roll."], ["A cliff.", "Wind blows."]],
        ),
        ("SCENE 3 - The cliff\nWind blows.\nSCENE FOUR: Night", [["The cliff.", "Wind blows."], ["Night."]]),
        ("Scene II. Dawn breaks.\nShot 4 of 9: Birds sing.", [["Dawn breaks."], ["Birds sing."]]),
        ("## Scene 1\nA beach.\n## Scene 2\nA cliff.", [["A beach."], ["A cliff."]]),
        (
            "INT. KITCHEN - NIGHT\n\nAnna cooks.\n\nShe hums.\n\nEXT. GARDEN - DAY\n\nRain.",
            [["INT. KITCHEN - NIGHT.", "Anna cooks.", "She hums."], ["EXT. GARDEN - DAY.", "Rain."]],
        ),
        ("I/E. CAR - MOVING\nThey drive.", [["I/E. CAR - MOVING.", "They drive."]]),
        ("A room.\nCut to:\nA street.\nFADE OUT.", [["A room."], ["A street."]]),
        (
            "Fade in: a dark room.\nA lamp flickers.\nSmash cut to: daylight.",
            [["a dark room.", "A lamp flickers."], ["daylight."]],
        ),
        (
            "A room.\n---\nA street.\n* * *\nA park.\n===\nA lake.",
            [["A room."], ["A street."], ["A park."], ["A lake."]],
        ),
        ("A room. Dust.\n\nA street.\n\n\n\nA park.", [["A room.", "Dust."], ["A street."], ["A park."]]),
        ("A room.\r\n\r\nA street.\rA car", [["A room."], ["A street.", "A car"]]),
        ("A room.\u2029A street.", [["A room."], ["A street."]]),
        (
            "A long sentence wrapped\nacross two lines. Then another.",
            [["A long sentence wrapped across two lines.", "Then another."]],
        ),
        (
            "1. Wide shot of a city\n2. Close up. She smiles.\n- A bird",
            [["Wide shot of a city.", "Close up. She smiles.", "A bird."]],  # each item one unit
        ),
        ("# The Chase\nA fox runs.", [["The Chase.", "A fox runs."]]),
        (
            "Shot mid-close on her face.\nScene 2 opens with rain.\nCut to the chase.",
            [["Shot mid-close on her face.", "Scene 2 opens with rain.", "Cut to the chase."]],
        ),
    ],
)
def test_split_scenes(text: str, expected: list[list[str]]) -> None:
    assert sentences_per_scene(text) == expected


def test_scene_heading_is_kept_separately() -> None:
    (scene,) = split_scenes("EXT. BEACH - DAY\nWaves roll. Gulls cry.")
    assert scene == Scene(heading="EXT. BEACH - DAY.", sentences=("Waves roll.", "Gulls cry."))
    assert scene.text == "EXT. BEACH - DAY. Waves roll. Gulls cry."


def test_blank_line_after_marker_does_not_lose_the_scene() -> None:
    assert sentences_per_scene("Scene 1:\n\nA beach.\n\nScene 2:\n\nA cliff.") == [["A beach."], ["A cliff."]]


@pytest.mark.parametrize("text", ["---", "Scene 1:\n---\nCut to:", "***\n\nScene 2", "Style:"])
def test_nothing_left_after_markers(text: str) -> None:
    with pytest.raises(SegmentationError) as info:
        parse_prompt(text)
    assert info.value.field == "prompt"
    assert "describe" in info.value.message


def test_only_labels_gives_context_without_scenes() -> None:
    parsed = parse_prompt("Style: noir\nSubject: a fox")
    assert parsed.scenes == () and parsed.narrative == ""
    assert parsed.shared_context == "Style: noir\nSubject: a fox"


# --- partitioning ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "n", "expected"),
    [
        ([1, 1, 1, 1], 2, [(0, 2), (2, 4)]),
        ([1, 1, 1, 1], 1, [(0, 4)]),
        ([1, 1, 1, 1], 4, [(0, 1), (1, 2), (2, 3), (3, 4)]),
        ([10, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 2, [(0, 1), (1, 11)]),
        ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 10], 2, [(0, 10), (10, 11)]),
        ([100, 1, 1], 3, [(0, 1), (1, 2), (2, 3)]),  # every group keeps at least one item
        ([5, 5, 5, 5, 5, 5], 3, [(0, 2), (2, 4), (4, 6)]),
    ],
)
def test_partition_balanced(weights: list[int], n: int, expected: list[tuple[int, int]]) -> None:
    assert partition_balanced(weights, n) == expected


def test_partition_prefers_cuts_within_tolerance() -> None:
    weights = [10] * 10
    assert partition_balanced(weights, 2) == [(0, 5), (5, 10)]
    assert partition_balanced(weights, 2, preferred_cuts=[4], tolerance=10) == [(0, 4), (4, 10)]
    assert partition_balanced(weights, 2, preferred_cuts=[2], tolerance=10) == [(0, 5), (5, 10)]


@pytest.mark.parametrize(("count", "n"), [(3, 4), (3, 0)])
def test_partition_needs_enough_items(count: int, n: int) -> None:
    with pytest.raises(ValueError):
        partition_balanced([1] * count, n)


@pytest.mark.parametrize(
    ("weights", "n", "expected"),
    [
        ([900, 100], 10, [9, 1]),
        ([1, 1, 1], 3, [1, 1, 1]),
        ([100, 1, 1], 5, [3, 1, 1]),
        ([1, 1], 5, [3, 2]),
        ([1, 1000, 1], 4, [1, 2, 1]),
        ([0, 0], 3, [2, 1]),
    ],
)
def test_allocate_proportional(weights: list[int], n: int, expected: list[int]) -> None:
    assert allocate_proportional(weights, n) == expected


@pytest.mark.parametrize("n", range(3, 40, 3))
def test_allocate_proportional_sums_and_minimum(n: int) -> None:
    shares = allocate_proportional([7, 1, 300, 2, 50, 1], max(n, 6))
    assert sum(shares) == max(n, 6) and min(shares) >= 1


# --- truncation -----------------------------------------------------------------------------------


def test_truncate_at_word_boundary() -> None:
    assert truncate_text("short", 10) == "short"
    assert truncate_text("the quick brown fox jumps", 16) == "the quick brown\u2026"
    assert len(truncate_text("the quick brown fox jumps", 16)) <= 16


@pytest.mark.parametrize(
    ("text", "cluster"),
    [
        ("\u6f22" * 5 + FAMILY * 5, FAMILY),
        ("x" * 4 + (E_ACUTE * 10), E_ACUTE),
        ("y" * 3 + FLAG_FR * 10, FLAG_FR),
        ("z" * 2 + "\U0001f44d\U0001f3fd" * 10, "\U0001f44d\U0001f3fd"),  # thumbs up + skin tone
    ],
)
def test_truncate_never_breaks_a_grapheme(text: str, cluster: str) -> None:
    for limit in range(2, len(text)):
        cut = truncate_text(text, limit)
        assert len(cut) <= limit
        assert cut.endswith("\u2026")
        body = cut[:-1]
        assert text.startswith(body)
        rest = body.lstrip("\u6f22xyz")
        assert rest == cluster * (len(rest) // len(cluster))


def test_safe_cut_index() -> None:
    text = f"a{E_ACUTE}b"
    assert safe_cut_index(text, 2) == 1  # between e and its accent -> before the e
    assert safe_cut_index(text, 3) == 3
    assert safe_cut_index(FLAG_FR * 2, 3) == 2
    assert safe_cut_index(FLAG_FR * 2, 1) == 0


# --- composition ----------------------------------------------------------------------------------


def test_compose_format() -> None:
    assert compose_segment_prompt("A fox runs.", 0, 3) == "Shot 1 of 3: A fox runs."
    assert compose_segment_prompt("A fox runs.", 1, 3, cue=Cue(2, 3)) == (
        "Shot 2 of 3 (continuation, part 2 of 3): A fox runs."
    )
    assert (
        compose_segment_prompt("A fox.", 0, 2, cue=Cue(1, 2))
        == "Shot 1 of 2 (beginning, part 1 of 2): A fox."
    )
    assert (
        compose_segment_prompt("A fox.", 1, 2, cue=Cue(2, 2)) == "Shot 2 of 2 (ending, part 2 of 2): A fox."
    )
    assert compose_segment_prompt("A fox.", 2, 3, shared_context="Style: noir") == (
        "Style: noir\n\nShot 3 of 3: A fox."
    )
    assert compose_segment_prompt("A fox.", 0, 1, shared_context="Style: noir") == "Style: noir\n\nA fox."
    assert compose_segment_prompt("A fox.", 0, 1) == "A fox."
    assert compose_segment_prompt("", 1, 2, shared_context="Style: noir") == "Style: noir\n\nShot 2 of 2"
    assert compose_segment_prompt("", 0, 1, shared_context="Style: noir") == "Style: noir"


def test_compose_truncates_only_the_narrative() -> None:
    context = "Style: " + "n" * 50
    prompt = compose_segment_prompt("word " * 100, 0, 2, shared_context=context, max_chars=120)
    assert len(prompt) <= 120
    assert prompt.startswith(context + "\n\nShot 1 of 2: word")
    assert prompt.endswith("word\u2026")


def test_compose_refuses_when_context_alone_is_too_long() -> None:
    with pytest.raises(SegmentationError) as info:
        compose_segment_prompt("A fox.", 0, 2, shared_context="Style: " + "n" * 200, max_chars=100)
    assert info.value.field == "prompt"
    assert "207 characters" in info.value.message and "at most 100 characters" in info.value.message


def test_shared_context_rule() -> None:
    labelled = parse_prompt("Style: noir\nA fox runs. It jumps.")
    assert [shared_context_for(labelled, i, 3, "x") for i in range(3)] == ["Style: noir"] * 3
    plain = parse_prompt("A fox runs. It jumps.")
    assert [shared_context_for(plain, i, 3, "It jumps.") for i in range(3)] == [
        "",
        "A fox runs.",
        "A fox runs.",
    ]
    assert shared_context_for(plain, 1, 3, "A fox runs. It jumps.") == ""  # already in the text
    assert shared_context_for(plain, 0, 1, "A fox runs. It jumps.") == ""
    single = parse_prompt("A fox runs")
    assert shared_context_for(single, 1, 3, "A fox runs") == ""


def test_compose_segment_prompts_names_the_fallback_subject_when_too_long() -> None:
    parsed = ParsedPrompt(context_lines=(), scenes=(Scene(None, ("a" * 50 + ".", "Then.")),))
    with pytest.raises(SegmentationError, match="first sentence"):
        compose_segment_prompts(parsed, [Part("a" * 50 + "."), Part("Then.")], max_chars=40)


def test_compose_refuses_a_limit_too_small_for_the_header() -> None:
    with pytest.raises(SegmentationError) as info:
        compose_segment_prompt("A fox.", 0, 2, max_chars=5)
    assert info.value.field == "segments"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("**Scene 2:** A beach.\nWaves.\n_Scene 3_ - A cliff.", [["A beach.", "Waves."], ["A cliff."]]),
        ("INT. KITCHEN\n---\nEXT. YARD", [["INT. KITCHEN."], ["EXT. YARD."]]),
        (
            "Scene 1 \u2014 \u6d77\u8fb9\nScene 2: \u5c71\u9876",
            [["\u6d77\u8fb9\u3002"], ["\u5c71\u9876\u3002"]],
        ),
    ],
)
def test_more_scene_marker_forms(text: str, expected: list[list[str]]) -> None:
    assert sentences_per_scene(text) == expected


# --- units: list items, screenplay speeches, long sentences ------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Each speech is one unit: the character line, its parenthetical and its dialogue together.
        (
            "EXT. ROAD - DAY\n\nA car stops.\nJOHN\nGet in. Now.\nMARY\n(quietly)\nNo.",
            ["EXT. ROAD - DAY.", "A car stops.", "JOHN: Get in. Now.", "MARY: (quietly) No."],
        ),
        # An extension such as (V.O.) marks a character line even without a scene heading.
        ("NARRATOR (V.O.)\nIt was the coldest winter.", ["NARRATOR (V.O.): It was the coldest winter."]),
        # Capitals in a prompt that is no screenplay are just text.
        ("A FOX\nruns in the snow.", ["A FOX runs in the snow."]),
        (
            "INT. BARN - NIGHT\n\nBANG!\nThe door flies open.",
            ["INT. BARN - NIGHT.", "BANG!", "The door flies open."],
        ),
        # A list item goes on over indented lines below it and is one unit, sentences and all.
        (
            "- A fox wakes. It yawns.\n- It runs\n  across the snow",
            ["A fox wakes. It yawns.", "It runs across the snow."],
        ),
    ],
)
def test_units(text: str, expected: list[str]) -> None:
    assert parse_prompt(text).units == expected


def test_a_long_sentence_becomes_clauses_but_stays_one_sentence_for_the_subject() -> None:
    long = "A fox runs across the field, " * 12 + "and then it sleeps"
    parsed = parse_prompt(f"{long}. It dreams.")
    assert len(parsed.units) > 2  # the long sentence was cut into clauses
    assert " ".join(parsed.units) == " ".join(f"{long}. It dreams.".split())
    assert parsed.subject == " ".join(f"{long}.".split())  # the whole first sentence, not a clause


def test_an_over_long_narrative_is_cut_after_a_whole_sentence() -> None:
    narrative = "The fox runs on. It jumps the fence. " * 10
    prompt = compose_segment_prompt(narrative, 0, 2, max_chars=120)
    body = prompt.removeprefix("Shot 1 of 2: ")
    assert len(prompt) <= 120 and body.endswith(". \u2026")
    assert narrative.startswith(body.removesuffix(" \u2026"))  # whole sentences, in order
    # Not even one sentence fits: a word boundary, as before.
    assert compose_segment_prompt("A " + "very " * 40 + "long sentence.", 0, 1, max_chars=30).endswith(
        "\u2026"
    )


# --- safe_cut_index looks back only a short window, with the same answers as a scan from the start ---


def _cut_from_the_start(text: str, index: int) -> int:
    import regex

    cut = 0
    for match in regex.finditer(r"\X", text):
        if match.end() > index:
            break
        cut = match.end()
    return cut


PIECES = [
    "a",
    "Z",
    " ",
    "。",
    "\r\n",
    "e\u0301",  # e + combining acute
    "\U0001f1eb\U0001f1f7",  # a flag: two regional indicators
    "\U0001f1e9",  # a lone regional indicator (pairs with the next one)
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # a family: ZWJ sequence
    "\U0001f44d\U0001f3fd",  # thumbs up + skin tone
    "\u1100\u1161\u11a8",  # Hangul jamo L V T
    "\uac00",  # a Hangul syllable
    "\u0915\u094d\u0937",  # Devanagari conjunct (consonant, virama, consonant)
    "\u0600" + "1",  # an Arabic number sign (Prepend) before a digit
    "\u0928\u093f",  # a consonant and a spacing mark
    "中",
]


def test_safe_cut_index_agrees_with_a_scan_from_the_start():
    import random

    from segmentation.text import safe_cut_index

    rng = random.Random(20261130)
    for _ in range(300):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(50, 400)))
        for index in rng.sample(range(len(text) + 1), 12):
            assert safe_cut_index(text, index) == _cut_from_the_start(text, index), (text, index)


def test_safe_cut_index_on_text_without_a_safe_start_nearby():
    from segmentation.text import safe_cut_index

    flags = "\U0001f1eb\U0001f1f7" * 400 + "\U0001f1e9"  # pairs all the way: no cluster start to anchor on
    for index in (7, 501, 799, 800):
        assert safe_cut_index(flags, index) == _cut_from_the_start(flags, index)
    assert safe_cut_index(flags, 799) == 798  # never between the two indicators of a flag
