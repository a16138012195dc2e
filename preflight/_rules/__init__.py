"""Rules: pure functions from probed facts to findings, with the service's error codes.

Facts (`MediaInfo`, voice measurements, face scans) and thresholds flow in; `Finding` lists
flow out. Nothing here opens a file. One entry point per role (`container`), checks by
subject (`video`, `duration`, `image`, `voice`, `faces`, `pair`), and what they share: the
one finding builder (`finding`, severity from `codes.CODES`) and how numbers read (`words`).
"""
