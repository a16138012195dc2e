"""``preflight report``: one self-contained HTML page for a job or a folder.

The page holds, for each file, its findings and facts; for a video, the contact sheet of
the sampled frames with faces boxed; for anything with sound, a waveform with the speech
the detector heard and the loudness over time. Pictures are inlined (``data:`` URIs),
plots are inline SVG, and the page loads nothing from anywhere: it can be mailed, kept
as a CI artefact, or opened from a file system with no network.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from PIL import Image

from .._atomic import atomic_output
from .._models import CheckReport, FileReport, Finding, ImageInfo, MediaInfo, Severity
from .._probe.faces.scan import ImageFaceScan, VideoFaceScan
from .._rules.voice import QUIET_LUFS
from .._rules.words import axis_clock
from ..codes import CODES
from .contact_sheet import render_contact_sheet, render_image_faces
from .display import printable
from .plots import loudness_svg, waveform_svg
from .timeline import MAX_TIMELINE_S, AudioTimeline, audio_timeline

#: Pictures are inlined as JPEG at this quality: boxes stay crisp, pages stay small.
JPEG_QUALITY = 85
#: Up to this many files, every file's section starts open.
OPEN_ALL_UP_TO = 6


def _e(text: object) -> str:
    # Names and tags may hold control characters and bytes that are not UTF-8: shown escaped.
    return html.escape(printable(str(text)), quote=True)


def _picture(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/jpeg;base64,{data}"


def _facts(report: FileReport) -> list[tuple[str, str]]:
    media = report.media
    facts: list[tuple[str, str]] = []
    if isinstance(media, MediaInfo):
        facts.append(("size", f"{media.size / 1e6:.1f} MB"))
        if media.container:
            facts.append(("container", media.container))
        if media.duration is not None:
            facts.append(("duration", f"{media.duration:.2f} s"))
        for video in media.video[:1]:
            fps = f", {video.avg_fps:.3g} fps" if video.avg_fps else ""
            turned = f", rotated {video.rotation}°" if video.rotation else ""
            facts.append(
                ("video", f"{video.codec} {video.width}x{video.height}{fps}{turned}, {video.pixel_format}")
            )
        for audio in media.audio[:1]:
            facts.append(
                ("audio", f"{audio.codec}, {audio.sample_rate} Hz, {audio.channel_layout or audio.channels}")
            )
    elif isinstance(media, ImageInfo):
        facts.append(("size", f"{media.size / 1e6:.2f} MB"))
        facts.append(("image", f"{media.format} {media.width}x{media.height} {media.mode}"))
    speech = report.speech
    if speech is not None:
        if speech.loudness_lufs is not None:
            facts.append(("loudness", f"{speech.loudness_lufs:.1f} LUFS"))
        if speech.true_peak_dbtp is not None:
            facts.append(("true peak", f"{speech.true_peak_dbtp:.1f} dBTP"))
        if speech.snr_db is not None:
            facts.append(("speech over noise", f"{speech.snr_db:.0f} dB"))
        facts.append(("speech", f"{speech.speech_share:.0%} of the time"))
    return facts


def _findings_table(findings: Sequence[Finding]) -> str:
    if not findings:
        return '<p class="clean">No findings.</p>'
    rows = []
    for finding in findings:
        summary = CODES[finding.code].summary if finding.code in CODES else ""
        fixable = (
            '<span class="fixable" title="preflight fix can repair this">fixable</span>'
            if finding.fixable
            else ""
        )
        rows.append(
            f'<tr class="finding {finding.severity.value}"><td><span class="badge {finding.severity.value}">'
            f"{finding.severity.value}</span></td>"
            f'<td><code title="{_e(summary)}">{_e(finding.code)}</code></td>'
            f"<td>{_e(finding.message)} {fixable}</td></tr>"
        )
    return '<table class="findings"><tbody>' + "".join(rows) + "</tbody></table>"


def _status(findings: Sequence[Finding]) -> tuple[str, str]:
    if any(f.severity is Severity.ERROR for f in findings):
        return "error", "rejected"
    if any(f.severity is Severity.WARNING for f in findings):
        return "warning", "accepted, with advice"
    return "ok", "accepted"


def _pictures(report: FileReport, ref: FileReport | None) -> str:
    """The video's contact sheet, or the image with its faces boxed; "" for sound."""
    if isinstance(report.faces, VideoFaceScan) and any(s.thumbnail is not None for s in report.faces.samples):
        sheet = render_contact_sheet(report, ref)
        return (
            "<h3>Frames sampled, faces boxed</h3>"
            f'<img class="sheet" alt="contact sheet of {_e(report.path)}" '
            f'width="{sheet.width}" height="{sheet.height}" src="{_picture(sheet)}">'
            '<p class="legend"><span class="key target"></span>the face the service will sync '
            '<span class="key other"></span>other faces <span class="key trouble"></span>turned away or '
            'cut off <span class="key none"></span>no face <span class="key reference"></span>reference</p>'
        )
    if isinstance(report.faces, ImageFaceScan):
        picture = render_image_faces(report.faces)
        if picture is not None:
            return (
                f'<h3>Faces found: {len(report.faces.faces)}</h3><img class="portrait" '
                f'alt="faces in {_e(report.path)}" width="{picture.width}" height="{picture.height}" '
                f'src="{_picture(picture)}">'
            )
    return ""


