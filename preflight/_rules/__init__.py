"""Rules: pure functions from probed facts to findings, with the service's error codes.

Facts (`MediaInfo`, voice measurements, face scans) and thresholds flow in; `Finding` lists
flow out. Nothing here opens a file.
"""
