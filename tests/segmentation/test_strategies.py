"""The three built-in strategies through the registry: shared validation, invariants, behaviour."""

from __future__ import annotations

import itertools
import math
import re
import time

import pytest

from segmentation.registry import get_strategy, segment_prompt, strategy_choices, strategy_names
from segmentation.text import split_sentences
from segmentation.types import SegmentationContext, SegmentationError, SegmentSpec

CTX = SegmentationContext()
STRATEGIES = ["even", "sentences", "manual"]
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
FLAG_FR = "\U0001f1eb\U0001f1f7"
E_ACUTE = "e\u0301"
STORY = (
    "A red fox wakes in a snowy forest. It stretches and sniffs the cold air. A hawk circles above. "
    "The fox darts between the pines. Snow falls from the branches. It reaches a frozen river. "
    "The ice cracks under its paws. It leaps to the far bank. The sun rises over the hills."
)


def manual_prompts_for(duration: float, segment: float = 10) -> tuple[str, ...]:
    count = len(segment_prompt("even", "x", duration, segment, CTX))
    return tuple(f"Shot {i}: the fox runs." for i in range(count))


def run(
    strategy: str, prompt: str, duration: float, segment: float = 10, **context: object
) -> list[SegmentSpec]:
    if strategy == "manual" and "manual_prompts" not in context:
        context["manual_prompts"] = manual_prompts_for(duration, segment)
    return segment_prompt(strategy, prompt, duration, segment, SegmentationContext(**context))


def assert_invariants(specs: list[SegmentSpec], duration: float, context: SegmentationContext = CTX) -> None:
    assert [spec.index for spec in specs] == list(range(len(specs)))
    assert specs[0].start_seconds == 0
    assert specs[-1].end_seconds == duration
    for before, after in itertools.pairwise(specs):
        assert before.end_seconds == after.start_seconds
    for spec in specs:
        assert spec.duration_seconds > 0
        assert spec.prompt.strip()
        assert len(spec.prompt) <= context.max_segment_prompt_chars


def narrative(prompt: str) -> str:
    """The narrative part of a composed prompt (after the shot header)."""
    body = prompt.rsplit("\n\n", 1)[-1]
    return re.sub(r"^Shot \d+ of \d+( \((beginning|continuation|ending), part \d+ of \d+\))?: ", "", body)


def cue(prompt: str) -> str | None:
    """The cue of a composed prompt's shot header ("continuation, part 2 of 3"), or None."""
    match = re.search(
        r"^Shot \d+ of \d+ \(((?:beginning|continuation|ending), part \d+ of \d+)\)", prompt, re.M
    )
    return match.group(1) if match else None


# --- registry -------------------------------------------------------------------------------------


def test_registry_lists_exactly_the_builtins() -> None:
    assert strategy_names() == ["even", "llm", "manual", "sentences"]
    choices = dict(strategy_choices())
    assert set(choices) == {"even", "llm", "manual", "sentences"}
    assert all(description.strip() for description in choices.values())


def test_unknown_strategy() -> None:
    with pytest.raises(SegmentationError) as info:
        get_strategy("nope")
    assert info.value.field == "strategy"
    assert "nope" in info.value.message and "even" in info.value.message


@pytest.mark.parametrize("name", STRATEGIES)
def test_strategies_are_callable_directly(name: str) -> None:
    specs = get_strategy(name)(STORY, 25.0, 10.0, SegmentationContext(manual_prompts=("a", "b", "c")))
    assert_invariants(specs, 25.0)


