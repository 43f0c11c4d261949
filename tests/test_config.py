import dataclasses
import json

import pytest

from algorithms.config import (
    PRESETS,
    ConfigError,
    TrainerConfig,
    apply_credit,
    apply_optimizer,
    apply_overrides,
    preset,
)


def test_defaults_are_the_reference_recipe():
    c = TrainerConfig().validate()
    assert c.rollout.group_size == 16 and c.rollout.solo_samples is None
    ro = c.rollout
    assert (ro.thinker_max_new_tokens, ro.solver_max_new_tokens, ro.max_prompt_tokens) == (4096, 6144, 4096)
    assert c.optim.lr == 1e-6 and c.optim.grad_clip == 1.0 and c.optim.kl_coef == 0.0
    assert (c.optim.loss, c.optim.clip_low, c.optim.clip_high, c.optim.agg) == (
        "gspo", 3e-4, 4e-4, "seq-mean-token-mean")
    assert (c.optim.estimator, c.optim.scale) == ("grpo", "none")
    assert (c.schedule.mode, c.schedule.period, c.schedule.start_role) == ("alternate", 10, "thinker_0")
    assert c.model.sharing == "separate" and c.credit.name == "ccpo"


def test_every_preset_validates_and_round_trips_through_json():
    for name in PRESETS:
        c = preset(name)
        assert TrainerConfig.from_dict(json.loads(c.to_json())) == c


def test_unknown_preset_lists_choices():
    with pytest.raises(ConfigError, match=r"unknown preset 'nope'; choose from \['llama3.1-8b-math'"):
        preset("nope")


def test_overrides_are_typed_and_nested():
    c = apply_overrides(preset("tiny-arith"), ["optim.lr=7e-5", "rollout.group_size=4", "tensorboard=false",
                                               "credit.params.lam=0.5", "rollout.solo_samples=none",
                                               "credit.name=sepo"])
    assert c.optim.lr == 7e-5 and c.rollout.group_size == 4 and c.tensorboard is False
    assert c.credit.params == {"lam": 0.5} and c.rollout.solo_samples is None and c.credit.name == "sepo"
    assert preset("tiny-arith").optim.lr == PRESETS["tiny-arith"]().optim.lr != 7e-5  # the preset is untouched


@pytest.mark.parametrize("override, msg", [
    ("optim.lrr=1", r"unknown config field 'optim.lrr' \(did you mean 'optim.lr'\?\); known here: \["),
    ("optim.lr=fast", "optim.lr='fast' is invalid: allowed a float"),
    ("optim=1", "is a section"),
    ("tensorboard=maybe", "allowed true|false"),
    ("steps", "not field=value"),
])
def test_bad_overrides(override, msg):
    with pytest.raises(ConfigError, match=msg):
        apply_overrides(TrainerConfig(), [override])


@pytest.mark.parametrize("override, msg", [
    ("rollout.group_size=1", r"rollout.group_size=1 is invalid: allowed >= 2"),
    ("rollout.top_p=1.5", r"rollout.top_p=1.5 is invalid: allowed \(0, 1\]"),
    ("optim.agg=mean", "optim.agg='mean' is invalid: allowed token-mean"),
    ("schedule.start_role=critic_0", "schedule.start_role='critic_0' is invalid"),
    ("optim.dual_clip=0.5", r"optim.dual_clip=0.5 is invalid: allowed > 1 or None"),
])
def test_validation_names_field_and_range(override, msg):
    with pytest.raises(ConfigError, match=msg):
        apply_overrides(TrainerConfig(), [override]).validate()


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ConfigError, match=r"unknown config field\(s\) \['optim.foo'\]"):
        TrainerConfig.from_dict({"optim": {"foo": 1}})


