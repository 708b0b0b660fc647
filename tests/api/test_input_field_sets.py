"""Input serializers hand their built fields to the next serializer of their class once validated
(jobs.api.input_serializers.StrictInputSerializer): what each one answers must stay its own."""

from __future__ import annotations

import threading

from django.test import override_settings

from jobs.api.input_serializers import VideoJobCreateSerializer, most_segments


def _job(prompt: str, duration: float = 30) -> dict:
    return {"prompt": prompt, "duration_seconds": duration, "render": False}


def test_the_next_serializer_takes_the_fields_of_the_last_validated_one():
    first = VideoJobCreateSerializer(data=_job("A fox runs."))
    assert first.is_valid()
    taken = first.fields  # asked again after is_valid: a set of its own, not the one it gave back
    second = VideoJobCreateSerializer(data=_job("An owl sleeps."))
    assert second.is_valid()
    third = VideoJobCreateSerializer(data={"prompt": 7, "duration_seconds": "10"})
    fields = third.fields
    assert fields is not taken
    assert all(field.parent is third for field in fields.values())
    assert fields["segments"].child.parent is fields["segments"]
    assert not third.is_valid()
    # Each keeps its own answer after its fields went to the next one.
    assert first.validated_data["prompt"] == "A fox runs."
    assert second.validated_data["prompt"] == "An owl sleeps."
    assert set(third.errors) == {"prompt", "duration_seconds"}
    assert "Must be a string, not int." in third.errors["prompt"][0]


def test_a_field_set_reused_after_errors_validates_the_next_body_afresh():
    bad = VideoJobCreateSerializer(data={**_job("x"), "segmentation_mode": "manual", "segments": [{"p": 1}]})
    assert not bad.is_valid()
    assert "segments" in bad.errors
    good = VideoJobCreateSerializer(
        data={**_job("x"), "segmentation_mode": "manual", "segments": [{"prompt": "a"}, {"prompt": "b"}]}
    )
    assert good.is_valid(), good.errors
    assert [segment["prompt"] for segment in good.validated_data["segments"]] == ["a", "b"]


def test_concurrent_serializers_never_share_a_field_set():
    results: dict[int, str] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def validate(worker: int) -> None:
        try:
            start.wait()
            for round_ in range(200):
                prompt = f"worker {worker} round {round_}"
                serializer = VideoJobCreateSerializer(data=_job(prompt))
                assert serializer.is_valid(), serializer.errors
                assert serializer.validated_data["prompt"] == prompt
                results[worker] = prompt
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=validate, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 8


def test_fields_built_from_settings_follow_a_settings_change():
    assert VideoJobCreateSerializer(data=_job("warm")).is_valid()  # a set now waits for reuse
    segments = [{"prompt": f"part {n}"} for n in range(5)]
    body = {**_job("x", duration=5), "segmentation_mode": "manual", "segments": segments}
    with override_settings(MAX_DURATION_SECONDS=4.0, MIN_SEGMENT_SECONDS=1.0):
        assert most_segments() == 4
        serializer = VideoJobCreateSerializer(data=body)
        assert not serializer.is_valid()
        assert "no more than 4" in str(serializer.errors["segments"][0])
    serializer = VideoJobCreateSerializer(data=body)
    assert serializer.is_valid(), serializer.errors
