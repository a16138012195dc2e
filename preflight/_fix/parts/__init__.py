"""A job longer than the service takes, cut into parts it does take, and the lip-synced
parts joined back into one video.

``plan`` decides where to cut (pauses of the speech, frame boundaries, clean keyframes),
``cut`` writes each part's video and voice, ``join`` puts the results back together under
the whole voice; ``model`` holds the plan they share.
"""

from .cut import PartFiles, part_names, write_parts
from .join import JoinReport, encode_voice, join_parts
from .model import Part, Speech, SplitError, SplitPlan
from .plan import CUT_MARGIN_S, MAX_PART_S, MIN_PART_S, cut_times, plan_split

__all__ = [
    "CUT_MARGIN_S",
    "MAX_PART_S",
    "MIN_PART_S",
    "JoinReport",
    "Part",
    "PartFiles",
    "Speech",
    "SplitError",
    "SplitPlan",
    "cut_times",
    "encode_voice",
    "join_parts",
    "part_names",
    "plan_split",
    "write_parts",
]
