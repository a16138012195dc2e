"""Probe: facts read from media files, never judged here.

Files flow in; out flow `MediaInfo` (container, streams, sniffed kind, the ISO BMFF boxes),
the EXIF orientation (`exif`), decoded frames, loudness (`loudness`, the one EBU R128
meter), voice measurements (`voice`) and faces (`faces/`: the engine protocol, the
mediapipe engine, scans over frames, who a face is).
"""