# --- shared validation (every strategy) -----------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("prompt", ["", " ", "\n\t", "\u3000", "\u00a0", " \u3000\u00a0\u200b\n"])
def test_blank_prompt_refused(strategy: str, prompt: str) -> None:
    with pytest.raises(SegmentationError) as info:
        run(strategy, prompt, 30)
    assert info.value.field == "prompt"
    assert "empty" in info.value.message


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_prompt_too_long_refused(strategy: str) -> None:
    run(strategy, "a" * 200_000, 30)
    with pytest.raises(SegmentationError) as info:
        run(strategy, "a" * 200_001, 30)
    assert info.value.field == "prompt"
    assert "200001" in info.value.message and "200000" in info.value.message


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("duration", [0, -1, 0.5, 1800.5, math.nan, math.inf, -math.inf])
def test_bad_duration_refused(strategy: str, duration: float) -> None:
    with pytest.raises(SegmentationError) as info:
        run(strategy, STORY, duration, manual_prompts=("a",))
    assert info.value.field == "duration_seconds"
    assert "between 1 and 1800 seconds" in info.value.message


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("segment", [0, 0.5, 61, math.nan, math.inf])
def test_bad_segment_length_refused(strategy: str, segment: float) -> None:
    with pytest.raises(SegmentationError) as info:
        run(strategy, STORY, 30, segment, manual_prompts=("a",))
    assert info.value.field == "segment_seconds"
    assert "between 1 and 60 seconds" in info.value.message


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(
    ("duration", "segment", "expected"),
    [
        (25, 10, [10, 10, 5]),
        (30, 10, [10, 10, 10]),
        (30.0000001, 10, [10, 10, 10.0000001]),
        (30.5, 10, [10, 10, 10.5]),
        (1, 10, [1]),
        (1, 1, [1]),
        (60, 60, [60]),
        (7, 2.5, [2.5, 2.5, 2]),
    ],
)
def test_time_slices(strategy: str, duration: float, segment: float, expected: list[float]) -> None:
    specs = run(strategy, STORY, duration, segment)
    assert [spec.duration_seconds for spec in specs] == pytest.approx(expected)
    assert_invariants(specs, duration)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_thirty_minutes_is_the_maximum(strategy: str) -> None:
    specs = run(strategy, STORY, 1800, 10)
    assert len(specs) == 180
    assert_invariants(specs, 1800)


PROMPTS = {
    "story": STORY,
    "labelled": "Style: watercolour.\nSubject: a red fox.\n" + STORY,
    "scenes": "Scene 1: A forest.\nThe fox wakes.\nScene 2: A river.\nThe ice cracks.\n---\nThe sun rises.",
    "one word": "Fox",
    "only labels": "Style: noir\nSubject: a detective",
    "cjk": "狐狸在雪中醒来。它跑过树林。太阳升起。",
}


@pytest.mark.parametrize("strategy", ["even", "sentences"])
@pytest.mark.parametrize("prompt", PROMPTS.values(), ids=PROMPTS.keys())
@pytest.mark.parametrize("duration", [1, 9.5, 25, 61, 300])
def test_invariants_hold(strategy: str, prompt: str, duration: float) -> None:
    assert_invariants(run(strategy, prompt, duration), duration)


# --- even -----------------------------------------------------------------------------------------


def test_even_splits_sentences_evenly_and_in_order() -> None:
    specs = run("even", STORY, 30)
    parts = [narrative(spec.prompt) for spec in specs]
    assert " ".join(parts) == STORY  # nothing lost, nothing repeated, order kept
    sizes = [len(part) for part in parts]
    assert max(sizes) - min(sizes) < 60
    for part in parts:
        assert part.endswith(".")  # cut between sentences


def test_even_never_cuts_a_scarce_sentence_it_repeats_it_with_cues() -> None:
    # The example: `even` used to hand "Shot 2 of 3: through fresh" to the model.
    prompt = "A fox runs through fresh snow at dawn."
    assert [spec.prompt for spec in run("even", prompt, 30)] == [
        f"Shot 1 of 3 (beginning, part 1 of 3): {prompt}",
        f"Shot 2 of 3 (continuation, part 2 of 3): {prompt}",
        f"Shot 3 of 3 (ending, part 3 of 3): {prompt}",
    ]


@pytest.mark.parametrize("prompt", ["Fox", "A fox", "Fox runs."])
def test_even_with_fewer_words_than_segments_continues(prompt: str) -> None:
    specs = run("even", prompt, 50)
    assert specs[0].prompt == f"Shot 1 of 5 (beginning, part 1 of 5): {prompt}"
    for number, spec in enumerate(specs[1:-1], start=2):
        assert spec.prompt == f"Shot {number} of 5 (continuation, part {number} of 5): {prompt}"
    assert specs[-1].prompt == f"Shot 5 of 5 (ending, part 5 of 5): {prompt}"


def test_even_spreads_scarce_sentences_in_proportion_to_their_length() -> None:
    short, long = "A fox wakes.", "It runs across the whole frozen valley toward the distant hills at dawn."
    specs = run("even", f"Style: ink.\n{short} {long}", 40)
    assert [(narrative(spec.prompt), cue(spec.prompt)) for spec in specs] == [
        (short, None),
        (long, "beginning, part 1 of 3"),
        (long, "continuation, part 2 of 3"),
        (long, "ending, part 3 of 3"),
    ]


