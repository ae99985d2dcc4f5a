"""The variants of an ablation study: each differs from the study's baseline only in configuration.

A variant sets `VidropConfig` fields (the model and its SSL objective) and `CompressionOptions` fields (how
the dataset is compressed); everything else is the baseline's.
"""

import itertools
from dataclasses import dataclass, field, fields

from ..data.shards import CompressionOptions
from ..models import VidropConfig
from ..training.arguments import parse_value

STUDIES = ("compression", "dropping", "paper", "grid")
COMPRESSION_FIELDS = tuple(f.name for f in fields(CompressionOptions))

# The alternatives of each axis; the baseline's own value is always the first row of its axis.
COMPRESSION_METHODS = ("kmeans", "gmm", "agglomerative", "dbscan")
DROPPING_PATTERNS = ("random", "spatial_uniform", "temporal_uniform", "stratified")
PAPER_AXES = {
    "loss_type": ("dino_ibot", "mse", "cosine"),
    "num_small_crops": (0, 2, 4),
    "drop_pattern": ("random", "tube", "block"),
    "drop_rate": (0.5, 0.75, 0.9),
    "num_clusters": (8, 16, 32),
    "mask_ratio": (0.25, 0.5, 0.75),
    "mask_pattern": ("random", "future"),
}


@dataclass(frozen=True)
class Variant:
    """One configuration of a study.

    Attributes:
        axis: what this variant changes (`baseline` for the study's baseline in the `paper` study).
        value: the value on that axis.
        config: `VidropConfig` fields set on top of the study's base configuration.
        compression: `CompressionOptions` fields set on top of the defaults.
        baseline: whether this is the study's baseline.
    """

    axis: str
    value: object
    config: dict = field(default_factory=dict)
    compression: dict = field(default_factory=dict)
    baseline: bool = False

    @property
    def name(self):
        if self.axis in ("baseline", "grid"):
            return "baseline" if self.axis == "baseline" else str(self.value)
        return f"{self.axis}={self.value}"


def _split(settings):
    """`{field: value}` -> `(VidropConfig fields, CompressionOptions fields)`; unknown fields are an error."""
    config_fields = set(VidropConfig().to_dict())
    unknown = set(settings) - config_fields - set(COMPRESSION_FIELDS)
    if unknown:
        raise ValueError(
            f"unknown ablation fields {sorted(unknown)}; allowed: VidropConfig fields or CompressionOptions fields "
            f"({', '.join(COMPRESSION_FIELDS)})"
        )
    return (
        {k: v for k, v in settings.items() if k not in COMPRESSION_FIELDS},
        {k: v for k, v in settings.items() if k in COMPRESSION_FIELDS},
    )


def _axis(name, values, baseline_value):
    """Variants along one axis, the baseline's value first (and marked)."""
    ordered = [baseline_value] + [v for v in values if v != baseline_value]
    variants = []
    for value in ordered:
        config, compression = _split({name: value})
        variants.append(Variant(name, value, config, compression, baseline=value == baseline_value))
    return variants


def parse_grid(text):
    """`'drop_rate=0.5,0.9;mask_ratio=0.25,0.5'` -> `{"drop_rate": [0.5, 0.9], "mask_ratio": [0.25, 0.5]}`."""
    grid = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        if "=" not in item:
            raise ValueError(f"grid item {item!r} has no '='; allowed: 'field=v1,v2;field2=v1,v2'")
        name, values = item.split("=", 1)
        parsed = [parse_value(v.strip()) for v in values.split(",") if v.strip()]
        if not parsed:
            raise ValueError(f"grid field {name.strip()!r} has no values; allowed: one or more, comma-separated")
        grid[name.strip()] = parsed
    if not grid:
        raise ValueError("the grid is empty; allowed: 'field=v1,v2;field2=v1,v2'")
    _split(dict.fromkeys(grid))
    return grid


def study_variants(study, base_config, grid=None):
    """The variants of `study` around `base_config` (the resolved `VidropConfig` of the baseline).

    `grid` (for `--study grid`) maps fields to values; its baseline is the first value of every field.
    """
    if study not in STUDIES:
        raise ValueError(f"study={study!r} is not known; allowed: {', '.join(STUDIES)}")
    compression = {f.name: getattr(CompressionOptions(), f.name) for f in fields(CompressionOptions)}
    defaults = {**base_config.to_dict(), **compression}
    if study == "compression":
        return _axis("method", COMPRESSION_METHODS, "kmeans")
    if study == "dropping":
        return _axis("drop_pattern", DROPPING_PATTERNS, "random")
    if study == "paper":
        variants = [Variant("baseline", "default", baseline=True)]
        for name, values in PAPER_AXES.items():
            variants += [v for v in _axis(name, values, defaults[name]) if not v.baseline]
        return variants
    if not grid:
        raise ValueError("study='grid' needs --grid 'field=v1,v2;...'")
    names = list(grid)
    variants = []
    for index, combination in enumerate(itertools.product(*(grid[n] for n in names))):
        settings = dict(zip(names, combination))
        config, compression = _split(settings)
        value = ",".join(f"{n}={v}" for n, v in settings.items())
        variants.append(Variant("grid", value, config, compression, baseline=index == 0))
    return variants

