"""Fast media probing: container and stream facts without decoding.

Video and audio files are read with PyAV (FFmpeg's demuxers, in process); images with
Pillow (header only). A file that cannot be read gives a result whose ``error`` says why,
never an exception: the rules turn that into ``InvalidFile.Openerror``.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import statistics
import warnings
from collections.abc import Callable
from fractions import Fraction
from typing import Any, TypeVar

import av
from PIL import Image, UnidentifiedImageError

from .._local_file import local_file
from .._models import AudioStreamInfo, ImageInfo, MediaInfo, VideoStreamInfo
from .exif import read_orientation, shown_size
from .isobmff import MoovFacts, has_moov, moov_facts
from .sniff import guess_role

MOV_FAMILY = "mov,mp4,m4a,3gp,3g2,mj2"
_ESTIMATED_DURATION_FORMATS = frozenset({"aac", "mp3"})
# Containers whose timestamps cannot vary between frames (AVI stores a frame count).
_CONSTANT_RATE_CONTAINERS = frozenset({"avi"})
# At most this many packets are demuxed to judge the frame rate of non-MP4 containers.
_VFR_PACKET_SAMPLE = 600
# A frame interval further than this from the median interval is "irregular"...
_VFR_INTERVAL_TOLERANCE = 0.10
# ...and a stream with more than this share of irregular intervals is variable-rate.
_VFR_IRREGULAR_SHARE = 0.01

TOO_MANY_PIXELS = "too many pixels to decode safely"
#: Frames wider or taller than this are never decoded (probe, face scan, fixer). No codec
#: level records them (H.264 and H.265 stop at 8192x4320), and a few KB of H.264 whose
#: header claims 15360x15360 cost 350 MB a decoded frame and a minute of concealment.
MAX_DECODE_SIDE = 8192
#: ...nor pictures of more pixels than the largest such frame (67 million): the bound FFmpeg
#: is given while probing, and the image fixer's (a 328 KB 16-bit PNG of 13000x13000 took
#: 4.7 GB to decode and convert). A 9000x3000 banner is decoded; a 13000x13000 one is not.
MAX_DECODE_PIXELS = MAX_DECODE_SIDE * MAX_DECODE_SIDE
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}
_PCM_DEPTH = re.compile(r"^pcm_[suf](\d+)")
_Probed = TypeVar("_Probed", MediaInfo, ImageInfo)


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _as_float(rate: Fraction | None) -> float | None:
    if rate is None or rate.denominator == 0 or rate <= 0:
        return None
    return float(rate)


def _describe_open_error(exc: BaseException) -> str:
    if isinstance(exc, av.FFmpegError):
        # FFmpeg's own words, without the errno and the path it repeats.
        text = exc.strerror or str(exc)
        return f"FFmpeg recognises no audio or video in it ({text})"
    return f"it cannot be read as audio or video ({exc})"


def _irregular_share(timestamps: list[int]) -> float | None:
    """Share of frame intervals that stray from the median interval."""
    ordered = sorted(set(timestamps))
    if len(ordered) < 3:
        return None
    # The first and last intervals are often odd (edit lists, a short last frame).
    intervals = [b - a for a, b in itertools.pairwise(ordered)][1:-1]
    if len(intervals) < 2:
        return None
    median = statistics.median(intervals)
    if median <= 0:
        return None
    tolerance = median * _VFR_INTERVAL_TOLERANCE
    irregular = sum(1 for i in intervals if abs(i - median) > tolerance)
    return irregular / len(intervals) if irregular >= 2 else 0.0


def _video_timestamps(container: Any, stream: Any, from_index: bool) -> tuple[list[int], int | None]:
    """Frame timestamps (from the index, or the first packets), and where the last packet
    ends when every packet was read (else None)."""
    if from_index:
        return [entry.timestamp for entry in stream.index_entries], None
    timestamps: list[int] = []
    end: int | None = None
    container.seek(0)
    for packet in container.demux(stream):
        if packet.pts is None:
            continue
        timestamps.append(packet.pts)
        end = max(end if end is not None else packet.pts, packet.pts + (packet.duration or 0))
        if len(timestamps) >= _VFR_PACKET_SAMPLE:
            return timestamps, None
    return timestamps, end


def _index_end(stream: Any) -> int:
    """Byte offset just past the last sample the container's index points to."""
    end = 0
    for entry in stream.index_entries:
        end = max(end, entry.pos + entry.size)
    return end


