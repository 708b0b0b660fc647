"""Provider error codes become sentences for people; the stored error keeps the raw code."""

from __future__ import annotations

from jobs.error_text import SENTENCES, error_code, explain


def test_a_known_code_becomes_a_sentence_without_the_code():
    text = explain("moderation_blocked: Your request was blocked by our moderation system.")
    assert text == SENTENCES["moderation_blocked"]
    assert "moderation_blocked" not in text and text.endswith(".")


def test_our_own_messages_and_unknown_codes_are_shown_as_they_are():
    own = "not rendered: segment 2 did not complete"
    assert error_code(own) == ""  # "not rendered" has a space: not a code
    assert explain(own) == own
    assert explain("weird_new_code: something") == "weird_new_code: something"
    assert explain("") == ""


def test_every_sentence_is_a_full_sentence_for_a_person():
    for code, sentence in SENTENCES.items():
        assert sentence[0].isupper() and sentence.endswith("."), code
        assert "_" not in sentence, code
