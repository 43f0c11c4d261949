"""The team's models: building each role's trainable policy, the warm start, rollout engines,
and loading a trained team back (:func:`load_team`)."""

from .build import RolePolicy, build_policies, build_reference, load_role_weights, restore_team, role_weights, team_state
from .engines import ENGINES, RolloutEngines, rollout_team
from .export import export_team
from .load import Team, load_team
from .memory import PlanUnavailable, check_fits, measured_state_bytes, memory_plan, min_gpus
from .sources import check_model_source
from .warmstart import model_source, warm_start, warm_start_path

__all__ = [
    "RolePolicy", "build_policies", "build_reference", "role_weights", "load_role_weights", "team_state", "restore_team",
    "RolloutEngines", "rollout_team", "ENGINES", "load_team", "Team", "export_team",
    "PlanUnavailable", "check_fits", "memory_plan", "min_gpus", "measured_state_bytes", "check_model_source",
    "warm_start", "warm_start_path", "model_source",
]
