import pytest

from thinksolve_env.prompts import (
    DEFAULT_PROMPTS,
    RATING_PAIRS,
    prepare_thought,
    rating_messages,
    solo_messages,
    solver_messages,
    strip_trailing_boxed,
    thinker_messages,
)


@pytest.mark.parametrize("thought, expected", [
    ("so it is \\boxed{5}", "so it is"),
    ("so it is $\\boxed{\\frac{1}{2}}$.", "so it is"),
    ("nested \\boxed{\\sqrt{x^{2}}}  \n", "nested"),
    ("\\fbox{7}", ""),
    ("we get \\boxed{3} and then more text", "we get \\boxed{3} and then more text"),  # not trailing
    ("two \\boxed{1} and \\boxed{2}", "two \\boxed{1} and"),  # only one (the last) is stripped
    ("unbalanced \\boxed{3", "unbalanced \\boxed{3"),
    ("no box at all", "no box at all"),
])
def test_strip_trailing_boxed(thought, expected):
    assert strip_trailing_boxed(thought) == expected


def test_prepare_thought_strips_then_cuts_keeping_the_beginning():
    assert prepare_thought("abcdef \\boxed{9}", 3) == "abc"
    assert prepare_thought("abcdef \\boxed{9}", None) == "abcdef"


def test_reference_templates():
    t = thinker_messages("P?")
    assert t[0]["role"] == "system" and "\\boxed" in t[0]["content"] and t[1]["content"] == "P?"
    s = solver_messages("P?", "T.")
    assert s[1]["content"] == "Problem:\nP?\n\nThinker's thought:\nT."
    assert solo_messages("P?")[1]["content"] == "P?"
    assert "directly" in solo_messages("P?")[0]["content"]


def test_rating_prompt_lists_pairs_and_outcome():
    assert RATING_PAIRS[0] == (0.9, 0.1) and RATING_PAIRS[-1] == (0.1, 0.9) and len(RATING_PAIRS) == 9
    m = rating_messages("P?", "T.", "\\boxed{1}", False, "Solver")
    assert "[0.9, 0.1]" in m[0]["content"] and '"outcome"' in m[0]["content"]
    assert "Verifier outcome: wrong" in m[1]["content"] and "blame" in m[1]["content"]
    assert "You are the Solver" in m[1]["content"]
    assert DEFAULT_PROMPTS.replace(solo_user="Solve: {problem}").solo_user == "Solve: {problem}"
