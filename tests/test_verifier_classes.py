"""The verifier on each class of miss found against other graders' test suites (issue 13), with
our own cases: multi-box references, answers boxed part by part, final-answer sentences,
chat-template tokens, trailing ``\\\\``/``.`` in references, ``\\mathrm{e}``, unboxed text and a
relative tolerance; plus the deliberate differences from math-verify, which must stay."""

from __future__ import annotations

import pytest

from thinksolve_env.verifier import MathVerifier, count_parts, extract_answer


@pytest.fixture(scope="module")
def verifier():
    with MathVerifier(timeout=3.0, workers=1) as v:
        yield v


def judged(v, text, ref):
    r = v.verify(text, ref)
    return r.correct, r.reason


# --------------------------------------------------------------------------- references with several boxes

MULTI_REF = "The two solutions are $\\boxed{4}$ and $\\boxed{-9}$."


@pytest.mark.parametrize("text, ok", [
    ("\\boxed{-9}", False),                      # half the answer: the old verifier took the last box
    ("\\boxed{4}", False),
    ("\\boxed{4, -9}", True),
    ("\\boxed{-9, 4}", True),                    # solutions form a set
    ("so $x=\\boxed{4}$ or $x=\\boxed{-9}$", True),
    ("first \\boxed{4}.\n\nThen the other root is \\boxed{-9}.", True),  # boxed part by part
    ("\\boxed{4, -9, 1}", False),                # an extra guess does not pay
    ("\\boxed{1} or \\boxed{4} or \\boxed{-9}", False),
])
def test_reference_with_several_boxes_states_all_of_them(verifier, text, ok):
    assert judged(verifier, text, MULTI_REF)[0] is ok


def test_repeated_reference_box_counts_once(verifier):
    ref = "So $y = \\boxed{12}$. Check: the total is $\\boxed{12}$."
    assert judged(verifier, "\\boxed{12}", ref)[0]


# --------------------------------------------------------------------------- parts boxed separately


@pytest.mark.parametrize("text, ref, ok", [
    ("\\boxed{2} and \\boxed{-6}", "2, -6", True),
    ("\\boxed{-6} and \\boxed{2}", "2, -6", True),
    ("\\boxed{2} and \\boxed{-6}", "2", False),   # two guesses for one answer: never pays
    ("\\boxed{2} or \\boxed{-6}", "-6", False),
    ("\\boxed{2}, \\boxed{2}", "2", True),        # the same box twice is one answer
    ("We had \\boxed{2}. Then the final value is \\boxed{-6}", "-6", True),  # an earlier result
    ("\\boxed{7}\n\\boxed{2}, \\boxed{-6}", "2, -6", True),
])
def test_parts_boxed_separately_count_only_for_a_reference_with_that_many_parts(verifier, text, ref, ok):
    assert judged(verifier, text, ref)[0] is ok


@pytest.mark.parametrize("answer, n", [
    ("3, -5", 2), ("(1, 2)", 1), ("\\{1, 2\\}", 1), ("[0, 1)", 1), ("1,000", 1), ("12,345,678", 1),
    ("2, 100", 2), ("x=1, y=2", 2), ("a, b, c", 3), ("", 1),
])
def test_count_parts(answer, n):
    assert count_parts(answer) == n


# --------------------------------------------------------------------------- final-answer sentences and chat tokens


@pytest.mark.parametrize("text, ref, ok", [
    ("Final Answer: The final answer is $3.5$. I hope it is correct.", "\\frac{7}{2}", True),
    ("Final Answer: The final answer is $3.5$. I hope it is correct.", "4", False),
    ("The final answer is $\\frac{2}{9}$. I hope it is correct.", "\\frac{2}{9}", True),
    ("The answer is 16 because each side has 4 tiles.", "16", True),
    ("The answer is 16; the check above confirms it.", "16", True),
    ("Therefore the final answer is therefore $x = 11$.", "11", True),
    ("The final answer is:\n$$\\sqrt{3}$$", "\\sqrt{3}", True),
])
def test_final_answer_phrase_ends_with_its_sentence(verifier, text, ref, ok):
    assert judged(verifier, text, ref)[0] is ok