def _first_frame_rotation(container: Any, stream: Any) -> int:
    container.seek(0)
    for frame in container.decode(stream):
        degrees: float = frame.rotation
        return round(degrees / 90.0) * 90 % 360
    return 0


def too_large_to_decode(width: int, height: int) -> bool:
    """True for frames preflight never decodes (see ``MAX_DECODE_SIDE``)."""
    return max(width, height) > MAX_DECODE_SIDE


def too_many_pixels(width: int, height: int) -> bool:
    """True for pictures preflight never decodes (see ``MAX_DECODE_PIXELS``)."""
    return width * height > MAX_DECODE_PIXELS


def _codec_name(ctx: Any) -> str | None:
    # The codec's own name ("mp3"), not the decoder's ("mp3float"); None when FFmpeg knows
    # no codec for the stream (a WAV format tag or AVI fourcc it has never heard of).
    if ctx is None:
        return None
    try:
        return str(ctx.codec.canonical_name)
    except (AttributeError, av.FFmpegError):
        return ctx.name  # type: ignore[no-any-return]


def _video_stream(container: Any, stream: Any, rotations: dict[int, int], is_mov: bool) -> VideoStreamInfo:
    ctx = stream.codec_context
    coded_w, coded_h = (int(ctx.width or 0), int(ctx.height or 0)) if ctx is not None else (0, 0)
    if is_mov:
        rotation = rotations.get(stream.id, 0)
    elif container.format.name in _CONSTANT_RATE_CONTAINERS or ctx is None:
        rotation = 0
    elif too_large_to_decode(coded_w, coded_h):
        rotation = 0  # never decoded: the size alone is refused
    else:
        # Only Matroska-like containers carry rotation outside a tkhd; one frame tells.
        try:
            rotation = _first_frame_rotation(container, stream)
        except (av.FFmpegError, StopIteration, ValueError):
            rotation = 0
    width, height = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)

    avg_fps = _as_float(stream.average_rate) or _as_float(stream.guessed_rate)
    duration = _seconds(stream.duration, stream.time_base)
    vfr: bool | None
    if container.format.name in _CONSTANT_RATE_CONTAINERS:
        vfr = False
    else:
        try:
            timestamps, packets_end = _video_timestamps(container, stream, is_mov)
            share = _irregular_share(timestamps)
        except (av.FFmpegError, ValueError):
            share, packets_end = None, None
        vfr = None if share is None else share > _VFR_IRREGULAR_SHARE
        duration = _packets_length(container, stream, duration, packets_end, avg_fps)

    pixel_format = ctx.format.name if ctx is not None and ctx.format is not None else None
    return VideoStreamInfo(
        index=stream.index,
        codec=_codec_name(ctx),
        profile=stream.profile,
        pixel_format=pixel_format,
        coded_width=coded_w,
        coded_height=coded_h,
        width=width,
        height=height,
        rotation=rotation,
        avg_fps=avg_fps,
        nominal_fps=_as_float(stream.base_rate),
        variable_frame_rate=vfr,
        frame_count=stream.frames or None,
        duration=duration,
        start_time=_seconds(stream.start_time, stream.time_base),
        bit_rate=(ctx.bit_rate or None) if ctx is not None else None,
    )