def _file_section(
    number: int,
    report: FileReport,
    timeline: AudioTimeline | None,
    ref: FileReport | None,
    quiet_lufs: float,
    opened: bool,
) -> str:
    status, verdict = _status(report.findings)
    facts = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in _facts(report))
    parts = [
        f'<details class="file {status}" id="file-{number}"{" open" if opened or report.findings else ""}>',
        f'<summary><span class="dot {status}"></span><span class="path">{_e(report.path)}</span>'
        f'<span class="role">{_e(report.role)}</span><span class="verdict">{verdict}</span></summary>',
        f'<div class="body"><table class="facts">{facts}</table>{_findings_table(report.findings)}',
    ]
    try:
        parts.append(_pictures(report, ref))
    except Exception as exc:  # the findings still stand; say what could not be drawn
        parts.append(f'<p class="note">Frames not drawn: {_e(type(exc).__name__)}: {_e(exc)}</p>')
    if timeline is not None:
        if timeline.duration > 0:
            speech_s = sum(b - a for a, b in timeline.speech)
            parts.append(
                f"<h3>Sound: {timeline.duration:.1f} s, speech {speech_s:.1f} s in "
                f"{len(timeline.speech)} stretches</h3>"
                f'<p class="legend"><span class="key speech"></span>speech heard; bare: silence or noise</p>'
                f"{waveform_svg(timeline)}<h3>Loudness (LUFS)</h3>"
                '<p class="legend"><span class="key short-term"></span>short-term (3 s) '
                '<span class="key momentary"></span>momentary (400 ms)</p>'
                f"{loudness_svg(timeline, quiet_lufs)}"
            )
        if timeline.cut_short:
            parts.append(f'<p class="note">The sound is drawn up to {axis_clock(MAX_TIMELINE_S)} only.</p>')
        if timeline.error:
            parts.append(f'<p class="note">Sound not drawn in full: {_e(timeline.error)}</p>')
    parts.append("</div></details>")
    return "".join(parts)


