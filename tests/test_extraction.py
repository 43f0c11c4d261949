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


# A final-answer sentence (and, with unboxed="last", the last sentence with maths) gives what it
# asserts: after its last "is"/"="; the subject's own maths is never the answer.
@pytest.mark.parametrize("text, expected", [
    ("Final Answer: The largest $n$ is 34.", "34"),
    ("Final Answer: The volume of $ABCDEFGH$ is 120.", "120"),
    ("Final Answer: Jane started growing Sphere 3 hours ago", "3"),
    ("Final Answer: The number of ways this is possible is 12.", "12"),  # "is" inside the subject
    ("Final Answer: The remainder when $2^{10}$ is divided by $7$ is $2$.", "2"),
    ("Final answer: the total is 45 dollars.", "45"),
    ("Final answer: the area is $\\frac{3}{4}$ square units.", "\\frac{3}{4}"),
    ("Final answer: the change is -3/4 units.", "-3/4"),
    ("Final answer: x = 2 + 3 = 5", "5"),
    ("Final answer: $x = 4 \\cdot 3 = 12$.", "12"),
    ("Final answer: $x = \\frac{1}{3} \\approx 0.33$.", "\\frac{1}{3}"),
    ("Final Answer: The number of ways is 6, not 8.", "6"),
    ("Final Answer: The probability is $\\frac{1}{6}$, which is about 0.17.", "\\frac{1}{6}"),
    ("The answer is 64 because $4^3 = 64$.", "64"),
    ("Final Answer: The expression is $x^2 - 1$, and that is all.", "x^2 - 1"),
    ("Final Answer: The winner is Evelyn.", "Evelyn"),
    ("Final Answer: Since $x=3$, $y$ is 10.", "10"),
    ("The final answer is $2.5$. I hope it is correct.", "2.5"),
    ("The final answer is 12cm.", "12cm"),
    ("Final answer: 12 ($x$ is the count)", "12"),  # a lone variable after it is not the answer
    ("Final answer: $3$, $5$", "3, 5"),
])
def test_final_answer_sentence_gives_what_it_asserts(text, expected):
    assert extract_answer(text) == expected
    assert extract_answer(text, unboxed="last") == expected  # a phrase is read the same either way


def test_a_denied_value_is_never_the_answer():
    assert extract_answer("Final answer: $x$ is not 4.") != "4"
    assert extract_answer("Final answer: it isn't 4.") is None
    assert extract_answer("Since 9 is not prime, n is 9.", unboxed="last") == "9"
    assert extract_answer("The answer is not 10.", unboxed="last") is None


@pytest.mark.parametrize("text, expected", [
    ("The largest $n$ is 34.", "34"),
    ("Jane started growing the sphere 3 hours ago.", "3"),
    ("Each box holds 8 apples, so 5 boxes hold 40 apples.", "40"),  # no assertion: the last maths
    ("So $x = 2 + 3 = 5$.", "5"),
    ("The total is 45 dollars for 3 people.", "45"),
    ("The probability is $\\frac{1}{36}$, which is about 0.03.", "\\frac{1}{36}"),
    ("x is not 5; x is 7.", "7"),
    ("We find $x = 3$.\n\nThat is the only value, and it is positive.", "3"),  # a sentence with no maths is skipped
    ("After 2 more years, Ann will be 14.", "14"),
    ("The largest prime factor of 91 is 13 because 91 = 13 * 7.", "13"),
])
def test_unboxed_last_reads_the_last_sentence_with_maths(text, expected):
    assert extract_answer(text, unboxed="last") == expected
    assert extract_answer(text) is None


def test_equation_references_keep_equations_whole():
    text = "The circle is $x^2 + y^2 = 25$."
    assert extract_answer(text, unboxed="last") == "25"
    assert extract_answer(text, unboxed="last", equations=True) == "x^2 + y^2 = 25"
    assert extract_answer("Final answer: y = 2x + 1", equations=True) == "y = 2x + 1"
    assert extract_answer("Final answer: $x = 1 + 1 = 2$", equations=True) == "x = 2"  # a chain's ends


def test_values_listed_side_by_side_are_one_answer():
    """As with boxes side by side: a list, which meets a two-part reference and no single one."""
    assert extract_answer("Final answer: the roots are $x = 2$ and $x = 3$.") == "2, 3"
    assert extract_answer("Final answer: 5 or 6") == "5, 6"
    assert extract_answer("So $a = 1$ and $b = 4$, which gives $a + b = 5$.", unboxed="last") == "5"


@pytest.mark.parametrize("text", [
    "Final answer: " + "is " * 100_000,
    "is " * 100_000,
    "x is 1 " * 100_000,
    "Final answer: " + "$" * 100_000 + "5",
    "Final answer: " + "\\(" * 100_000,
    "\\[" * 100_000 + " is 5",
    "Final answer: " + "{" * 50_000 + "}" * 50_000,
    "So $" + "x=" * 100_000 + "5$.",
    "Final answer: " + "is not " * 100_000 + "5",
    "Final answer: 5 " + "because " * 100_000,
    "Final answer: " + "\\text{abc}" * 100_000,
    "So $" + "x \\equiv " * 20_000 + "3 \\pmod{7}$.",
    "So $x \\equiv" + " " * 100_000 + "3$.",
    "\\begin{align*}" * 20_000 + " is 5",
    "Thus \\[" + "\\begin{aligned} x &= 1 \\\\ " * 5_000 + "\\]",
    "$$1$$ A " * 30_000,
])
def test_sentence_reading_is_bounded(text):
    """Hostile sentences: the reading looks at a bounded window, so the answer is short."""
    for mode in ("off", "last"):
        got = extract_answer(text, unboxed=mode)
        assert got is None or len(got) <= 2_000


@pytest.mark.parametrize("text, expected", [
    ("So $(n + 2)(n + 4) \\equiv 24 \\equiv 3 \\pmod{7}$.", "3"),  # a congruence asserts its residue
    ("Thus \\[\\begin{aligned} s &= 375 + 523 \\\\ &= 898. \\end{aligned}\\]", "898"),  # the last row
    ("\\begin{align*} 2x &= 8 \\\\ x &= 4. \\end{align*}", "4"),
    ("We subtract: $36 - 7 - 2 - 10 = 17 = x$.", "17"),  # the value before the unknown it names
    ("The plane is $5x - 7y + 11z + 4 = 0$.", "5x - 7y + 11z + 4 = 0"),  # an equation, not the value 0
    ("Therefore, $b = 1.3$ and $c = 1.91$, which gives us $b + c = 3.21$.", "3.21"),
    ("This gives $8 + 1 = 9$ factors of $5$, so $42!$ has $9$ zeroes.", "9"),  # a concluding clause
    ("Hence $\\frac{65}{117} \\times 18 = 10$ of the $18$ representatives.", "10"),  # same clause: no
    ("so $-2 \\le x \\le 7$ and $x \\in [-2,7]$.", "x \\in [-2,7]"),  # relations are never listed
])
def test_unboxed_last_reads_solution_sentences(text, expected):
    assert extract_answer(text, unboxed="last") == expected
