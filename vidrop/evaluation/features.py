"""Frozen features of every video of a labelled compressed dataset, for probing.

Each video gives `num_clips` clips evenly spaced in time and `num_crops` square crops of each (the centre, or
the two ends and the centre of the longer side), resized to the model's image size; the encoder sees all of
their tokens (nothing dropped, nothing masked), and the video's feature is the mean over its views.
"""

from dataclasses import dataclass

import numpy as np
import torch

from ..compression.codec import decode_indices
from ..data.augment import box_to_pixel_values
from ..data.shards import row_to_video
from ..data.streaming import check_clip_span, load_video_dataset, stream_rows

FEATURE_TYPES = ("cls", "mean_patch", "both")


@dataclass
class VideoFeatures:
    """Features `(N, F)` float32, labels `(N,)` int64 and ids of the N videos of a dataset, in dataset order, and
    the dataset's class names (label `i` is `class_names[i]`; None when its label column does not name them)."""

    features: np.ndarray
    labels: np.ndarray
    video_ids: list
    class_names: list | None = None


def eval_clip_starts(num_video_frames, num_frames, stride, num_clips):
    """First frames of `num_clips` clips spread evenly over the video -> `(num_clips,)` int64.

    The clips cover the video from its start to its end; a video shorter than one clip gives clips that start
    at frame 0 (the frames are then looped, as in training).
    """
    span = (num_frames - 1) * stride + 1
    last_start = max(num_video_frames - span, 0)
    return np.linspace(0, last_start, num_clips).round().astype(np.int64)


def square_crop_boxes(height, width, num_crops):
    """`num_crops` (1 or 3) square boxes `(top, left, side, side)` of side `min(height, width)`: the centre
    one, or both ends and the centre of the longer side."""
    if num_crops not in (1, 3):
        raise ValueError(f"num_crops={num_crops!r} is not allowed; allowed: 1 (centre) or 3 (ends and centre)")
    side = min(height, width)
    slack = max(height, width) - side  # along the longer side
    offsets = [slack // 2] if num_crops == 1 else [0, slack // 2, slack]
    return [(offset, 0, side, side) if height > width else (0, offset, side, side) for offset in offsets]


def video_views(row, num_frames, frame_stride, image_size, num_clips, num_crops, shuffle_frames=None):
    """The evaluation views of one dataset row -> `(num_clips * num_crops, T, C, S, S)` float.

    `shuffle_frames`, a `numpy.random.Generator`, permutes the frames of every clip (the temporal-order
    control); None keeps them in order.
    """
    check_clip_span(row, num_frames, frame_stride)
    video = row_to_video(row)
    views = []
    for start in eval_clip_starts(video.num_frames, num_frames, frame_stride, num_clips):
        frames = (start + np.arange(num_frames) * frame_stride) % video.num_frames
        if shuffle_frames is not None:
            frames = shuffle_frames.permutation(frames)
        indices = decode_indices(video, frames)  # (T, H, W) uint8
        for box in square_crop_boxes(video.height, video.width, num_crops):
            views.append(box_to_pixel_values(indices, video.palette, box, image_size))
    return torch.stack(views)


def pool_features(hidden_states, feature_type, has_cls_token):
    """`(B, [1 +] L, D)` last hidden states -> `(B, D)` (`cls`, `mean_patch`) or `(B, 2D)` (`both`)."""
    if feature_type not in FEATURE_TYPES:
        raise ValueError(f"feature_type={feature_type!r} is not allowed; allowed: {', '.join(FEATURE_TYPES)}")
    if feature_type != "mean_patch" and not has_cls_token:
        raise ValueError(f"feature_type={feature_type!r} needs a model with a CLS token; allowed here: mean_patch")
    tokens = hidden_states[:, 1:] if has_cls_token else hidden_states  # (B, L, D)
    if feature_type == "mean_patch":
        return tokens.mean(dim=1)
    if feature_type == "cls":
        return hidden_states[:, 0]
    return torch.cat([hidden_states[:, 0], tokens.mean(dim=1)], dim=-1)


@torch.no_grad()
def extract_features(
    encoder,
    dataset,
    num_frames,
    image_size,
    has_cls_token,
    feature_type="both",
    frame_stride=2,
    num_clips=1,
    num_crops=1,
    batch_size=16,
    device="cpu",
    shuffle_frames_seed=None,
):
    """Features of every labelled video of `dataset` (a compressed dataset folder or Hub repo id); a video stored
    as several segment rows gets the mean over the clips of all its segments.

    Args:
        encoder: a callable `pixel_values (B, T, C, S, S) -> last hidden states (B, [1 +] L, D)` running on
            `device` (for a `VidropModel`: `lambda x: model(x).last_hidden_state`).
        has_cls_token: whether the encoder's first token is a CLS token.
        feature_type: `cls`, `mean_patch` or `both` (concatenated).
        shuffle_frames_seed: None, or a seed with which the frames of every clip are shuffled (the control).

    Returns:
        `VideoFeatures`, in the dataset's order.
    """
    device = torch.device(device)
    rng = None if shuffle_frames_seed is None else np.random.default_rng(shuffle_frames_seed)
    features, labels, video_ids, pending = [], [], [], []
    views_per_video = num_clips * num_crops

    def flush():
        pixel_values = torch.cat(pending).to(device)  # (videos * V, T, C, S, S)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            hidden = encoder(pixel_values)
        pooled = pool_features(hidden.float(), feature_type, has_cls_token)  # (videos * V, F)
        features.append(pooled.view(-1, views_per_video, pooled.shape[-1]).mean(dim=1).cpu())
        pending.clear()

    rows = load_video_dataset(dataset)
    for row in stream_rows(rows):
        if row.get("label") is None:
            raise ValueError(
                f"dataset {dataset!r} has no labels (video {row['video_id']!r}); allowed: a dataset built from "
                "one subfolder per class"
            )
        pending.append(video_views(row, num_frames, frame_stride, image_size, num_clips, num_crops, rng))
        labels.append(row["label"])
        video_ids.append(row["video_id"])
        if len(pending) * views_per_video >= batch_size:
            flush()
    if pending:
        flush()
    if not labels:
        raise ValueError(f"dataset {dataset!r} has no videos; allowed: a dataset with labelled videos")
    return _per_video(torch.cat(features).numpy(), labels, video_ids, class_names(rows))


def class_names(rows):
    """The class names of a compressed dataset opened with `load_video_dataset`, as its `label` ClassLabel gives
    them in label order, or None when its label column does not name them."""
    return getattr((rows.features or {}).get("label"), "names", None)


def _per_video(features, labels, video_ids, names):
    """Rows -> videos: `(rows, F)` features of rows, some of them segments of the same video -> `VideoFeatures`
    with one `(F,)` mean per video (every row has the same number of views), in first-row order."""
    order = list(dict.fromkeys(video_ids))
    position = {video_id: i for i, video_id in enumerate(order)}
    video_of_row = np.asarray([position[video_id] for video_id in video_ids])
    sums = np.zeros((len(order), features.shape[1]), dtype=np.float64)
    np.add.at(sums, video_of_row, features)
    means = (sums / np.bincount(video_of_row)[:, None]).astype(features.dtype)  # (videos, F)
    first_row = np.unique(video_of_row, return_index=True)[1]
    return VideoFeatures(means, np.asarray(labels, dtype=np.int64)[first_row], order, names)
