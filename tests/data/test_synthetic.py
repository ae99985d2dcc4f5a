import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vidrop.data.synthetic import MOTIONS, build_synthetic_videos, render_motion
from vidrop.data.video import read_video


def test_layout_and_determinism(synthetic_videos, tmp_path):
    assert sorted(p.name for p in synthetic_videos.iterdir()) == sorted(MOTIONS)
    assert len(list(synthetic_videos.glob("*/*.mp4"))) == 2 * len(MOTIONS)
    frames = read_video(synthetic_videos / "zoom_in" / "zoom_in_0000.mp4").frames
    assert frames.shape == (16, 32, 32, 3)
    again = build_synthetic_videos(tmp_path, videos_per_class=1, num_frames=16, size=32, fps=8, seed=0)
    rebuilt = read_video(again[MOTIONS.index("zoom_in")]).frames.astype(int)
    # the same frames were encoded: x264's output differs run to run by a few grey levels (1-2.5 measured on
    # 2 cores); other frames would differ by tens
    assert np.abs(rebuilt - frames).mean() < 4
    a = render_motion("rotate_cw", np.random.default_rng(5), 8, 32)
    assert np.array_equal(a, render_motion("rotate_cw", np.random.default_rng(5), 8, 32))


def _frame_features(videos):
    """What one frame shows: its pixels at 8x8 -> `(V, 192)`."""
    return videos[:, 0].reshape(len(videos), 8, 4, 8, 4, 3).mean((2, 4)).reshape(len(videos), -1)


def _motion_features(videos):
    """Brightness-constancy projections of the temporal change on translation, rotation and zoom -> `(V, 4)`."""
    gray = videos.mean(-1)  # (V, T, H, W)
    change = gray[:, 1:] - gray[:, :-1]
    grad_y, grad_x = np.gradient((gray[:, 1:] + gray[:, :-1]) / 2, axis=(2, 3))
    weight = np.abs(change)  # its centroid estimates the centre of a rotation or zoom
    ys, xs = np.mgrid[0 : gray.shape[2], 0 : gray.shape[3]]
    cy = (weight * ys).sum((2, 3), keepdims=True) / weight.sum((2, 3), keepdims=True)
    cx = (weight * xs).sum((2, 3), keepdims=True) / weight.sum((2, 3), keepdims=True)
    dx, dy = xs - cx, ys - cy
    norm = (grad_x**2 + grad_y**2).sum((2, 3)) + 1e-6
    fields = (grad_x, grad_y, dx * grad_y - dy * grad_x, dx * grad_x + dy * grad_y)
    return np.stack([(change * f).sum((2, 3)) / norm for f in fields], -1).mean(1)


def test_the_class_is_in_the_motion_not_in_a_frame():
    labels = np.repeat(np.arange(len(MOTIONS)), 24)
    videos = np.stack(
        [
            render_motion(MOTIONS[c], np.random.default_rng([7, c, i]), 4, 32)
            for c in range(len(MOTIONS))
            for i in range(24)
        ]
    ).astype(np.float32) / 255
    train = np.arange(len(labels)) % 2 == 0
    scores = []
    for features in (_frame_features(videos), _motion_features(videos)):
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(features[train], labels[train])
        scores.append(probe.score(features[~train], labels[~train]))
    frame_score, motion_score = scores
    assert frame_score < 0.3, scores  # chance is 0.125
    assert motion_score > 0.4, scores  # the motion carries the class
