"""The verifier's first layer: answer extraction and the normalised string comparison."""

import pytest

from thinksolve_env.verifier import extract_answer, normalize_answer


@pytest.mark.parametrize("text, expected", [
    ("so \\boxed{42}.", "42"),
    ("\\boxed{1} then \\boxed{2}", "2"),
    ("\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{1}{\\sqrt{2}}"),
    ("\\fbox{x+1}", "x+1"),
    ("The final answer is $7$.", "7"),
    ("Final answer: 12", "12"),
    ("the answer is 3/4.", "3/4"),
    ("\\boxed{3 and never closed", None),
    ("no answer here", None),
    ("", None),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_extract_is_bounded_on_huge_text():
    text = "{" * 100_000 + "\\boxed{5}"
    assert extract_answer(text) == "5"


@pytest.mark.parametrize("a, b", [
    ("\\dfrac{1}{2}", "\\frac{1}{2}"),
    ("$5$", "5"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
    ("10^\\circ", "10"),
    ("x = 5", "5"),
    ("1,000,000", "1000000"),
    ("\\text{Evelyn}", "evelyn"),
    ("２", "2"),
    ("5.50", "5.5"),
    ("\\frac12", "\\frac{1}{2}"),
])
def test_normalize_equates(a, b):
    assert normalize_answer(a) == normalize_answer(b)


@pytest.mark.parametrize("a, b", [("1", "-1"), ("(1,2)", "[1,2]"), ("x+1", "x-1"), ("12", "1,2")])
def test_normalize_keeps_different_answers_apart(a, b):
    assert normalize_answer(a) != normalize_answer(b)
