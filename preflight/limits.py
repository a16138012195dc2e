"""Every documented limit of the VideoRetalk service, named, in one place.

Source: the service's API page ("Input limitations" and "Error codes"), China (Beijing)
region. Rules, the fixer and the client read these names; no other module writes a limit
as a literal.

Edge decisions (deliberate, tested):

- A value exactly at a limit passes: the page says "640-2,048 pixels", "15-60 fps",
  "2-120 seconds", "Max 300 MB", "2 or less", "4,096 pixels or less".
- "MB" is read as MiB (2**20 bytes), the unit of the platform's upload policy
  (``max_file_size_mb``). A file of exactly 300 MiB passes; one byte more fails.
- Frame rates are compared with ``FPS_TOLERANCE`` because containers store rates as
  rounded fractions (a 15 fps clip can read 14.999); durations are compared after rounding
  to whole milliseconds for the same reason.
"""

from __future__ import annotations

from typing import Final

MIB: Final = 1024 * 1024

# --- Video ---------------------------------------------------------------------------
VIDEO_EXTENSIONS: Final = frozenset({".mp4", ".avi", ".mov"})
#: FFmpeg demuxer names of the accepted video containers (MP4 and MOV share one demuxer).
VIDEO_CONTAINERS: Final = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "avi"})
#: FFmpeg codec names of the accepted video codecs: H.264 and H.265.
VIDEO_CODECS: Final = frozenset({"h264", "hevc"})
VIDEO_MAX_BYTES: Final = 300 * MIB
VIDEO_MIN_SIDE: Final = 640
VIDEO_MAX_SIDE: Final = 2048
VIDEO_MIN_FPS: Final = 15.0
VIDEO_MAX_FPS: Final = 60.0
FPS_TOLERANCE: Final = 0.01

# --- Audio ---------------------------------------------------------------------------
AUDIO_EXTENSIONS: Final = frozenset({".wav", ".mp3", ".aac"})
#: FFmpeg demuxer name -> the codecs the service can read inside it.
AUDIO_CONTAINER_CODECS: Final = {
    "wav": frozenset({"pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_u8", "pcm_f32le"}),
    "mp3": frozenset({"mp3"}),
    "aac": frozenset({"aac"}),  # raw ADTS stream, the usual ".aac" file
}
AUDIO_MAX_BYTES: Final = 30 * MIB

# --- Shared by video and audio -------------------------------------------------------
MIN_DURATION_S: Final = 2.0
MAX_DURATION_S: Final = 120.0

# --- Reference image -----------------------------------------------------------------
IMAGE_EXTENSIONS: Final = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
#: Pillow format names of the accepted image formats.
IMAGE_FORMATS: Final = frozenset({"JPEG", "PNG", "BMP", "WEBP"})
IMAGE_MAX_BYTES: Final = 10 * MIB
IMAGE_MAX_SIDE: Final = 4096
IMAGE_MAX_ASPECT: Final = 2.0

# --- Request parameters --------------------------------------------------------------
QUERY_FACE_THRESHOLD_MIN: Final = 120
QUERY_FACE_THRESHOLD_MAX: Final = 200
QUERY_FACE_THRESHOLD_DEFAULT: Final = 170
VIDEO_EXTENSION_DEFAULT: Final = False

# --- Service behaviour worth knowing up front ----------------------------------------
#: Billing: CNY per second of output video.
PRICE_CNY_PER_SECOND: Final = 0.08
#: The service gives up downloading an input after this many seconds.
INPUT_DOWNLOAD_TIMEOUT_S: Final = 60
#: Generated video URLs stay valid this long after the task ends.
RESULT_URL_TTL_S: Final = 24 * 3600
#: Files in the temporary storage live this long.
UPLOAD_TTL_S: Final = 48 * 3600