_STYLE = """
:root { color-scheme: light; --error:#c62828; --warning:#b26a00; --ok:#2e7d32; --info:#546e7a; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d2125;
  background: #f4f5f7; }
header { background: #1d2125; color: #eee; padding: 16px 24px; }
header h1 { font-size: 20px; margin: 0 0 4px; }
header .meta { color: #aab; font-size: 12px; }
main { padding: 16px 24px; max-width: 1500px; }
.summary { display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 12px; }
.summary .count { background: #fff; border-radius: 6px; padding: 8px 14px; box-shadow: 0 1px 2px #0002; }
.summary .count b { font-size: 18px; display: block; }
.filters { margin: 8px 0 16px; }
.filters label { margin-right: 14px; cursor: pointer; }
details.file { background: #fff; border-radius: 6px; margin: 8px 0; box-shadow: 0 1px 2px #0002;
  border-left: 5px solid var(--ok); }
details.file.error { border-left-color: var(--error); }
details.file.warning { border-left-color: var(--warning); }
summary { cursor: pointer; padding: 10px 14px; display: flex; gap: 12px; align-items: center; }
summary .path { font-family: ui-monospace, monospace; font-weight: 600; word-break: break-all; }
summary .role { color: #666; }
summary .verdict { margin-left: auto; color: #555; white-space: nowrap; }
.dot { width: 10px; height: 10px; border-radius: 50%; background: var(--ok); flex: none; }
.dot.error { background: var(--error); } .dot.warning { background: var(--warning); }
.body { padding: 0 14px 14px; }
table { border-collapse: collapse; }
table.facts th { text-align: left; color: #666; font-weight: normal; padding: 1px 12px 1px 0; }
table.findings { width: 100%; margin: 10px 0; }
table.findings td { border-top: 1px solid #eee; padding: 5px 8px; vertical-align: top; }
.badge { display: inline-block; border-radius: 3px; padding: 0 6px; color: #fff; font-size: 12px; }
.badge.error { background: var(--error); } .badge.warning { background: var(--warning); }
.badge.info { background: var(--info); }
.fixable { font-size: 11px; color: var(--ok); border: 1px solid var(--ok); border-radius: 3px;
  padding: 0 4px; }
.clean { color: var(--ok); }
h2 { font-size: 16px; margin: 20px 0 6px; } h3 { font-size: 13px; margin: 14px 0 4px; color: #333; }
img.sheet, img.portrait { max-width: 100%; height: auto; border-radius: 4px; display: block; }
svg.plot { width: 100%; max-width: 1100px; height: auto; display: block; background: #fbfbfc; }
svg .wave { fill: #37474f; } svg .axis { stroke: #999; stroke-width: 0.5; }
svg .grid { stroke: #ddd; stroke-width: 0.5; } svg .tick { font-size: 10px; fill: #666; }
svg .speech { fill: #66bb6a; opacity: 0.28; }
svg .momentary { fill: none; stroke: #90a4ae; stroke-width: 0.8; }
svg .short-term { fill: none; stroke: #1565c0; stroke-width: 1.8; }
svg .limit { stroke: var(--error); stroke-dasharray: 6 4; stroke-width: 1; }
svg .limit-label { fill: var(--error); font-size: 10px; }
svg .integrated { stroke: #6a1b9a; stroke-dasharray: 2 3; stroke-width: 1; }
svg .integrated-label { fill: #6a1b9a; font-size: 10px; }
.legend { font-size: 12px; color: #555; margin: 2px 0; }
.key { display: inline-block; width: 14px; height: 10px; margin: 0 4px 0 10px; vertical-align: middle; }
.key.speech { background: #66bb6a66; } .key.short-term { background: #1565c0; }
.key.momentary { background: #90a4ae; } .key.target { border: 2px solid #3cdc5a; }
.key.other { border: 2px solid #f0c828; } .key.trouble { border: 2px solid #ff8c00; }
.key.none { border: 2px solid #e63232; } .key.reference { border: 2px solid #4696ff; }
.note { color: #555; font-style: italic; }
.hide-info tr.info, .hide-warning tr.warning { display: none; }
.only-trouble details.file.ok { display: none; }
footer { color: #888; font-size: 12px; padding: 12px 24px 24px; }
"""

# Only filters: the page reads the same without it. ``data-ready`` tells a test (or a
# curious user) that it ran; an error is shown on the page rather than lost in a console.
_SCRIPT = """
(function () {
  "use strict";
  window.addEventListener("error", function (event) {
    var box = document.getElementById("script-error");
    box.textContent = "This page hit an error: " + event.message;
    box.hidden = false;
  });
  var main = document.querySelector("main");
  document.querySelectorAll("[data-filter]").forEach(function (box) {
    box.addEventListener("change", function () {
      main.classList.toggle(box.getAttribute("data-filter"), box.checked);
    });
    main.classList.toggle(box.getAttribute("data-filter"), box.checked);
  });
  document.getElementById("expand").addEventListener("click", function (event) {
    event.preventDefault();
    var files = document.querySelectorAll("details.file");
    var open = Array.prototype.some.call(files, function (d) { return !d.open; });
    files.forEach(function (d) { d.open = open; });
  });
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return i.complete && i.naturalWidth === 0; });
  document.body.setAttribute("data-images", images.length + " " + broken.length);
  document.body.setAttribute("data-ready", "1");
})();
"""