def _packets_length(
    container: Any, stream: Any, duration: float | None, packets_end: int | None, fps: float | None
) -> float | None:
    """The stream's length when its container states none for it (Matroska): the
    container's, unless the packets, all read, end well before it. A copy cut short keeps
    the header of the whole file: 4 s claimed, 1.9 s there."""
    if duration is not None or packets_end is None or container.duration is None:
        return duration
    claimed = container.duration / av.time_base
    measured = float(packets_end * stream.time_base) - (_seconds(stream.start_time, stream.time_base) or 0.0)
    # More than rounding and a last frame's length apart: the packets are the truth.
    slack = max(2.0 / fps if fps else 0.0, 0.1)
    return measured if claimed - measured > slack else None


def _audio_stream(stream: Any) -> AudioStreamInfo:
    ctx = stream.codec_context
    codec = _codec_name(ctx)
    if ctx is None:
        # FFmpeg knows no codec for it: nothing about its samples can be read.
        return AudioStreamInfo(
            index=stream.index,
            codec=None,
            profile=None,
            sample_rate=None,
            channels=None,
            channel_layout=None,
            sample_format=None,
            bit_depth=None,
            duration=_seconds(stream.duration, stream.time_base),
            start_time=_seconds(stream.start_time, stream.time_base),
            bit_rate=None,
        )
    depth_match = _PCM_DEPTH.match(codec or "")
    layout = ctx.layout
    layout_name = layout.name if layout is not None else None
    if layout is not None and layout_name and layout_name.endswith(" channels"):
        # Order unspecified (a plain WAV header): name it as FFmpeg's default layout.
        layout_name = _DEFAULT_LAYOUTS.get(layout.nb_channels, layout_name)
    return AudioStreamInfo(
        index=stream.index,
        codec=codec,
        profile=stream.profile,
        sample_rate=ctx.sample_rate or None,
        channels=(layout.nb_channels if layout is not None else None) or None,
        channel_layout=layout_name,
        sample_format=ctx.format.name if ctx.format is not None else None,
        bit_depth=int(depth_match.group(1)) if depth_match else None,
        duration=_seconds(stream.duration, stream.time_base),
        start_time=_seconds(stream.start_time, stream.time_base),
        bit_rate=ctx.bit_rate or None,
    )


def _failed(path: str, size: int, error: str) -> MediaInfo:
    return MediaInfo(
        path=path,
        size=size,
        container=None,
        duration=None,
        start_time=None,
        bit_rate=None,
        error=error,
    )


def _file_size(name: str) -> tuple[int, str | None]:
    """The file's size, and why it cannot be probed when it is missing or empty."""
    try:
        size = os.stat(name).st_size
    except OSError as exc:
        return 0, f"cannot read the file: {exc.strerror or exc}"
    return size, "the file is empty (0 bytes)" if size == 0 else None


def _probe_file(
    path: str | os.PathLike[str],
    read: Callable[[str, int], _Probed],
    failed: Callable[[str, int, str], _Probed],
) -> _Probed:
    """``read(name, size)`` the file, unless it is missing or empty: then ``failed`` says
    so, in the same words whatever the file was meant as."""
    name = os.fspath(path)
    size, unreadable = _file_size(name)
    if unreadable:
        return failed(name, size, unreadable)
    return read(name, size)


def probe_media(path: str | os.PathLike[str]) -> MediaInfo:
    """Container and stream facts of an audio or video file, without decoding it."""
    return _probe_file(path, _open_media, _failed)


def _open_media(name: str, size: int) -> MediaInfo:
    try:
        container = av.open(local_file(name), metadata_errors="replace", options=_open_options(name))
    except Exception as exc:  # any failure to open is a finding, not a crash
        return _failed(name, size, _missing_index(name, size) or _describe_open_error(exc))
    try:
        return _read_container(name, size, container)
    except Exception as exc:
        return _failed(name, size, f"the file is damaged: {exc}")
    finally:
        container.close()


