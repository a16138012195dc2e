"""Fix: plans of the least change that makes files comply, and the writers that carry them out.

Checked files flow in; plans (`model`), then new files written beside them (`job`, and
the `video`, `audio` and `image` fixers, each a planner and a writer), and the cut and
join of long videos (`parts`) flow out. `media` holds what the writers open alike.
Originals are only read.
"""