def test_even_labelled_context_in_every_segment() -> None:
    prompt = "Style: watercolour, soft light.\nCHARACTERS: a red fox with a white tail.\n" + STORY
    specs = run("even", prompt, 40)
    context = "Style: watercolour, soft light.\nCHARACTERS: a red fox with a white tail."
    for number, spec in enumerate(specs, start=1):
        assert spec.prompt.startswith(f"{context}\n\nShot {number} of 4: ")
        assert "watercolour" not in narrative(spec.prompt)
    assert " ".join(narrative(spec.prompt) for spec in specs) == STORY


def test_even_first_sentence_is_the_shared_subject() -> None:
    specs = run("even", STORY, 30)
    subject = "A red fox wakes in a snowy forest."
    assert specs[0].prompt.startswith(f"Shot 1 of 3: {subject}")
    for spec in specs[1:]:
        assert spec.prompt.startswith(f"{subject}\n\nShot ")


def test_no_subject_for_a_single_sentence_or_a_single_segment() -> None:
    assert run("even", "A fox runs through the forest and over the river", 20)[1].prompt == (
        "Shot 2 of 2 (ending, part 2 of 2): A fox runs through the forest and over the river"
    )
    assert run("even", STORY, 10)[0].prompt == STORY


def test_only_labels_gives_context_and_shot_numbers() -> None:
    specs = run("even", "Style: noir\nSubject: a detective", 20)
    assert [spec.prompt for spec in specs] == [
        "Style: noir\nSubject: a detective\n\nShot 1 of 2",
        "Style: noir\nSubject: a detective\n\nShot 2 of 2",
    ]


# --- sentences ------------------------------------------------------------------------------------

SCENES = (
    "Style: 35mm film, dusk light.\n"
    "Scene 1: A lighthouse on a cliff.\nWaves crash below.\n"
    "Scene 2: Inside, a keeper lights the lamp.\n"
    "SCENE 3 - A ship turns toward the light.\n"
    "Cut to:\nThe ship docks safely. Dr. Rao waves at 9.5 knots."
)


def test_sentences_one_scene_per_slice() -> None:
    specs = run("sentences", SCENES, 40)
    context = "Style: 35mm film, dusk light."
    assert [spec.prompt for spec in specs] == [
        f"{context}\n\nShot 1 of 4: A lighthouse on a cliff. Waves crash below.",
        f"{context}\n\nShot 2 of 4: Inside, a keeper lights the lamp.",
        f"{context}\n\nShot 3 of 4: A ship turns toward the light.",
        f"{context}\n\nShot 4 of 4: The ship docks safely. Dr. Rao waves at 9.5 knots.",
    ]


def test_sentences_groups_scenes_when_there_are_more_than_slices() -> None:
    scenes = [f"Scene {i}: Place number {i} appears. Something happens there." for i in range(1, 7)]
    specs = run("sentences", "\n".join(scenes), 30)
    assert [narrative(spec.prompt) for spec in specs] == [
        "Place number 1 appears. Something happens there. Place number 2 appears. Something happens there.",
        "Place number 3 appears. Something happens there. Place number 4 appears. Something happens there.",
        "Place number 5 appears. Something happens there. Place number 6 appears. Something happens there.",
    ]


def test_sentences_grouping_balances_without_splitting_sentences() -> None:
    long_scene = " ".join(f"Long beat {i} happens slowly." for i in range(12))
    prompt = f"{long_scene}\n\nShort one.\n\nShort two.\n\nShort three."
    specs = run("sentences", prompt, 20)
    parts = [narrative(spec.prompt) for spec in specs]
    originals = [*split_sentences(long_scene), "Short one.", "Short two.", "Short three."]
    assert [s for part in parts for s in split_sentences(part)] == originals  # whole sentences, in order
    assert abs(len(parts[0]) - len(parts[1])) < len(long_scene) / 2  # balanced: the long scene is shared


def test_sentences_fewer_scenes_than_slices_are_spread_proportionally() -> None:
    prompt = (
        "A kitchen. Coffee brews.\n\n"
        "A long road through the desert. A truck drives. Dust rises. The sun sets. Stars appear. "
        "The truck stops at a diner."
    )
    specs = run("sentences", prompt, 60)
    parts = [(narrative(spec.prompt), cue(spec.prompt)) for spec in specs]
    assert parts[0] == ("A kitchen. Coffee brews.", None)
    assert parts[1] == ("A long road through the desert.", "beginning, part 1 of 5")  # scene 2 starts
    assert [c for _, c in parts[2:]] == [  # later slices continue scene 2, to its ending
        "continuation, part 2 of 5",
        "continuation, part 3 of 5",
        "continuation, part 4 of 5",
        "ending, part 5 of 5",
    ]
    assert " ".join(text for text, _ in parts[1:]) == prompt.split("\n\n")[1]