@pytest.mark.parametrize("text", [
    "The answer is 27<|im_end|>\n<|im_start|>user\nThanks",
    "The answer is 27<|eot_id|><|start_header_id|>user<|end_header_id|>",
    "The final answer is 27</s>",
    "The answer is 27<end_of_turn>",
    "The answer is 27<｜end▁of▁sentence｜>",
    "\\boxed{27}<|im_end|>",
])
def test_chat_template_tokens_end_the_answer(verifier, text):
    assert extract_answer(text) == "27"
    assert judged(verifier, text, "27") == (True, "match")


# --------------------------------------------------------------------------- reference cleaning


@pytest.mark.parametrize("ref", ["8.", "8\\\\", "8\\", "8 \\\\ ", "8\\,", "$8$.", "\\frac{16}{2}\\\\"])
def test_trailing_punctuation_of_a_reference_is_cleaned(verifier, ref):
    assert judged(verifier, "\\boxed{8}", ref)[0]
    assert not judged(verifier, "\\boxed{9}", ref)[0]


@pytest.mark.parametrize("text, ref, ok", [
    ("\\boxed{e^{3}}", "\\mathrm{e}^{3}", True),
    ("\\boxed{2e}", "2\\mathrm{e}", True),
    ("\\boxed{\\frac{1}{e}}", "\\mathrm{e}^{-1}", True),
    ("\\boxed{e^{2}}", "\\mathrm{e}^{3}", False),
    ("\\boxed{\\mathrm{e}^{3}}", "e^3", True),
])
def test_mathrm_e_is_eulers_number(verifier, text, ref, ok):
    assert judged(verifier, text, ref)[0] is ok


# --------------------------------------------------------------------------- options


def test_unboxed_text_is_read_only_when_asked():
    text = "Adding the two groups gives 23 marbles."
    with MathVerifier(workers=0) as off, MathVerifier(workers=0, unboxed="last") as last:
        assert judged(off, text, "23") == (False, "no-answer")
        assert judged(last, text, "23") == (True, "match")
        assert judged(last, "so the area is $6\\pi$ square units", "6\\pi")[0]
        assert not judged(last, text, "24")[0]
        assert judged(last, "\\boxed{24}", "24")[0]  # a box still wins
    with pytest.raises(ValueError, match="unboxed must be one of off, last"):
        MathVerifier(unboxed="first")


def test_relative_tolerance_option():
    with MathVerifier(workers=1, rel_tol=1e-3) as tol, MathVerifier(workers=1) as exact:
        for text, ref, ok in [
            ("\\boxed{3.1416}", "\\pi", True),
            ("\\boxed{3.15}", "\\pi", False),
            ("\\boxed{0.3333}", "\\frac{1}{3}", True),
            ("\\boxed{1414.2}", "1000\\sqrt{2}", True),
            ("\\boxed{100.05}", "100", True),   # string layer (plain decimals)
            ("\\boxed{100.2}", "100", False),
            ("\\boxed{x}", "\\pi", False),
        ]:
            assert judged(tol, text, ref)[0] is ok, (text, ref)
            if ok:
                assert not judged(exact, text, ref)[0], (text, ref)  # exact by default
    with pytest.raises(ValueError, match="rel_tol must be in"):
        MathVerifier(rel_tol=2.0)


def test_wall_timeout_must_cover_the_cpu_budget():
    with pytest.raises(ValueError, match="wall_timeout must be >= timeout"):
        MathVerifier(timeout=3.0, wall_timeout=1.0)
    assert MathVerifier(timeout=2.0).wall_timeout == 50.0


# --------------------------------------------------------------------------- deliberate differences stay


@pytest.mark.parametrize("text, ref", [
    ("\\boxed{\\{2, 1, 3\\}}", "(1, 2, 3)"),      # an ordered tuple is not a set
    ("\\boxed{2 < x < 5}", "(2, 5)"),             # a relation is not an interval answer
    ("\\boxed{45}", "\\frac{\\pi}{4}"),           # degrees are not radians
    ("\\boxed{45^\\circ}", "\\frac{\\pi}{4}"),
])
def test_deliberate_choices_are_kept(verifier, text, ref):
    assert not judged(verifier, text, ref)[0]
