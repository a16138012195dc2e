"""What kind of media a file is, from its extension or its first bytes.

The extension decides the role when it names a media type; otherwise (no extension,
``.bin``, ``.dat``...) the first bytes do. Sniffing reads at most ``SNIFF_BYTES``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._models import Role

#: Enough for three MPEG-TS packets (188 bytes each, 192 in M2TS/AVCHD).
SNIFF_BYTES = 600

# Media extensions we recognise, wider than what the service accepts: a ``.mkv`` is still
# a video (one the fixer can remux), not an unknown file.
VIDEO_EXTS = frozenset(
    {
        ".mp4",
        ".mov",
        ".avi",
        ".mkv",
        ".webm",
        ".m4v",
        ".flv",
        ".wmv",
        ".mpg",
        ".mpeg",
        ".ts",
        ".mts",
        ".m2ts",
        ".3gp",
        ".3g2",
        ".ogv",
        ".mxf",
        ".vob",
    }
)
AUDIO_EXTS = frozenset(
    {
        ".wav",
        ".mp3",
        ".aac",
        ".m4a",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".wma",
        ".aif",
        ".aiff",
        ".amr",
        ".ac3",
        ".caf",
        ".mka",
        ".wave",
    }
)
IMAGE_EXTS = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".png",
        ".bmp",
        ".webp",
        ".gif",
        ".tif",
        ".tiff",
        ".heic",
        ".heif",
        ".avif",
        ".jfif",
        ".ico",
    }
)


#: Extensions other files use too (TypeScript): video only when the content says so.
AMBIGUOUS_EXTS = frozenset({".ts", ".mts"})

#: The picture format (as Pillow names it) each image extension promises: the rules flag a
#: mismatch and the fixer keeps the extension only when it matches.
IMAGE_EXT_FORMAT = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP"}


def role_from_extension(path: str | os.PathLike[str]) -> Role | None:
    suffix = Path(path).suffix.lower()
    if suffix in AMBIGUOUS_EXTS:
        return None
    if suffix in VIDEO_EXTS:
        return "video"
    if suffix in AUDIO_EXTS:
        return "audio"
    if suffix in IMAGE_EXTS:
        return "ref"
    return None


def sniff_role(head: bytes) -> Role | None:
    """Guess the role from a file's first bytes; None when they look like no media."""
    if len(head) < 4:
        return None
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")):
        return "ref"
    if head.startswith(b"BM") and len(head) >= 18:
        # "BM" alone starts plenty of text files; a real BMP has zeroed reserved bytes and
        # one of the known DIB header sizes.
        reserved = head[6:10]
        dib_size = int.from_bytes(head[14:18], "little")
        if reserved == b"\0\0\0\0" and dib_size in (12, 40, 52, 56, 64, 108, 124):
            return "ref"
        return None
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "ref"
    if head[:4] == b"RIFF" and len(head) >= 12:
        kind = head[8:12]
        if kind == b"WEBP":
            return "ref"
        if kind == b"WAVE":
            return "audio"
        if kind.startswith(b"AVI"):
            return "video"
        return None
    if head[4:8] == b"ftyp" and len(head) >= 12:
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
            return "ref"
        if brand in (b"M4A ", b"M4B ", b"M4P "):
            return "audio"
        return "video"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free"):
        return "video"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # Matroska / WebM
        return "video"
    if head.startswith((b"ID3", b"fLaC", b"OggS", b"FORM", b"#!AMR", b"caff")):
        return "audio"
    if _is_transport_stream(head):
        return "video"
    if head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # MPEG audio / ADTS frame sync
        return "audio"
    return None


def _is_transport_stream(head: bytes) -> bool:
    """MPEG-TS: a sync byte (0x47) every 188 bytes, or every 192 after a 4-byte time code
    (M2TS, AVCHD's .mts). Three in a row, so that text starting with "G" is not one."""
    for offset, size in ((0, 188), (4, 192)):
        if len(head) >= offset + 2 * size + 1 and all(head[offset + k * size] == 0x47 for k in range(3)):
            return True
    return False


def sniff_file(path: str | os.PathLike[str]) -> Role | None:
    try:
        with open(path, "rb") as handle:
            return sniff_role(handle.read(SNIFF_BYTES))
    except OSError:
        return None


def guess_role(path: str | os.PathLike[str]) -> Role | None:
    """The role a file plays: from its extension, or its content when that says nothing."""
    return role_from_extension(path) or sniff_file(path)
