"""The world: the Think–Solve environment (a chain of N >= 2 roles, two by default), its problems,
prompts and verifier."""

from .env import ROLES, SOLVER, THINKER, ThinkSolveEnv, UnicodeText, env, parallel_env, raw_env
from .games import GAMES, TabularGame, available_games, exact_values, make_game
from .problems import Problem, ProblemFormatError, arith_problems, load_problems
from .prompts import CHAIN_TEMPLATES, DEFAULT_PROMPTS, PromptSet, predecessor_text, prompt_set, role_messages
from .verifier import MathVerifier, Verification, Verifier, extract_answer

__all__ = [
    "ThinkSolveEnv", "raw_env", "env", "parallel_env", "UnicodeText", "THINKER", "SOLVER", "ROLES",
    "Problem", "ProblemFormatError", "load_problems", "arith_problems",
    "PromptSet", "DEFAULT_PROMPTS", "prompt_set", "role_messages", "predecessor_text", "CHAIN_TEMPLATES",
    "MathVerifier", "Verification", "Verifier", "extract_answer",
    "TabularGame", "GAMES", "make_game", "available_games", "exact_values",
]