@pytest.mark.parametrize("override, msg", [
    ("credit.name=magic", r"credit.name='magic' is invalid: allowed shared\|ccpo\|sepo"),
    ("optim.estimator=ppo", r"optim.estimator='ppo' is invalid: allowed grpo\|dr_grpo"),
    ("optim.loss=dpo", r"optim.loss='dpo' is invalid: allowed grpo\|gspo"),
    ("warm_start.steps=0", r"warm_start.steps=0 is invalid: allowed >= 1"),
    ("eval_temperature=-1", r"eval_temperature=-1.0 is invalid: allowed >= 0"),
])
def test_names_of_registries_are_checked(override, msg):
    with pytest.raises(ConfigError, match=msg):
        apply_overrides(TrainerConfig(), [override]).validate()


def test_optimizer_and_credit_shortcuts():
    c = apply_optimizer(TrainerConfig(), "rloo")
    assert (c.optim.estimator, c.optim.loss, c.optim.clip_low) == ("rloo", "grpo", 0.2) and c.optim.lr == 1e-6
    assert apply_optimizer(TrainerConfig(), "gspo").optim == TrainerConfig().optim  # the reference optimizer
    with pytest.raises(ConfigError, match=r"unknown optimizer 'adam'; choose from \['dr_grpo', 'grpo', 'gspo'"):
        apply_optimizer(TrainerConfig(), "adam")
    c = apply_credit(apply_overrides(TrainerConfig(), ["credit.params.lam=0.5"]), "sepo")
    assert c.credit.name == "sepo" and c.credit.params == {}
    with pytest.raises(ConfigError, match=r"unknown credit method 'magic'; choose from \["):
        apply_credit(TrainerConfig(), "magic")


@pytest.mark.parametrize("overrides, msg", [
    (["credit.name=ccpo", "credit.params.lamm=0.5"],
     r"credit.params=\{'lamm': 0.5\} is invalid for credit.name='ccpo': "
     r".*no parameter\(s\) \['lamm'\]; parameters: variant, lam"),
    (["credit.name=ccpo", "credit.params.lam=-1"], r"invalid for credit.name='ccpo': ccpo: lam must be >= 0, got -1"),
    (["rollout.temperature=0"], r"rollout.temperature=0.0 is invalid: allowed > 0 .*every advantage is 0"),
    (["model.sharing=shared", "model.solver_name=tiny"], r"model.solver_name='tiny' is invalid: allowed None with "
                                                         r"model.sharing='shared'"),
    (["model.sharing=lora", "model.solver_name=tiny"], r"model.solver_name='tiny' is invalid: allowed None with "
                                                       r"model.sharing='lora'"),
    (["model.name=/some/model/dir"], r"warm_start.enabled=True is invalid: allowed false with model '/some/model/dir': "
                                     r"the format warm start is for the built-in models"),
])
def test_settings_that_would_silently_do_something_else_are_errors(overrides, msg):
    with pytest.raises(ConfigError, match=msg):  # validate() checks names; building the method checks its values
        apply_overrides(preset("tiny-arith"), overrides).validate().credit.build()
    # the documented ways out are valid
    assert apply_overrides(preset("tiny-arith"), ["model.name=/some/model/dir", "warm_start.enabled=false"]).validate()
    assert apply_overrides(preset("tiny-arith"), ["model.solver_name=tiny"]).validate().model.sharing == "separate"


def test_list_fields_names_every_field_with_its_value_and_doc():
    from algorithms.config import list_fields

    fields = {name: (value, doc) for name, value, doc in list_fields(preset("tiny-arith"))}
    assert fields["optim.lr"] == (3e-5, "AdamW learning rate (constant after warm-up).")
    assert fields["rollout.group_size"][0] == 8 and fields["warm_start.steps"][0] == 600
    assert all(doc for _, doc in fields.values())  # every field is documented
    # every field of every section, and nothing else
    cfg = preset("tiny-arith")
    d = cfg.to_dict()
    sections = [k for k in d if dataclasses.is_dataclass(getattr(cfg, k))]
    assert {"warm_start", "model", "rollout", "credit", "optim", "schedule", "parallel"} <= set(sections)
    expected = [k for k in d if k not in sections] + [f"{s}.{k}" for s in sections for k in d[s]]
    assert sorted(fields) == sorted(expected)