def test_sentences_scene_with_fewer_sentences_than_slices_repeats_in_order() -> None:
    specs = run("sentences", "Scene 1: A storm gathers.\nScene 2: Rain pours down for hours.", 60)
    assert [narrative(spec.prompt) for spec in specs] == [
        "A storm gathers.",
        "A storm gathers.",
        "Rain pours down for hours.",
        "Rain pours down for hours.",
        "Rain pours down for hours.",
        "Rain pours down for hours.",
    ]
    assert [cue(spec.prompt) for spec in specs] == [
        "beginning, part 1 of 2",
        "ending, part 2 of 2",
        "beginning, part 1 of 4",
        "continuation, part 2 of 4",
        "continuation, part 3 of 4",
        "ending, part 4 of 4",
    ]  # one beginning per scene


def test_sentences_screenplay_heading_repeats_in_each_slice_of_its_scene() -> None:
    prompt = "INT. BARN - NIGHT\n\nA fox hides. A dog sniffs. The farmer enters. A lamp swings."
    specs = run("sentences", prompt, 20)
    assert [narrative(spec.prompt) for spec in specs] == [
        "INT. BARN - NIGHT. A fox hides. A dog sniffs.",
        "INT. BARN - NIGHT. The farmer enters. A lamp swings.",
    ]
    assert cue(specs[1].prompt) == "ending, part 2 of 2"


@pytest.mark.parametrize("duration", [10, 20, 30, 50, 90])
def test_sentences_shared_context_in_every_segment(duration: float) -> None:
    for spec in run("sentences", SCENES, duration):
        assert spec.prompt.startswith("Style: 35mm film, dusk light.\n\n")
        assert "Scene 2" not in spec.prompt and "Cut to" not in spec.prompt


def test_sentences_first_sentence_fallback() -> None:
    prompt = "A lone astronaut walks on Mars.\n\nShe finds a cave.\n\nInside, crystals glow."
    specs = run("sentences", prompt, 30)
    assert specs[0].prompt == "Shot 1 of 3: A lone astronaut walks on Mars."
    assert specs[1].prompt == "A lone astronaut walks on Mars.\n\nShot 2 of 3: She finds a cave."
    assert specs[2].prompt == "A lone astronaut walks on Mars.\n\nShot 3 of 3: Inside, crystals glow."


# --- manual ---------------------------------------------------------------------------------------


def test_manual_uses_prompts_verbatim() -> None:
    prompts = ("  Wide shot of a harbour.  ", "\nA gull lands.\n", "Sunset over the water. Style: noir")
    specs = run("manual", "Style: watercolour. A harbour story.", 25, manual_prompts=prompts)
    assert [spec.prompt for spec in specs] == [p.strip() for p in prompts]
    assert all(spec.is_manual for spec in specs)
    assert [spec.duration_seconds for spec in specs] == [10, 10, 5]


def test_manual_other_strategies_are_not_manual() -> None:
    assert not any(spec.is_manual for spec in run("even", STORY, 30) + run("sentences", STORY, 30))


@pytest.mark.parametrize(
    ("prompts", "field", "message"),
    [
        ((), "segments", "manual mode needs 3 segment prompts for 30 s at 10 s per segment, got none"),
        (("a", "b"), "segments", "manual mode needs 3 segment prompts for 30 s at 10 s per segment, got 2"),
        (
            ("a", "b", "c", "d"),
            "segments",
            "manual mode needs 3 segment prompts for 30 s at 10 s per segment, got 4",
        ),
        # One prompt's problem is filed under that prompt's path, so a page shows it on that card.
        (("a", " \u3000 ", "c"), "segments.1.prompt", "segment prompt 2 is empty"),
        (("", "b", "c"), "segments.0.prompt", "segment prompt 1 is empty"),
        (
            ("a", "b", "x" * 32001),
            "segments.2.prompt",
            "segment prompt 3 is 32001 characters long; the limit is 32000",
        ),
        (("a", 5, "c"), "segments.1.prompt", "segment prompt 2 must be text"),
    ],
)
def test_manual_errors(prompts: tuple, field: str, message: str) -> None:
    with pytest.raises(SegmentationError) as info:
        run("manual", STORY, 30, manual_prompts=prompts)
    assert info.value.field == field
    assert info.value.message.startswith(message)


def test_manual_count_message_uses_fractional_numbers() -> None:
    with pytest.raises(
        SegmentationError, match=r"needs 1 segment prompt for 7.5 s at 10 s per segment, got 2"
    ):
        run("manual", STORY, 7.5, manual_prompts=("a", "b"))