@dataclass(frozen=True)
class ReportPage:
    """What the page says besides the check report."""

    title: str
    version: str
    settings: str | None = None
    quiet_lufs: float = QUIET_LUFS


def render_html(
    report: CheckReport,
    timelines: dict[int, AudioTimeline],
    page: ReportPage,
    now: datetime | None = None,
) -> str:
    """The page, as text. ``timelines`` maps an index into ``report.files`` to its sound."""
    when = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    refs = [r for r in report.files if r.role == "ref"]
    ref = refs[0] if report.job is not None and refs else None
    rejected = sum(1 for r in report.files if not r.ok)
    summary = (
        f'<div class="summary"><div class="count"><b>{len(report.files)}</b>files</div>'
        f'<div class="count"><b>{rejected}</b>would be rejected</div>'
        f'<div class="count"><b>{report.errors}</b>errors</div>'
        f'<div class="count"><b>{report.warnings}</b>warnings</div></div>'
    )
    filters = (
        '<div class="filters"><label><input type="checkbox" data-filter="only-trouble"> only files with '
        'findings</label><label><input type="checkbox" data-filter="hide-warning"> hide warnings</label>'
        '<label><input type="checkbox" data-filter="hide-info" checked> hide info</label>'
        '<a href="#" id="expand">open or close all</a></div>'
    )
    job = ""
    if report.job is not None:
        # The service takes or refuses the job whole: an error in any of its files refuses it.
        members = [r for r in report.files if r.path in report.job.files]
        status, verdict = _status([*report.job.findings, *(f for r in members for f in r.findings)])
        refused_by = [r for r in members if not r.ok]
        because = (
            f'<p class="because">because of {", ".join(_e(f"{r.path} ({r.role})") for r in refused_by)}</p>'
            if refused_by
            else ""
        )
        job = (
            f'<h2>The job as a whole: {verdict}</h2><div class="file {status}">{because}'
            f"{_findings_table(report.job.findings)}</div>"
        )
    # A job or a handful of files: everything open. A folder: only the files with findings.
    few = report.job is not None or len(report.files) <= OPEN_ALL_UP_TO
    sections = "".join(
        _file_section(number, file_report, timelines.get(number), ref, page.quiet_lufs, few)
        for number, file_report in enumerate(report.files)
    )
    settings = f" · settings: {_e(page.settings)}" if page.settings else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Self-contained, and provably so: the page may load nothing from anywhere.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>{_e(page.title)}</title><style>{_STYLE}</style></head><body>"
        f'<header><h1>{_e(page.title)}</h1><div class="meta">preflight {_e(page.version)} · {when}'
        f"{settings}</div></header><main>"
        '<p id="script-error" class="note" hidden></p>'
        f"{summary}{filters}{job}<h2>Files</h2>{sections}</main>"
        "<footer>Error codes are the VideoRetalk service's own (InvalidFile.*); the others are "
        "advice on what makes lip-sync look bad. `preflight codes` lists them all.</footer>"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )


def build_report(
    report: CheckReport,
    page: ReportPage,
    on_file: Callable[[int, int, str], None] | None = None,
) -> str:
    """Measure the sound of every file that has some, and render the page."""
    timelines: dict[int, AudioTimeline] = {}
    total = len(report.files)
    for number, file_report in enumerate(report.files):
        if on_file is not None:
            on_file(number + 1, total, file_report.path)
        media = file_report.media
        if isinstance(media, MediaInfo) and media.opened and media.audio:
            try:
                timeline = audio_timeline(file_report.path, file_report.speech)
            except Exception as exc:  # a file the check read but the drawing cannot: say so
                timeline = AudioTimeline(0.0, (), (), (), None, (), error=f"{type(exc).__name__}: {exc}")
            if timeline is not None:
                timelines[number] = timeline
    return render_html(report, timelines, page)


def write_report(text: str, path: str | os.PathLike[str]) -> None:
    """Write the page atomically: never half-written under its name."""
    with atomic_output(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
