"""Never a fragment (issue 14, point 2): over a corpus of real-looking prompts, every automatic
strategy at every duration hands each segment whole units of the source plus at most a cue, loses
none of them, and keeps their order.

Each corpus entry lists its units by hand, so the check does not trust the parser it checks: the
parser must find exactly those units, and every segment's narrative must be a run of them.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import pytest

from segmentation.clauses import LONG_UNIT_CHARS, split_long_unit
from segmentation.registry import segment_prompt
from segmentation.strategies.llm import PlannerError
from segmentation.text import parse_prompt
from segmentation.types import SegmentationContext, SegmentSpec

DURATIONS = [10, 20, 30, 60, 90, 300, 600, 1800]

HEADER = re.compile(
    r"^Shot (?P<index>\d+) of (?P<count>\d+)"
    r"(?: \((?P<position>beginning|continuation|ending), part (?P<part>\d+) of (?P<of>\d+)\))?(?:: |$)"
)

RUN_ON = (
    "a fox with a thick red coat and a white tipped tail trots slowly through a silent birch forest at "
    "first light while snowflakes drift down around it and its breath fogs in the cold air and somewhere "
    "far away a crow calls twice before the fox stops at the edge of a frozen lake and looks across the "
    "ice toward a distant cabin whose chimney sends up a thin line of smoke"
)


@dataclass(frozen=True)
class Case:
    prompt: str
    units: tuple[str, ...]  # the narrative's units, in order, as a person reading it would cut it
    context: str = ""  # the labelled shared-context block, if any


CORPUS: dict[str, Case] = {
    "one sentence": Case(
        "A fox runs through fresh snow at dawn.",
        ("A fox runs through fresh snow at dawn.",),
    ),
    "one sentence, no full stop": Case(
        "a paper boat drifts down a rain-soaked street past glowing shop windows",
        ("a paper boat drifts down a rain-soaked street past glowing shop windows",),
    ),
    "many short sentences": Case(
        "A red fox wakes. It stretches. A hawk circles above. The fox darts between the pines. "
        "Snow falls from the branches. It reaches a frozen river. The ice cracks. It leaps. "
        "Dr. Lee watches at 6.30 a.m. from the ridge. The sun rises.",
        (
            "A red fox wakes.",
            "It stretches.",
            "A hawk circles above.",
            "The fox darts between the pines.",
            "Snow falls from the branches.",
            "It reaches a frozen river.",
            "The ice cracks.",
            "It leaps.",
            "Dr. Lee watches at 6.30 a.m. from the ridge.",
            "The sun rises.",
        ),
    ),
    "quotes and ellipses": Case(
        'The keeper whispers "Not tonight..." and climbs the stairs. Waves slam the glass! '
        "Is the lamp still lit? \u201cYes,\u201d she says. The beam sweeps the sea\u2026 A ship answers.",
        (
            'The keeper whispers "Not tonight..." and climbs the stairs.',
            "Waves slam the glass!",
            "Is the lamp still lit?",
            "\u201cYes,\u201d she says.",
            "The beam sweeps the sea\u2026",
            "A ship answers.",
        ),
    ),
    "labelled context and paragraphs": Case(
        "Style: 35mm film, dusk light, slow dolly.\nSubject: an old lighthouse keeper in a yellow coat.\n\n"
        "The keeper climbs the spiral stairs. He winds the clockwork.\n\n"
        "The lamp flares to life. Its beam sweeps the black sea.\n\n"
        "A fishing boat turns toward the light.",
        (
            "The keeper climbs the spiral stairs.",
            "He winds the clockwork.",
            "The lamp flares to life.",
            "Its beam sweeps the black sea.",
            "A fishing boat turns toward the light.",
        ),
        context=(
            "Style: 35mm film, dusk light, slow dolly.\nSubject: an old lighthouse keeper in a yellow coat."
        ),
    ),
    "screenplay": Case(
        "INT. LIGHTHOUSE - NIGHT\n\n"
        "Rain hammers the windows. MARA (40s) checks the lamp.\n\n"
        "MARA\n(under her breath)\nCome on. Just one more night.\n\n"
        "TOM (O.S.)\nMara! There's a ship!\n\n"
        "EXT. CLIFF - CONTINUOUS\n\n"
        "Mara runs out into the storm. A trawler fights the waves below.",
        (
            "INT. LIGHTHOUSE - NIGHT.",
            "Rain hammers the windows.",
            "MARA (40s) checks the lamp.",
            "MARA: (under her breath) Come on. Just one more night.",
            "TOM (O.S.): Mara! There's a ship!",
            "EXT. CLIFF - CONTINUOUS.",
            "Mara runs out into the storm.",
            "A trawler fights the waves below.",
        ),
    ),
    "bullet list": Case(
        "Shot list for the harbour film:\n"
        "- Wide shot of the harbour at dawn. Gulls circle.\n"
        "- A fisherman coils rope on the pier\n"
        "  while his dog watches\n"
        "- Close up: hands mending a net\n"
        "* The boat leaves the harbour",
        (
            "Shot list for the harbour film:",
            "Wide shot of the harbour at dawn. Gulls circle.",
            "A fisherman coils rope on the pier while his dog watches.",
            "Close up: hands mending a net.",
            "The boat leaves the harbour.",
        ),
    ),
    "numbered list": Case(
        "1. A girl opens an old wooden box\n2) A glowing moth flies out!\n"
        "3. It lands on her hand. She laughs.",
        (
            "A girl opens an old wooden box.",
            "A glowing moth flies out!",
            "It lands on her hand. She laughs.",
        ),
    ),
    "cjk": Case(
        "狐狸在雪中醒来。它跑过寂静的白桦林！远处传来乌鸦的叫声吗？太阳慢慢升起。",  # noqa: RUF001
        ("狐狸在雪中醒来。", "它跑过寂静的白桦林！", "远处传来乌鸦的叫声吗？", "太阳慢慢升起。"),  # noqa: RUF001
    ),
    "japanese with quotes": Case(
        "少女は箱を開けた。「きれい！」と彼女は言った。蛾が飛んでいく。",  # noqa: RUF001
        ("少女は箱を開けた。", "「きれい！」と彼女は言った。", "蛾が飛んでいく。"),  # noqa: RUF001
    ),
    "mixed": Case(
        "Style: watercolour.\n"
        "Scene 1: A café in Paris at 7.45 p.m. Rain streaks the glass.\n"
        "- Mr. Dupont orders a café crème\n"
        "- A 👨\u200d👩\u200d👧 family shares a crêpe\n"
        "Scene 2: 东京的夜晚。霓虹灯闪烁！\n"  # noqa: RUF001
        "---\n"
        "A final wide shot... the city sleeps.",
        (
            "A café in Paris at 7.45 p.m.",
            "Rain streaks the glass.",
            "Mr. Dupont orders a café crème.",
            "A 👨\u200d👩\u200d👧 family shares a crêpe.",
            "东京的夜晚。",
            "霓虹灯闪烁！",  # noqa: RUF001
            "A final wide shot... the city sleeps.",
        ),
        context="Style: watercolour.",
    ),
    "run-on sentence": Case(
        RUN_ON,
        (
            "a fox with a thick red coat and a white tipped tail trots slowly through a silent birch forest "
            "at first light while snowflakes drift down around it and its breath fogs in the cold air and "
            "somewhere far away a crow calls twice",
            "before the fox stops at the edge of a frozen lake and looks across the ice toward a distant "
            "cabin whose chimney sends up a thin line of smoke",
        ),
    ),
    "run-on with commas": Case(
        "The camera rises over the harbour, past the cranes and the stacked containers, over the old "
        "customs house with its green copper roof, across the bay where the ferries cross, up along the "
        "cliffs where the lighthouse stands, and finally into the clouds as the sun breaks through",
        (
            "The camera rises over the harbour, past the cranes and the stacked containers, over the old "
            "customs house with its green copper roof, across the bay where the ferries cross, up along "
            "the cliffs where the lighthouse stands,",
            "and finally into the clouds as the sun breaks through",
        ),
    ),
}


class _FailingPlanner:
    """The llm strategy without a planning model: it must fall back to whole units as well."""

    def complete(self, messages: object, response_format: object) -> str:
        raise PlannerError("no planning model in this test")


def plan(strategy: str, prompt: str, duration: float) -> list[SegmentSpec]:
    extra = {"llm_client": _FailingPlanner()} if strategy == "llm" else {}
    return segment_prompt(strategy, prompt, duration, 10, SegmentationContext(extra=extra))


def split_header(prompt: str, context: str, count: int) -> tuple[re.Match[str] | None, str]:
    """(the shot header's match, the narrative) of a composed prompt; checks the context prefix."""
    if context:
        assert prompt.startswith(context + "\n\n") or prompt == context
        prompt = prompt[len(context) + 2 :]
    else:  # the first-sentence subject may come first, separated by a blank line
        prompt = prompt.rsplit("\n\n", 1)[-1]
    if count == 1:
        return None, prompt
    match = HEADER.match(prompt)
    assert match, f"no shot header in {prompt!r}"
    return match, prompt[match.end() :]


def as_units(narrative: str, units: tuple[str, ...]) -> list[int]:
    """The indices (increasing) of the units that `narrative` is made of, joined by single spaces;
    fails if it is anything else (a piece of a unit, a unit twice, units out of order)."""

    def walk(position: int, after: int) -> list[int] | None:
        if position == len(narrative):
            return []
        for index in range(after + 1, len(units)):
            unit = units[index]
            if narrative.startswith(unit, position):
                end = position + len(unit)
                if end == len(narrative) or narrative.startswith(" ", end):
                    rest = walk(end + 1 if end < len(narrative) else end, index)
                    if rest is not None:
                        return [index, *rest]
        return None

    found = walk(0, -1)
    assert found is not None and found, f"{narrative!r} is not a run of whole units of the source"
    return found


@pytest.mark.parametrize("name", CORPUS)
def test_the_parser_finds_the_units_a_person_would(name: str) -> None:
    case = CORPUS[name]
    parsed = parse_prompt(case.prompt)
    assert tuple(parsed.units) == case.units
    assert parsed.shared_context == case.context


@pytest.mark.parametrize("duration", DURATIONS)
@pytest.mark.parametrize("strategy", ["even", "sentences", "llm"])
@pytest.mark.parametrize("name", CORPUS)
def test_every_segment_is_whole_units_plus_a_cue(name: str, strategy: str, duration: float) -> None:
    case = CORPUS[name]
    specs = plan(strategy, case.prompt, duration)
    count = len(specs)
    headings = {unit for unit in case.units if re.match(r"^(INT|EXT)\.", unit)}
    seen: list[int] = []  # every unit's index the first time it appears, in segment order
    previous: list[int] = []
    for number, spec in enumerate(specs, start=1):
        header, narrative = split_header(spec.prompt, case.context, count)
        if header:
            assert int(header["index"]) == number and int(header["count"]) == count
        indices = as_units(narrative, case.units)
        # A scene heading is never a segment's last word: it goes with the action it heads.
        assert case.units[indices[-1]] not in headings, spec.prompt
        new = [index for index in indices if index not in seen]
        repeated = [index for index in indices if index in seen]
        # A unit comes back only in the segment right after one that showed it (it spans them), or
        # as the scene heading repeated over its scene.
        assert all(index in previous or case.units[index] in headings for index in repeated), spec.prompt
        if repeated and not new:
            assert header and header["position"] in ("continuation", "ending"), spec.prompt
        seen.extend(new)
        previous = indices
    assert seen == list(range(len(case.units)))  # nothing lost, order kept


@pytest.mark.parametrize("duration", DURATIONS)
@pytest.mark.parametrize("strategy", ["even", "sentences", "llm"])
@pytest.mark.parametrize("name", CORPUS)
def test_cues_read_beginning_continuation_ending_however_long_the_job(
    name: str, strategy: str, duration: float
) -> None:
    case = CORPUS[name]
    specs = plan(strategy, case.prompt, duration)
    spans: list[list[tuple[str, int, int]]] = []
    for spec in specs:
        header, _ = split_header(spec.prompt, case.context, len(specs))
        if header is None or header["position"] is None:
            continue
        cue = (header["position"], int(header["part"]), int(header["of"]))
        if cue[1] == 1:
            spans.append([])
        assert spans, f"a {cue[0]} before any beginning: {spec.prompt!r}"
        spans[-1].append(cue)
    for span in spans:
        of = span[0][2]
        positions = ["beginning", *["continuation"] * (of - 2), "ending"]
        assert span == [(position, part, of) for part, position in enumerate(positions, start=1)]


@pytest.mark.parametrize("duration", DURATIONS)
def test_one_sentence_spans_every_segment_with_the_same_cue_words(duration: float) -> None:
    sentence = CORPUS["one sentence"].prompt
    for strategy in ("even", "sentences"):
        specs = plan(strategy, sentence, duration)
        count = len(specs)
        if count == 1:
            assert specs[0].prompt == sentence
            continue
        expected = [
            f"Shot {n} of {count} ({'beginning' if n == 1 else 'ending' if n == count else 'continuation'}"
            f", part {n} of {count}): {sentence}"
            for n in range(1, count + 1)
        ]
        assert [spec.prompt for spec in specs] == expected


def test_manual_prompts_are_the_persons_own_whole_prompts() -> None:
    prompts = ("A fox wakes. It yawns.", "It runs across the snow.")
    specs = segment_prompt("manual", "A fox.", 20, 10, SegmentationContext(manual_prompts=prompts))
    assert tuple(spec.prompt for spec in specs) == prompts


# --- the clause rule --------------------------------------------------------------------------------


def test_a_short_unit_is_never_cut() -> None:
    sentence = "A fox runs, jumps, and rolls in the snow, then sleeps."
    assert split_long_unit(sentence) == [sentence]


@pytest.mark.parametrize("name", ["run-on sentence", "run-on with commas"])
def test_long_units_are_cut_only_at_clause_boundaries(name: str) -> None:
    text = CORPUS[name].prompt
    clauses = split_long_unit(text)
    assert len(clauses) > 1
    assert " ".join(clauses) == " ".join(text.split())  # nothing lost or reordered
    for clause, following in itertools.pairwise(clauses):
        # Each cut follows a punctuation mark or precedes a conjunction that opens a clause.
        assert clause[-1] in ",;:\u2014\u2013" or re.match(
            r"(and|but|or|so|yet|then|while|as|when|until|before|after|because|where|which|who)\b", following
        ), (clause, following)


def test_a_conjunction_cut_keeps_four_words_on_each_side() -> None:
    text = " ".join(["salt and pepper"] * 40)  # long, with no punctuation at all
    clauses = split_long_unit(text)
    assert " ".join(clauses) == text
    assert all(len(clause.split()) >= 4 for clause in clauses)


def test_a_long_unit_without_any_boundary_stays_whole() -> None:
    text = "x" * (LONG_UNIT_CHARS * 2)
    assert split_long_unit(text) == [text]


def test_cjk_run_on_is_cut_after_its_commas() -> None:
    clause = "狐狸在雪中慢慢地走着，"  # noqa: RUF001
    text = clause * 40
    pieces = split_long_unit(text)
    assert len(pieces) > 1
    assert "".join(pieces) == text
    assert all(piece.endswith("，") for piece in pieces)  # noqa: RUF001
    assert all(len(piece) <= LONG_UNIT_CHARS for piece in pieces)
