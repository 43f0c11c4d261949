import pytest

from agents import Completion, Policy, ScriptedPolicy, constant_policy


def test_scripted_policy_counts_batched_calls():
    pol = ScriptedPolicy(lambda msgs: msgs[-1]["content"].upper())
    assert isinstance(pol, Policy)
    out = pol.generate([[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]], max_new_tokens=4)
    assert [c.text for c in out] == ["A", "B"] and all(isinstance(c, Completion) for c in out)
    assert pol.calls == 1 and pol.prompts_seen == 2
    assert constant_policy("x").generate([[{"role": "user", "content": "q"}]], max_new_tokens=1)[0].text == "x"


@pytest.mark.parametrize("kwargs, msg", [
    ({"prompts": []}, "prompts is empty"),
    ({"prompts": [[{"role": "user", "content": "q"}]], "max_new_tokens": 0}, "max_new_tokens must be"),
    ({"prompts": [["not a dict"]]}, r"prompts\[0\] must be"),
])
def test_bad_generate_arguments(kwargs, msg):
    pol = constant_policy("x")
    kwargs.setdefault("max_new_tokens", 4)
    with pytest.raises((ValueError, TypeError), match=msg):
        pol.generate(**kwargs)


def test_non_string_return_is_an_error():
    with pytest.raises(TypeError, match="must return str"):
        ScriptedPolicy(lambda m: 3).generate([[{"role": "user", "content": "q"}]], max_new_tokens=1)
