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
from typing import TYPE_CHECKING

from preflight import Finding, Severity
from preflight.codes import matches

if TYPE_CHECKING:
    from .result import PipelineResult

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


def findings_to_send(result: PipelineResult, aligned: bool) -> list[Finding]:
    """The findings of what would be sent: the fixed copies and the job they make (on a dry
    run, the inputs'), or the inputs' without the fix. ``aligned``: a dry run whose fix
    would make voice and video the same length (``--align``), so no word is cut."""
    if result.fix is not None:
        found = [f for fixed in result.fix.files for f in fixed.findings]
        found += list(result.fix.job.findings) if result.fix.job is not None else []
    else:
        found = result.check.all_findings() if result.check is not None else []
    return [f for f in found if not (aligned and f.code == "Pair.SpeechCut")]


def gated_text(gated: list[Finding], result: PipelineResult, gates: Gates, offer_force: bool = True) -> str:
    """Why the job stopped, what sending it would cost, and how to send it anyway
    (``offer_force``: False when the journal holds a job or split for these inputs: --force
    would start new jobs, paying again for parts already paid)."""
    reasons = "; ".join(f"{f.code} ({f.message.rstrip('.')})" for f in gated)
    if result.expected_s is not None and result.cost_cny is not None:
        cost = f"about {result.cost_cny:.2f} CNY ({result.expected_s:.2f} s billed)"
    else:
        cost = "an unknown amount (the result's length is unknown)"
    passes = " ".join(f"--accept {f.code}" for f in gated)
    threshold = (
        f", speech_cut_s (now {gates.speech_cut_s:g} s)"
        if any(f.code == "Pair.SpeechCut" for f in gated)
        else ""
    )
    return (
        f"stopped before sending, nothing uploaded or paid: {reasons}. Sent as it is, the job "
        f"would cost {cost} for a result you would not want. To send it anyway: {passes}"
        + (", or --force (passes every gate)" if offer_force else "")
        + f"; settings: [prep] gate{threshold}"
    )
