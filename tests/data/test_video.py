import numpy as np
import pytest

from vidrop.data.synthetic import render_motion
from vidrop.data.video import VideoDecodeError, read_video, write_video


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    t = np.arange(24)[:, None, None, None]
    y = np.arange(48)[None, :, None, None]
    x = np.arange(64)[None, None, :, None]
    frames = np.broadcast_to((x * 3 + y * 2 + t * 5) % 256, (24, 48, 64, 3)).astype(np.uint8).copy()
    write_video(path, frames, fps=12)
    return path, frames


def test_round_trip_through_a_real_mp4(mp4):
    path, frames = mp4
    video = read_video(path)
    assert video.frames.shape == frames.shape and video.frames.dtype == np.uint8
    assert video.fps == 12 and video.source_bytes == path.stat().st_size
    assert np.abs(video.frames.astype(int) - frames).mean() < 8  # lossy codec, same picture


def test_resize_fps_and_max_frames(mp4):
    path, _ = mp4
    assert read_video(path, short_side=24).frames.shape == (24, 24, 32, 3)
    assert read_video(path, fps=6).frames.shape[0] == 12
    assert read_video(path, fps=24).frames.shape[0] == 48
    assert read_video(path, max_frames=5).frames.shape[0] == 5


def test_the_same_frames_encode_to_the_same_file(tmp_path):
    # an embedded-dataset video that x264's macroblock-tree rate control encoded three ways in ten calls
    frames = render_motion("move_left", np.random.default_rng([1, 1, 0]))
    encodings = set()
    for i in range(10):
        write_video(tmp_path / f"{i}.mp4", frames, fps=16)
        encodings.add((tmp_path / f"{i}.mp4").read_bytes())
    assert len(encodings) == 1


def test_bad_files_are_decode_errors_with_a_reason(mp4, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video " * 50)
    data = mp4[0].read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    cases = [(empty, "empty file"), (text, "not a decodable video"), (truncated, "not a decodable video|truncated")]
    for path, reason in cases:
        with pytest.raises(VideoDecodeError, match=reason):
            read_video(path)
