"""Check: which files to look at, how (options, worker processes, the cache), and the reports.

Paths and `CheckOptions` flow in; each file is probed and judged (in a worker process that a
crash or hang cannot take down with it), and `CheckReport` / `JobReport` flow out.
"""
