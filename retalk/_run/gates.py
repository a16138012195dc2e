"""Gates: findings that stop a paid ``prep-and-retalk`` job before anything is uploaded.

A warning such as ``Pair.SpeechCut`` does not make the service refuse the job, but it means
the result is not what the user wants (the words are cut, nothing is lip-synced). Such a
job would still be paid for, so it stops unless the user passes the finding: ``--accept
CODE`` (a code or a prefix, as ``--select`` takes them), ``--force`` (the pipeline passes
every gate), or the project's settings (``[prep] gate``, ``[prep] speech_cut_s``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from preflight import Finding, Severity
from preflight.codes import matches

#: The findings that stop a paid job by default.
DEFAULT_GATE: tuple[str, ...] = ("Pair.SpeechCut", "Audio.NoSpeech", "Face.NotFound", "Face.RefMismatch")
#: ``Pair.SpeechCut`` gates from this much speech cut (s, the finding's own
#: ``speech_cut_s``): a syllable or two at the end is a warning, a sentence is a gate.
DEFAULT_SPEECH_CUT_S = 2.0


@dataclass(frozen=True)
class Gates:
    """Which findings stop a job, and which the user passed for this run."""

    gate: tuple[str, ...] = DEFAULT_GATE
    speech_cut_s: float = DEFAULT_SPEECH_CUT_S
    #: Codes or prefixes passed on the command line (``--accept``).
    accept: tuple[str, ...] = ()

    @classmethod
    def of(cls, gate: Sequence[str] | None, speech_cut_s: float | None, accept: Sequence[str] = ()) -> Gates:
        """The settings' gates (None: the defaults) with the command line's passes."""
        return cls(
            DEFAULT_GATE if gate is None else tuple(gate),
            DEFAULT_SPEECH_CUT_S if speech_cut_s is None else speech_cut_s,
            tuple(accept),
        )

    def gating(self, findings: Iterable[Finding], *, extend_video: bool = False) -> list[Finding]:
        """The warnings, among ``findings``, that stop the job (each code once, in order)."""
        stopping: dict[str, Finding] = {}
        for finding in findings:
            code = finding.code
            if code in stopping or not matches(code, self.gate) or matches(code, self.accept):
                continue
            if finding.severity is Severity.INFO:
                continue  # news, not a problem (errors stop the job before the gates anyway)
            if code == "Pair.SpeechCut":
                # The video is extended to the whole voice: no word is cut.
                if extend_video:
                    continue
                cut = finding.details.get("speech_cut_s")
                if isinstance(cut, int | float) and cut < self.speech_cut_s:
                    continue
            stopping[code] = finding
        return list(stopping.values())
