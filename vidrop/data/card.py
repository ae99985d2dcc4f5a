"""The dataset card (`README.md`) of a compressed dataset: Hub metadata, features, layout, statistics."""

import yaml

FEATURE_NOTES = {
    "video_id": "path of the source video below the input folder, without extension",
    "label": "class (the source subfolder)",
    "first_frame": "the row's first frame in the video (a long video is stored as rows of consecutive segments)",
    "video_frames": "frames of the whole video",
    "num_frames": "frames T of the row",
    "height": "frame height H, pixels",
    "width": "frame width W, pixels",
    "fps": "frame rate of the stored frames",
    "palette": "P x 3 uint8 RGB colours, row-major bytes",
    "group_size": "frames per compressed group",
    "frame_groups": "Zstandard blobs of bit-packed palette indices (1, 2, 4 or 8 bits), one per group of frames",
    "short": "fewer frames than one clip: the loader pads by repetition",
    "shard": "the parquet file holding the row",
    "raw_bytes": "bytes of the row's frames as raw RGB",
    "compressed_bytes": "palette + compressed groups of the row, bytes",
    "source_bytes": "bytes of the source file",
    "psnr_db": "PSNR of the video's palette reconstruction, dB",
    "encode_seconds": "decode + cluster + encode time of the video",
}


def dataset_card(name, totals, features):
    """Markdown text of the card, with the YAML header that points `load_dataset` at the shards."""
    header = {
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}],
        "tags": ["video", "vidrop", "cluster-compressed"],
        "task_categories": ["video-classification"],
    }
    options = totals["options"]
    rows = "\n".join(f"| `{key}` | `{features[key]}` | {FEATURE_NOTES[key]} |" for key in features)
    classes = ", ".join(totals["classes"]) if totals["classes"] else "none (flat folder)"
    skipped = "\n".join(f"* `{s['path']}`: {s['reason']}" for s in totals["skipped"]) or "none"
    return f"""---
{yaml.safe_dump(header, sort_keys=False).strip()}
---

# {name}

A ViDROP cluster-compressed video dataset: every video is stored as a colour palette of at most
{options['num_clusters']} colours found by `{options['method']}` clustering in RGB space, plus a bit-packed
palette index per pixel, compressed per group of {options['group_size']} frames. A clip is read by
decompressing only the groups it needs and looking up the palette.

```python
from datasets import load_dataset
dataset = load_dataset("path/or/repo", split="train", streaming=True)
```

## Layout

`data/train-*.parquet` (one row per segment of a video: a video of 2 x {options['segment_frames']} frames or more is
cut into rows of {options['segment_frames']} frames, the last taking the remainder), `stats.json` (dataset totals and
skipped files), `progress.json` (what a resumed build needs).

## Features

| feature | type | meaning |
| --- | --- | --- |
{rows}

Classes: {classes}.

## Compression statistics

| statistic | value |
| --- | --- |
| videos | {totals['videos']} |
| rows (video segments) | {totals['rows']} |
| frames | {totals['frames']} |
| raw RGB bytes | {totals['raw_bytes']} |
| compressed bytes | {totals['compressed_bytes']} |
| source file bytes | {totals['source_bytes']} |
| compression factor (raw / compressed) | {totals['compression_factor']:.2f} |
| mean PSNR (dB) | {totals['psnr_db']:.2f} |
| encode seconds | {totals['encode_seconds']:.1f} |
| videos shorter than a clip ({options['clip_frames']} frames) | {totals['short_videos']} |

## How it was made

`python launchers/compress.py` with {', '.join(f'`{k}={v}`' for k, v in options.items())}.

Skipped files: {skipped}
"""
