"""Credit assignment: one team outcome in, one reward per role and joint episode out.

Built-in methods (docs/method.md#credit-methods), one module each:

==============  =================================================  ===========================
name            Thinker / Solver reward                             requires
==============  =================================================  ===========================
``shared``      r_T = r_S = R_joint                                 —
``ccpo``        counterfactual bonus for the Thinker (variants      ``solo`` (+ ``no_solver``
                ``event``, ``margin``, ``normalized``)              for ``margin``)
``sepo``        R ± λ·(rating share − group mean)                   ``ratings``
``difference``  r_i = R_joint − R_¬i                                ``solo``, ``no_solver``
``shapley``     exact two-player Shapley values                     ``solo``, ``no_solver``
==============  =================================================  ===========================

Usage::

    from algorithms import credit
    method = credit.get("ccpo", variant="event", lam=0.2)
    groups = collect_groups(problems, policies, group_size=8, needs=method.requires)
    rewards = method(groups)          # {"thinker_0": array, "solver_0": array}

Your own method: register a class (subclass :class:`CreditMethod` and implement ``compute``)
or a plain function ``fn(groups, **params) -> {agent: rewards}``::

    @credit.register("solver_only", requires={"solo"})
    def solver_only(groups, bonus=0.1):
        R = credit.joint_rewards(groups)
        return {"thinker_0": R, "solver_0": R + bonus * (R - credit.solo_baselines(groups))}

    credit.get("solver_only", bonus=0.2)(groups)

A method defined in a file or module of your own is loaded with :func:`load_plugin` (the
trainer's ``plugins`` field and the ``--plugin`` flags of ``thinksolve train`` and the credit
benchmark do it for you); ``examples/event_both.py`` is a complete example.
"""

from __future__ import annotations

from .base import (
    COALITIONS,
    COUNTERFACTUALS,
    DROP,
    GROUPINGS,
    NO_SOLVER,
    R_EMPTY,
    RATINGS,
    ROLES,
    SOLO,
    CreditMethod,
    MissingCounterfactualError,
    Outcomes,
    Units,
    chain_coalitions,
    chain_roles,
    check_needs,
    coalition_label,
    coalition_values,
    group_index,
    joint_rewards,
    needs_for,
    no_solver_rewards,
    node_ids,
    node_values,
    normalize_needs,
    paired_solo_rewards,
    removal_values,
    resolve_grouping,
    role_units,
    solo_baselines,
    thought_ids,
    thought_slices,
    thought_values,
)
from .rating import Rating, parse_rating, rating_complete
from .registry import (
    REGISTRY,
    available,
    check_params,
    check_plugin,
    get,
    load_plugin,
    parameters,
    plugin_loaded,
    plugin_source,
    register,
    unregister,
)

__all__ = [
    "get",
    "register",
    "unregister",
    "load_plugin",
    "plugin_loaded",
    "plugin_source",
    "check_plugin",
    "available",
    "parameters",
    "check_params",
    "REGISTRY",
    "CreditMethod",
    "MissingCounterfactualError",
    "Outcomes",
    "parse_rating",
    "rating_complete",
    "Rating",
    "check_needs",
    "normalize_needs",
    "COUNTERFACTUALS",
    "SOLO",
    "NO_SOLVER",
    "RATINGS",
    "R_EMPTY",
    "ROLES",
    "joint_rewards",
    "group_index",
    "solo_baselines",
    "paired_solo_rewards",
    "no_solver_rewards",
    "GROUPINGS",
    "Units",
    "thought_ids",
    "thought_slices",
    "thought_values",
    "role_units",
    "resolve_grouping",
    "DROP",
    "COALITIONS",
    "needs_for",
    "chain_roles",
    "chain_coalitions",
    "coalition_label",
    "coalition_values",
    "removal_values",
    "node_ids",
    "node_values",
]

# Built-ins register themselves on import; the order of these lines is the order of available().
# isort: off
from . import shared, ccpo, sepo, difference, shapley, tree  # noqa: F401
# isort: on
