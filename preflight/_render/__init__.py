"""Render: reports turned into what people and CI read.

Reports flow in; terminal text (`text`, with `display` escaping every name), CI formats (JSON,
SARIF, JUnit, GitHub, GitLab), the HTML page and its contact sheets flow out.
"""
