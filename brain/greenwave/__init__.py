"""Green waves (绿波带): corridor model, Webster cycle and splits, MAXBAND offsets, safety checks,
plan transitions, live re-planning and emergency/bus priority.

Example:
    >>> from brain.greenwave import CorridorSpec, optimize_corridor
    >>> spec = CorridorSpec.from_json(open(__file__.replace("__init__.py", "example_corridor.json")).read())
    >>> plan = optimize_corridor(spec)
    >>> plan.corridor, len(plan.intersections)
    ('example', 4)
"""
from brain.greenwave.model import CorridorSpec, IntersectionSpec, PhaseSpec, corridor_from_city
from brain.greenwave.optimizer import optimize_corridor
from brain.greenwave.plan import IntersectionTiming, PhaseTiming, Plan, to_ntcip
from brain.greenwave.priority import BusPriority, EmergencyPriority, PriorityRequest
from brain.greenwave.replanner import CorridorReplanner
from brain.greenwave.safety import UnsafePlanError, assert_safe, check_plan
from brain.greenwave.transition import Transition, check_transition, plan_transition

__all__ = [
    "CorridorSpec",
    "IntersectionSpec",
    "PhaseSpec",
    "corridor_from_city",
    "optimize_corridor",
    "Plan",
    "PhaseTiming",
    "IntersectionTiming",
    "to_ntcip",
    "check_plan",
    "assert_safe",
    "UnsafePlanError",
    "CorridorReplanner",
    "plan_transition",
    "check_transition",
    "Transition",
    "EmergencyPriority",
    "BusPriority",
    "PriorityRequest",
]
