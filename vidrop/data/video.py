"""Reading and writing video files with PyAV: the only place that touches container formats."""

import logging
import os
from dataclasses import dataclass

import av
import numpy as np

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")


class VideoDecodeError(ValueError):
    """A file that is not a decodable video; the message says why (empty, not a video, truncated, ...)."""


@dataclass
class DecodedVideo:
    """Frames `(T, H, W, 3)` uint8 of a video and what was read about it."""

    frames: np.ndarray
    fps: float
    source_bytes: int


def _output_size(height, width, short_side):
    """`(h, w)` with the short side resized to `short_side`, both even (what video codecs want)."""
    if short_side is None:
        return height, width
    scale = short_side / min(height, width)
    return max(2, round(height * scale / 2) * 2), max(2, round(width * scale / 2) * 2)


def read_video(path, short_side=None, fps=None, max_frames=None):
    """Decode a video file to RGB frames.

    Args:
        path: the file.
        short_side: resize so that the shorter side has this many pixels (aspect kept, sizes even); None keeps.
        fps: resample to this frame rate by dropping or repeating frames by timestamp; None keeps the source's.
        max_frames: stop after this many output frames.

    Returns:
        `DecodedVideo`.

    Raises:
        VideoDecodeError: empty file, not a video, no video stream, truncated or undecodable data.
    """
    source_bytes = os.path.getsize(path)
    if source_bytes == 0:
        raise VideoDecodeError("empty file (0 bytes)")
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError("no video stream")
            stream = container.streams.video[0]
            source_fps = float(stream.average_rate) if stream.average_rate else 25.0
            out_fps = fps or source_fps
            height, width = _output_size(stream.codec_context.height, stream.codec_context.width, short_side)
            decoded = 0
            for index, frame in enumerate(container.decode(stream)):
                decoded += 1
                seconds = frame.time if frame.time is not None else index / source_fps
                # output frames whose timestamps fall before this source frame's end come from it
                wanted = int(np.floor((seconds + 1.0 / source_fps) * out_fps + 1e-6)) - len(frames)
                if wanted > 0:
                    rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
                    frames.extend([rgb] * wanted)
                if max_frames is not None and len(frames) >= max_frames:
                    break
            else:  # read to the end: a container that promised more frames was cut short
                if stream.frames and decoded < stream.frames:
                    raise VideoDecodeError(f"truncated: {decoded} of {stream.frames} frames decodable")
    except VideoDecodeError:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, OSError) as error:
        where = f"after {len(frames)} frames" if frames else "at open"
        raise VideoDecodeError(f"not a decodable video ({where}): {error}") from error
    if not frames:
        raise VideoDecodeError("no decodable frames")
    frames = frames[:max_frames] if max_frames is not None else frames
    return DecodedVideo(frames=np.stack(frames), fps=out_fps, source_bytes=source_bytes)


def write_video(path, frames, fps, codec="libx264", crf=18):
    """Encode `(T, H, W, 3)` uint8 RGB frames (H, W even) to a video file (yuv420p).

    With libx264 the same frames give the same file: x264's macroblock-tree rate control is off, since with it
    the encoder chose differently from one call to the next (up to 28 levels apart on 82% of a decoded synthetic
    video's pixels), which made every build of the embedded dataset a different dataset."""
    height, width = frames.shape[1:3]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=int(round(fps)))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "veryfast", "x264-params": "mbtree=0"}
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