def test_manual_accepts_the_longest_allowed_prompt() -> None:
    specs = run("manual", STORY, 10, manual_prompts=("x" * 32000,))
    assert specs[0].prompt == "x" * 32000
    limit = run("manual", STORY, 10, manual_prompts=("x" * 50,), max_segment_prompt_chars=50)
    assert len(limit[0].prompt) == 50


def test_manual_still_validates_the_job_prompt() -> None:
    with pytest.raises(SegmentationError) as info:
        run("manual", "\u3000", 10, manual_prompts=("a",))
    assert info.value.field == "prompt"


# --- limits, unicode, performance -----------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["even", "sentences"])
def test_long_narrative_is_truncated_but_context_kept(strategy: str) -> None:
    context = "Style: " + "grainy " * 100
    prompt = context + "\n" + "The fox runs on. " * 5000
    specs = run(strategy, prompt, 10)
    assert len(specs[0].prompt) <= 32000
    assert specs[0].prompt.startswith(context.strip() + "\n\n")
    assert specs[0].prompt.endswith("\u2026")


@pytest.mark.parametrize("strategy", ["even", "sentences"])
def test_context_too_long_for_a_segment_is_refused(strategy: str) -> None:
    prompt = "Style: " + "x" * 32000 + "\nThe fox runs."
    with pytest.raises(SegmentationError) as info:
        run(strategy, prompt, 20)
    assert info.value.field == "prompt"
    assert "shared context" in info.value.message and "32000" in info.value.message


@pytest.mark.parametrize("strategy", ["even", "sentences"])
def test_segment_prompt_limit_from_context(strategy: str) -> None:
    specs = run(strategy, STORY * 3, 20, max_segment_prompt_chars=200)
    assert_invariants(specs, 20, SegmentationContext(max_segment_prompt_chars=200))


UNICODE_STORY = (
    f"A {FAMILY} family walks to the caf{E_ACUTE}. They wave a {FLAG_FR} flag! "
    "狐狸在雪中奔跑。太阳升起。 "
    "שלום עולם. مرحبا بالعالم. "
    "Na\u00efve \U0001f98a jumps \U0001f44d\U0001f3fd."
)


@pytest.mark.parametrize("strategy", ["even", "sentences"])
@pytest.mark.parametrize("duration", [10, 30, 80])
def test_unicode_passes_through_intact(strategy: str, duration: float) -> None:
    specs = run(strategy, UNICODE_STORY, duration)
    text = " ".join(narrative(spec.prompt) for spec in specs)
    for piece in (FAMILY, f"caf{E_ACUTE}", FLAG_FR, "שלום", "\U0001f44d\U0001f3fd"):
        assert piece in text
    for sentence in split_sentences(UNICODE_STORY):
        assert sentence in text  # no sentence is ever broken
    assert_invariants(specs, duration)


def test_manual_unicode_verbatim() -> None:
    specs = run("manual", STORY, 10, manual_prompts=(UNICODE_STORY,))
    assert specs[0].prompt == UNICODE_STORY


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_thirty_minute_job_with_the_largest_prompt(strategy: str) -> None:
    scenes = "\n\n".join(
        f"Scene {i}: The fox reaches landmark {i}. Dr. Lee notes 3.{i} km. Snow falls, e.g. softly."
        for i in range(1, 2500)
    )
    prompt = ("Style: watercolour.\n" + scenes)[:200_000]
    started = time.perf_counter()
    specs = run(strategy, prompt, 1800)
    elapsed = time.perf_counter() - started
    assert len(specs) == 180
    assert_invariants(specs, 1800)
    print(f"{strategy}: 180 segments from {len(prompt)} characters in {elapsed:.3f} s")


def test_headings_only_still_give_non_empty_prompts() -> None:
    specs = run("sentences", "INT. KITCHEN\n---\nEXT. YARD", 30)
    assert [narrative(spec.prompt) for spec in specs] == ["INT. KITCHEN.", "INT. KITCHEN.", "EXT. YARD."]
    assert_invariants(specs, 30)


@pytest.mark.parametrize(("prompts", "expected"), [("Only one.", ["Only one."]), (["  x  "], ["x"])])
def test_manual_accepts_a_single_string_or_a_list(prompts: object, expected: list[str]) -> None:
    specs = run("manual", STORY, 10, manual_prompts=prompts)
    assert [spec.prompt for spec in specs] == expected


def test_manual_refuses_a_non_list() -> None:
    with pytest.raises(SegmentationError) as info:
        run("manual", STORY, 10, manual_prompts=5)
    assert info.value.field == "segments"
