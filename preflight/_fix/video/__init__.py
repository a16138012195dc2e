"""Fixing the job's video: a compliant copy with the least change.

``plan`` decides from the check's findings (remux before re-encode), ``geometry`` holds
the sizes, crops and turns it picks from, ``write`` carries a plan out with PyAV, and
``sound`` keeps the video's own sound track in step with the written picture.
"""

from .geometry import fitted_size, reframe_share
from .plan import VideoPlan, plan_video, target_fps
from .write import write_video

__all__ = ["VideoPlan", "fitted_size", "plan_video", "reframe_share", "target_fps", "write_video"]