def _missing_index(name: str, size: int) -> str | None:
    """Why FFmpeg cannot open an MP4/MOV in words a user can act on: its index (the
    ``moov`` box, written last by most recorders) is not there."""
    try:
        with open(name, "rb") as handle:
            if handle.read(8)[4:8] != b"ftyp":
                return None
            handle.seek(0)
            if has_moov(handle, size):
                return None
    except OSError:
        return None
    return (
        "FFmpeg recognises no audio or video in it: it is an MP4/MOV without its index (no moov "
        "box), as when a recording or a copy stops before the index is written"
    )


def _open_options(name: str) -> dict[str, str]:
    # FFmpeg decodes a frame or two while opening, to learn what the header leaves out: not
    # frames beyond the size preflight decodes at all (1.5 s and 1.2 GB for a 3 KB file
    # claiming 15360x15360). The header's facts (size, pixel format) are still read.
    options = {"max_pixels": str(MAX_DECODE_PIXELS)}
    # A WAV header says everything; FFmpeg would otherwise read 5 MB of samples to "probe".
    with open(name, "rb") as handle:
        head = handle.read(12)
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        options["probesize"] = "4096"
    return options


def _unindexed_track(container: Any) -> str | None:
    """Why an MP4/MOV track cannot be read: it lists frames, but FFmpeg rejected its
    sample table (a size or offset bit-flipped past any sense) and indexed none."""
    for stream in container.streams:
        if stream.type not in ("video", "audio") or stream.disposition & av.stream.Disposition.attached_pic:
            continue
        if stream.frames and not stream.index_entries:
            return (
                f"its index is damaged: the {stream.type} track lists {stream.frames} frames "
                "and none of them can be located"
            )
    return None


def _has_packets(container: Any, stream: Any) -> bool:
    container.seek(0)
    return any(packet.size for packet in container.demux(stream))


def _demuxed_duration(container: Any, stream: Any) -> float | None:
    """Sum of the packet durations: exact, and only demuxing (about 40 ms for 120 s)."""
    container.seek(0)
    total = 0
    for packet in container.demux(stream):
        if packet.duration:
            total += packet.duration
    return float(total * stream.time_base) if total and stream.time_base else None


def _packets_span(container: Any, stream: Any) -> float | None:
    """From the first packet's start to the last one's end, only demuxing (Matroska keeps
    whole milliseconds: summed, 21.33 ms packets would lose 1.5 %)."""
    container.seek(0)
    first: int | None = None
    end: int | None = None
    for packet in container.demux(stream):
        if packet.pts is None:
            continue
        first = packet.pts if first is None else min(first, packet.pts)
        end = max(end if end is not None else packet.pts, packet.pts + (packet.duration or 0))
    if first is None or end is None or end <= first or not stream.time_base:
        return None
    return float((end - first) * stream.time_base)