@pytest.mark.usefixtures("credit_registry_restored")
def test_validate_imports_nothing_and_builds_nothing(tmp_path):
    from algorithms import credit

    plugin = tmp_path / "loud_plugin.py"
    plugin.write_text("raise RuntimeError('imported')\n")
    built = []

    @credit.register("test_counted")
    class Counted(credit.CreditMethod):
        def __init__(self, lam: float = 0.1) -> None:
            super().__init__()
            built.append(lam)
            if lam < 0:
                raise ValueError(f"test_counted: lam must be >= 0, got {lam}")

        def compute(self, groups):
            return {}

    cfg = apply_overrides(preset("tiny-arith"),
                          [f"plugins={plugin}", "credit.name=test_counted", "credit.params.lam=-1"])
    assert cfg.validate() is cfg  # the plugin is there (not imported); the parameter names are right (nothing built)
    assert built == [] and not credit.plugin_loaded(str(plugin))
    with pytest.raises(ConfigError, match=r"credit.params=\{'lam': -1\} is invalid for credit.name='test_counted': "
                                          r"test_counted: lam must be >= 0"):
        cfg.credit.build()
    assert built == [-1]
    with pytest.raises(ConfigError, match=r"plugins: cannot load '.*loud_plugin.py': imported"):
        cfg.load_plugins()
    cfg.plugins = ["no_such_module_for_thinksolve"]
    with pytest.raises(ConfigError, match="plugins: cannot load 'no_such_module_for_thinksolve'"):
        cfg.validate()
    cfg.plugins = "x.py"
    with pytest.raises(ConfigError, match=r"plugins='x\.py' is invalid: allowed a list"):
        cfg.validate()


def test_allowed_values_come_from_the_registries_and_the_annotations():
    from algorithms import estimators

    for override, msg in [("optim.scale=std", r"optim.scale='std' is invalid: allowed group\|batch\|none$"),
                          ("optim.kl_type=k2", r"optim.kl_type='k2' is invalid: allowed k1\|k3$"),
                          ("model.dtype=int8", r"model.dtype='int8' is invalid: allowed float32\|bfloat16\|float16$"),
                          ("rollout.engine=tgi", r"rollout.engine='tgi' is invalid: allowed transformers\|vllm$"),
                          ("schedule.mode=random",
                           r"schedule.mode='random' is invalid: allowed alternate\|simultaneous$")]:
        with pytest.raises(ConfigError, match=msg):
            apply_overrides(TrainerConfig(), [override]).validate()
    estimators.register("test_estimator")(lambda rewards, index=None, **kw: rewards)
    try:  # a registered name is allowed at once
        assert apply_overrides(TrainerConfig(), ["optim.estimator=test_estimator"]).validate()
    finally:
        estimators.REGISTRY.unregister("test_estimator")
    with pytest.raises(ConfigError, match=r"optim\.estimator='test_estimator' is invalid"):
        apply_overrides(TrainerConfig(), ["optim.estimator=test_estimator"]).validate()


@pytest.mark.parametrize(("overrides", "msg"), [
    (["parallel.strategy=zero3"], r"parallel\.strategy='zero3' is invalid: allowed ddp\|fsdp"),
    (["parallel.offload=true"], r"parallel\.offload=True is invalid: allowed false with parallel\.strategy=ddp"),
    (["parallel.replicas=2"], r"parallel\.replicas=2 is invalid: allowed 1 with parallel\.strategy=ddp"),
    (["parallel.strategy=fsdp", "parallel.replicas=0"], r"parallel\.replicas=0 is invalid: allowed an integer >= 1"),
])
def test_parallel_settings_that_cannot_work_are_named(overrides, msg):
    with pytest.raises(ConfigError, match=msg):
        apply_overrides(preset("tiny-arith"), overrides).validate()
    assert apply_overrides(preset("tiny-arith"), ["parallel.strategy=fsdp", "parallel.offload=true",
                                                  "parallel.replicas=2"]).validate()


def test_a_checkpoint_config_without_the_parallel_section_reads_as_the_defaults():
    old = preset("tiny-arith").to_dict()
    del old["parallel"]  # written before the section existed
    assert TrainerConfig.from_dict(old).parallel.strategy == "ddp"
