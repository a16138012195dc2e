"""The run stage: from inputs to a downloaded, verified result, every paid step journaled.

``job`` runs one task (upload, submit, wait, download) and resumes it; ``parts`` sends a
long job in parts and joins them; ``pipeline`` is ``prep-and-retalk`` (check, fix, gate,
send, verify); ``batch`` runs a CSV file of such jobs; ``gates`` says which findings stop
a job before it is paid for; ``output_path`` says whether a result can be written where
asked. Nothing is re-exported here: the public face is ``retalk``.
"""
