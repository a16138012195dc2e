#!/usr/bin/env python3
"""Mutation testing of the modules that decide verdicts and money, one module at a time.

Run by hand, never in CI (minutes per module, all of one core):

    .venv/bin/pip install -e '.[dev,mutation]'
    .venv/bin/python tests/mutation/run.py              # every module below, in order
    .venv/bin/python tests/mutation/run.py pair cache   # only these
    .venv/bin/python tests/mutation/run.py --list       # the modules and their tests

Each module gets a scratch folder of its own, ``.mutation/<name>/`` (ignored by git): links
to the package and the fixtures, a copy of the tests, and a ``pyproject.toml`` that tells mutmut to
mutate that one file and to run only that module's own test files. mutmut copies them into
``.mutation/<name>/mutants/``, runs the tests once to learn which test reaches which
function, then runs, for each mutant, only the tests that reach the mutated function, with
one worker (``--max-children 1``: the machine is shared; ``--workers N`` for more). The
survivors stay there to read:
``cd .mutation/<name> && ../../.venv/bin/mutmut show <mutant>``.

The media the tests make (``made``) are written once into ``.mutation/media/`` and kept
for every later mutant and run.

The score printed is detected / all: killed and timed-out mutants over every mutant made,
a mutant no test reaches counted as a survivor.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
KEPT_MEDIA = ROOT / ".mutation" / "media"


@dataclass(frozen=True)
class Target:
    """One module to mutate: its file, its own fast test files, and, when only some of
    its functions decide (the fixers' planners), the functions to mutate."""

    name: str
    path: str
    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()
    #: Tests left out: they run the package in a subprocess, where mutmut's trampolines
    #: cannot run (and the mutant is not active anyway).
    deselect: tuple[str, ...] = ()
    #: mutmut 3 mutates no decorated function but a static or class method: a method's
    #: decorators (``@_guarded``, ``@property``...) are applied after its class instead, in
    #: the scratch copy of the module (the same objects once it is loaded), so that its
    #: body is mutated too.
    lift_decorators: bool = False
    #: The tests' temporary files in memory (``/dev/shm``, when there is one): for tests
    #: whose time goes in ``fsync`` (the journal syncs every write), five times faster.
    tmp_in_memory: bool = False


# In the order to run them; the journal and the job runner last (they change most often).
TARGETS = (
    Target("pair", "preflight/_rules/pair.py", ("tests/preflight/test_pair_rules.py",)),
    Target(
        "audio_rules",
        "preflight/_rules/voice.py",
        ("tests/preflight/test_audio_content.py", "tests/preflight/test_voice_findings_words.py"),
    ),
    Target(
        "rules",
        "preflight/_rules/container.py",
        # The findings from probes given as facts: the real-file rule tests (CI runs them)
        # write and read media, seconds a mutant here.
        (
            "tests/preflight/test_container_findings_words.py",
            "tests/preflight/test_audio_image_findings_words.py",
        ),
    ),
    Target(
        "video_rules",
        "preflight/_rules/video.py",
        (
            "tests/preflight/test_container_findings_words.py",
            "tests/preflight/test_audio_image_findings_words.py",
        ),
    ),
    Target(
        "durations",
        "preflight/_rules/duration.py",
        (
            "tests/preflight/test_container_findings_words.py",
            "tests/preflight/test_audio_image_findings_words.py",
        ),
    ),
    Target(
        "image_rules",
        "preflight/_rules/image.py",
        ("tests/preflight/test_audio_image_findings_words.py",),
    ),
    Target(
        "rule_words",
        "preflight/_rules/words.py",
        (
            "tests/preflight/test_rule_words.py",
            "tests/preflight/test_container_findings_words.py",
            "tests/preflight/test_face_findings_words.py",
        ),
    ),
    Target(
        "face_rules",
        "preflight/_rules/faces.py",
        # The findings from scans given as facts: the real-media face tests (CI runs them)
        # take 10 s of mediapipe per mutant here.
        ("tests/preflight/test_face_findings_words.py",),
    ),
    Target(
        "cache",
        "preflight/_check/cache.py",
        (
            "tests/preflight/test_cache.py",
            "tests/preflight/test_cache_trust.py",
            "tests/preflight/test_cache_folder.py",
        ),
        deselect=(
            "tests/preflight/test_cache_trust.py::test_a_changed_rule_checks_the_files_again_under_the_same_version",
        ),
    ),
    Target(
        "fix_image",
        "preflight/_fix/image.py",
        # The plans from checks given as facts: the real fixes (CI runs them) encode images
        # and run mediapipe, 20 s a mutant here.
        ("tests/preflight/test_image_plan_words.py", "tests/preflight/test_image_plan_geometry.py"),
        (
            "plan_image",
            "_crop",
            "_format_steps",
            "_output_format",
            "fit_within",
            "aspect_crop",
            "face_crop",
            "_window",
        ),
    ),
    Target(
        "fix_audio",
        "preflight/_fix/audio/plan.py",
        # The plans from checks given as facts: the real fixes (CI runs them) encode the
        # voice, tens of seconds a mutant here.
        ("tests/preflight/test_audio_plan_words.py",),
        (
            "plan_audio",
            "_hot_voice_step",
            "_target_length",
            "_plan_without_encoding",
            "_container_steps",
            "_channel_plan",
        ),
    ),
    Target(
        "fix_video",
        "preflight/_fix/video/plan.py",
        # The plans from checks given as facts: the real fixes (CI runs them) encode media,
        # tens of seconds a mutant here.
        ("tests/preflight/test_video_plan_words.py",),
        (
            "plan_video",
            "_readable",
            "_codec_steps",
            "_geometry_steps",
            "_rate_steps",
            "_pixel_format_steps",
            "_span",
            "_rotation_steps",
            "_even_sides_steps",
            "_audio_steps",
            "_size_steps",
            "_encode_plan",
            "_copied_plan",
            "_remux_plan",
            "target_fps",
            "_clamped_fps",
        ),
    ),
    Target(
        "fix_video_geometry",
        "preflight/_fix/video/geometry.py",
        # The sizes, crops and close-ups the video planner picks from, by the same tests.
        ("tests/preflight/test_video_plan_words.py",),
        ("fitted_size", "crop_or_pad", "reframe_crop", "reframe_share"),
    ),
    Target(
        "journal",
        "retalk/_journal/store.py",
        # Every journal method is @_guarded: lifted, or only a third of the module is mutated.
        # The journal driven directly on a file: test_journal.py and test_split_journal.py
        # (an emulator, media, the CLI in subprocesses; CI runs them) take about 25 s a
        # mutant, two hours or more for the module.
        ("tests/retalk/test_journal_records.py",),
        lift_decorators=True,
        tmp_in_memory=True,
    ),
    # The rest of the journal (it was one module with the store): its rows and its file.
    Target(
        "journal_rows",
        "retalk/_journal/records.py",
        ("tests/retalk/test_journal_records.py",),
        lift_decorators=True,  # DamagedRow.line and Split.job_ids are properties
        tmp_in_memory=True,
    ),
    Target(
        "journal_file",
        "retalk/_journal/schema.py",
        ("tests/retalk/test_journal_records.py",),
        tmp_in_memory=True,
    ),
    Target(
        "jobs",
        "retalk/_run/job.py",
        # In-process against the emulator (the slow files, subprocesses and minutes, run in CI).
        ("tests/retalk/test_job_runner.py",),
        tmp_in_memory=True,
    ),
)

# mutmut's result words; a timeout is a detected mutant (the mutant made the tests hang).
# A "segfault" (the runner killed, -9: memory pressure on a shared machine) or a
# "suspicious" end is tested again alone, and counted only by what that run says.
DETECTED = {"killed", "timeout", "caught by type check"}
AGAIN = {"segfault", "suspicious"}


def mutmut() -> list[str]:
    # The console script beside this Python (mutmut warns against ``python -m mutmut``).
    return [str(Path(sys.executable).parent / "mutmut")]


def prepare(target: Target) -> Path:
    """A fresh scratch folder whose pyproject.toml points mutmut at this one module."""
    folder = ROOT / ".mutation" / target.name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    package = target.path.split("/")[0]
    caches = shutil.ignore_patterns(".cache", "__pycache__")
    if target.lift_decorators:
        shutil.copytree(ROOT / package, folder / package, ignore=caches)
        lift_decorators(folder / target.path)
    else:
        (folder / package).symlink_to(ROOT / package)
    (folder / "fixtures").symlink_to(ROOT / "fixtures")
    # The tests copied, not linked: mutmut copies them again, and a corpus run leaves link
    # loops in its cache (kept as links here, never followed; caches left out).
    shutil.copytree(ROOT / "tests", folder / "tests", symlinks=True, ignore=caches)
    # The tests find the real media as ../shared/media from the copied repository root.
    shared = ROOT.parent / "shared"
    if shared.exists():
        (folder / "shared").symlink_to(shared)
    quoted = ", ".join(f'"{test}"' for test in target.tests if (ROOT / test).exists())
    left_out = "".join(f', "--deselect", "{test}"' for test in target.deselect)
    # Workers forked from a fork server, not from mutmut's own process: that one ran every
    # test once, mediapipe's threads included, and a worker forked from it aborts (SIGABRT,
    # counted "suspicious", not detected) the moment a test loads the face engine again.
    (folder / "pyproject.toml").write_text(
        "[tool.mutmut]\n"
        f'source_paths = ["{package}"]\n'
        f'only_mutate = ["{target.path}"]\n'
        f"pytest_add_cli_args_test_selection = [{quoted}]\n"
        f'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"{left_out}]\n'
        'also_copy = ["fixtures"]\n'
        # Each mutant's process forked from one that has only collected the tests: one
        # forked after the tests ran has a live mediapipe graph, which aborts in the child.
        'process_isolation = "forkserver"\n',
        encoding="utf-8",
    )
    return folder


def lift_decorators(module: Path) -> None:
    """Rewrite ``module`` so that each method's one-name decorators (not ``staticmethod``
    or ``classmethod``, which mutmut handles) are applied after its class: ``Class.name =
    decorator(Class.name)``, innermost first, as Python applies them."""
    kept: list[str] = []
    lifted: list[str] = []
    owner: str | None = None  # the top-level class being read, None in a function
    pending: list[str] = []
    for line in module.read_text(encoding="utf-8").splitlines():
        top = re.match(r"(class|def|async def) (\w+)", line)
        if top:
            owner = top.group(2) if top.group(1) == "class" else None
        decorator = re.fullmatch(r"    @(\w+)\s*", line)
        if owner and decorator and decorator.group(1) not in ("staticmethod", "classmethod"):
            pending.append(decorator.group(1))
            continue
        if pending:
            method = re.match(r"    (?:async )?def (\w+)", line)
            if method is None:
                raise SystemExit(f"{module}: a decorator over something else than a method: {line!r}")
            name = f"{owner}.{method.group(1)}"
            lifted.extend(f"{name} = {wrapper}({name})" for wrapper in reversed(pending))
            pending = []
        kept.append(line)
    if lifted:
        kept += ["", "", "# Decorators lifted out of the classes for mutmut (tests/mutation/run.py)."]
        kept += lifted
    module.write_text("\n".join(kept) + "\n", encoding="utf-8")


def mutant_globs(target: Target) -> list[str]:
    module = target.path.removesuffix(".py").replace("/", ".")
    return [f"{module}.x_{function}__mutmut_*" for function in target.functions]


def run(target: Target, workers: int = 1) -> dict[str, int]:
    folder = prepare(target)
    # The test media written once for every mutant and module (``made`` keeps them there).
    environment = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PREFLIGHT_TEST_KEPT_MEDIA=str(KEPT_MEDIA))
    memory = Path("/dev/shm")
    scratch = memory / f"retalk-mutation-{target.name}-{os.getpid()}"
    if target.tmp_in_memory and memory.is_dir():
        scratch.mkdir()
        environment["TMPDIR"] = str(scratch)
    try:
        subprocess.run(
            [*mutmut(), "run", "--max-children", str(workers), *mutant_globs(target)],
            cwd=folder,
            env=environment,
            check=False,
        )
        again = [name for name, status in results(folder, environment, target) if status in AGAIN]
        if again:
            alone = [*mutmut(), "run", "--max-children", "1", *again]
            subprocess.run(alone, cwd=folder, env=environment, check=False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    counts: dict[str, int] = {}
    for _, status in results(folder, environment, target):
        counts[status] = counts.get(status, 0) + 1
    return counts


def results(folder: Path, environment: dict[str, str], target: Target) -> list[tuple[str, str]]:
    """Each mutant of ``target`` and mutmut's word for how its test run ended."""
    listed = subprocess.run(
        [*mutmut(), "results", "--all", "true"], cwd=folder, env=environment, capture_output=True, text=True
    )
    globs = mutant_globs(target)
    found = []
    for line in listed.stdout.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name and (not globs or any(fnmatch.fnmatch(name, glob) for glob in globs)):
            found.append((name, status))
    return found


def score_line(target: Target, counts: dict[str, int]) -> str:
    total = sum(n for status, n in counts.items() if status not in ("skipped", "not checked"))
    detected = sum(n for status, n in counts.items() if status in DETECTED)
    score = f"{100 * detected / total:5.1f}%" if total else "  n/a "
    rest = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()) if status not in DETECTED)
    return f"{target.path:28} {score}  {detected}/{total} detected" + (f"  ({rest})" if rest else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="modules to mutate (default: all); see --list")
    parser.add_argument("--list", action="store_true", help="list the modules and their test files")
    parser.add_argument(
        "--workers", type=int, default=1, metavar="N", help="mutants tested at once (default 1)"
    )
    options = parser.parse_args(argv)
    by_name = {target.name: target for target in TARGETS}
    if options.list:
        for target in TARGETS:
            only = f" [{', '.join(target.functions)}]" if target.functions else ""
            print(f"{target.name:12} {target.path}{only}\n{'':12} {' '.join(target.tests)}")
        return 0
    unknown = [name for name in options.names if name not in by_name]
    if unknown:
        print(f"unknown module(s): {', '.join(unknown)}; known: {', '.join(by_name)}", file=sys.stderr)
        return 2
    try:
        import mutmut as _  # noqa: F401
    except ImportError:
        print("mutmut is not installed: pip install -e '.[mutation]'", file=sys.stderr)
        return 2
    chosen = [by_name[name] for name in options.names] or list(TARGETS)
    lines = []
    for target in chosen:
        lines.append(score_line(target, run(target, max(1, options.workers))))
        print(lines[-1], flush=True)
    print("\nmutation score per module (detected / all mutants):")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
