"""Fix: plans of the least change that makes files comply, and the writers that carry them out.

Checked files flow in; plans (`model`), then new files written beside them (`job`, `video`,
`audio`, `image`), and the cut and join of long videos (`parts`) flow out. Originals are only
read.
"""