def _read_container(name: str, size: int, container: Any) -> MediaInfo:
    fmt = container.format.name
    is_mov = fmt == MOV_FAMILY
    moov = MoovFacts()
    if is_mov:
        with open(name, "rb") as handle:
            moov = moov_facts(handle, size)
    rotations = moov.rotations

    videos: list[VideoStreamInfo] = []
    audios: list[AudioStreamInfo] = []
    attached = 0
    index_end = 0
    for stream in container.streams:
        if is_mov and not stream.frames and not stream.index_entries:
            continue  # a track that lists no sample at all holds nothing to play
        if stream.type == "video":
            if stream.disposition & av.stream.Disposition.attached_pic:
                attached += 1
                continue
            videos.append(_video_stream(container, stream, rotations, is_mov))
        elif stream.type == "audio":
            audios.append(_audio_stream(stream))
        else:
            continue
        if is_mov:
            index_end = max(index_end, _index_end(stream))

    if is_mov:
        unreadable = _unindexed_track(container)
        if unreadable is not None:
            return _failed(name, size, unreadable)
    duration = container.duration / av.time_base if container.duration is not None else None
    if not videos and audios and duration is None and not _has_packets(container, container.streams.audio[0]):
        # A WAV whose data chunk is empty: no length to state, nothing to decode or pad.
        return _failed(name, size, "its audio stream holds no samples at all")
    if fmt in _ESTIMATED_DURATION_FORMATS and audios:
        # Raw ADTS and MP3 durations are guessed from the bitrate (5-10 % off) or taken from
        # a Xing header that survives truncation; the packets say how long it really is.
        measured = _demuxed_duration(container, container.streams.audio[0])
        if measured is not None:
            audios[0] = dataclasses.replace(audios[0], duration=measured)
            duration = measured
    elif not videos and audios and audios[0].duration is None and fmt.startswith("matroska"):
        # Matroska states no stream lengths, and its own runs from time zero, not from where
        # the sound starts: a 3 s voice stamped 3000 s late read as 3003 s (and was padded to
        # 120 s of room tone). The packets say how long the sound is (demuxed, not decoded).
        measured = _packets_span(container, container.streams.audio[0])
        if measured is not None:
            audios[0] = dataclasses.replace(audios[0], duration=measured)
            duration = measured
    start = container.start_time / av.time_base if container.start_time is not None else None
    return MediaInfo(
        path=name,
        size=size,
        container=fmt,
        duration=duration,
        start_time=start,
        bit_rate=container.bit_rate or None,
        video=tuple(videos),
        audio=tuple(audios),
        attached_pictures=attached,
        missing_bytes=max(0, index_end - size),
        header_duration=moov.header_duration,
    )


def probe_image(path: str | os.PathLike[str]) -> ImageInfo:
    """Format, mode and size (stored and as displayed) of an image, from its header."""
    return _probe_file(path, _open_image, _failed_image)


def _open_image(name: str, size: int) -> ImageInfo:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's bomb and corrupt-EXIF warnings
            with Image.open(name) as image:
                width, height = image.size
                orientation = read_orientation(image)
                fmt, mode = image.format, image.mode
                # An MPO is a camera JPEG with a preview; only real animation counts.
                animated = fmt != "MPO" and bool(getattr(image, "is_animated", False))
                frames = int(getattr(image, "n_frames", 1)) if animated else 1
    except Image.DecompressionBombError as exc:
        return _failed_image(name, size, f"{TOO_MANY_PIXELS} ({exc})")
    except UnidentifiedImageError:
        return _failed_image(name, size, "Pillow recognises no image format in it")
    except Exception as exc:  # a damaged header is a finding, never a crash
        return _failed_image(name, size, f"its header is damaged ({exc or type(exc).__name__})")
    if fmt == "MPO":
        fmt = "JPEG"  # every JPEG decoder reads an MPO's first image
    shown_w, shown_h = shown_size(width, height, orientation)
    return ImageInfo(
        path=name,
        size=size,
        format=fmt,
        mode=mode,
        stored_width=width,
        stored_height=height,
        orientation=orientation,
        width=shown_w,
        height=shown_h,
        frames=frames,
    )


def _failed_image(path: str, size: int, error: str) -> ImageInfo:
    return ImageInfo(
        path=path,
        size=size,
        format=None,
        mode=None,
        stored_width=0,
        stored_height=0,
        orientation=None,
        width=0,
        height=0,
        error=error,
    )


def image_decode_error(path: str | os.PathLike[str]) -> str | None:
    """Decode the pixels (JPEG at 1/8 scale) and say why that fails, or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(os.fspath(path)) as image:
                if image.format in ("JPEG", "MPO"):
                    image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
    except Image.DecompressionBombError:
        return None  # the size rule reports it
    except Exception as exc:
        return str(exc) or type(exc).__name__
    return None


def probe(path: str | os.PathLike[str]) -> MediaInfo | ImageInfo:
    """Probe any file: images through Pillow, everything else through FFmpeg."""
    if guess_role(path) == "ref":
        return probe_image(path)
    return probe_media(path)
