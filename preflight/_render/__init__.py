"""Render: reports turned into what people and CI read.

Reports flow in; terminal text (`text`, with `display` escaping every name), CI formats
(JSON, SARIF, JUnit, GitHub, GitLab), the HTML page (`html`) with its contact sheets and
sound plots (`plots`, drawn from the sound's `timeline`) flow out.
"""
