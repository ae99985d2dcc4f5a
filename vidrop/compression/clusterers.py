"""Clusterers: pick a palette of at most 256 RGB colours for one video from a sample of its pixels.

Every method has one interface, `fit_palette(pixels, num_clusters, method, seed) -> (P, 3) uint8`. The pixel
sample is bounded (`sample_pixels`), so fitting costs the same for a 2-second and a 2-hour video.
"""

import numpy as np
from sklearn.cluster import DBSCAN, AgglomerativeClustering, KMeans, MiniBatchKMeans
from sklearn.mixture import GaussianMixture

MAX_PALETTE = 256
# Pixels a clusterer is fitted on; Ward and DBSCAN are quadratic-ish in it, so they use fewer.
FIT_SAMPLES = {"kmeans": 20000, "minibatch_kmeans": 50000, "gmm": 20000, "agglomerative": 4000, "dbscan": 5000}
CLUSTERERS = tuple(FIT_SAMPLES)
DBSCAN_EPS = 6.0  # RGB distance (0-255 scale) within which pixels are density-connected
DBSCAN_MIN_SAMPLES = 8


def check_num_clusters(num_clusters):
    """Raise `ValueError` unless `num_clusters` is an integer from 2 to 256."""
    if isinstance(num_clusters, bool) or not isinstance(num_clusters, (int, np.integer)) or not 2 <= num_clusters <= 256:
        raise ValueError(f"num_clusters={num_clusters!r} is not allowed; allowed: an integer from 2 to 256")


def check_method(method):
    """Raise `ValueError` unless `method` names a clusterer."""
    if method not in CLUSTERERS:
        raise ValueError(f"method={method!r} is not a clusterer; allowed: {', '.join(CLUSTERERS)}")


def sample_pixels(frames, num_samples, rng):
    """Up to `num_samples` uniformly drawn pixels of `frames` `(..., 3)` uint8 -> `(M, 3)` uint8."""
    pixels = frames.reshape(-1, 3)
    if pixels.shape[0] <= num_samples:
        return pixels
    return pixels[rng.choice(pixels.shape[0], size=num_samples, replace=False)]


def _cluster_means(pixels, labels):
    """Mean colour of every label >= 0, largest clusters first -> `(C, 3)` float."""
    valid = labels >= 0
    ids, counts = np.unique(labels[valid], return_counts=True)
    order = ids[np.argsort(-counts, kind="stable")]
    return np.stack([pixels[labels == i].mean(axis=0) for i in order]) if len(order) else np.empty((0, 3))


def _fit(pixels, num_clusters, method, seed):
    """Cluster centres `(C, 3)` float of `pixels` `(M, 3)` float32."""
    k = min(num_clusters, len(pixels))
    if method == "kmeans":
        return KMeans(n_clusters=k, init="k-means++", n_init=1, random_state=seed).fit(pixels).cluster_centers_
    if method == "minibatch_kmeans":
        model = MiniBatchKMeans(n_clusters=k, init="k-means++", n_init=1, batch_size=4096, random_state=seed)
        return model.fit(pixels).cluster_centers_
    if method == "gmm":
        model = GaussianMixture(n_components=k, covariance_type="diag", reg_covar=1e-2, random_state=seed)
        return model.fit(pixels).means_
    if method == "agglomerative":
        return _cluster_means(pixels, AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(pixels))
    labels = DBSCAN(eps=DBSCAN_EPS, min_samples=DBSCAN_MIN_SAMPLES).fit_predict(pixels)
    centres = _cluster_means(pixels, labels)[:MAX_PALETTE]
    # All noise (no dense region): the sample's mean colour is the one honest palette entry.
    return centres if len(centres) else pixels.mean(axis=0, keepdims=True)


def fit_palette(pixels, num_clusters=16, method="kmeans", seed=0):
    """Fit a palette to a pixel sample.

    Args:
        pixels: `(M, 3)` uint8 RGB pixels (a bounded sample of one video, see `sample_pixels`).
        num_clusters: K, from 2 to 256. `dbscan` ignores it: its palette size is what it finds (capped at 256).
        method: one of `CLUSTERERS`.
        seed: random state of the clusterer.

    Returns:
        `(P, 3)` uint8 palette, distinct colours, `1 <= P <= 256` (`P <= K` except for `dbscan`).
    """
    check_num_clusters(num_clusters)
    check_method(method)
    if pixels.ndim != 2 or pixels.shape[1] != 3 or len(pixels) == 0:
        raise ValueError(f"pixels has shape {pixels.shape}; allowed: (M, 3) with M >= 1")
    rng = np.random.default_rng(seed)
    sample = sample_pixels(pixels, FIT_SAMPLES[method], rng)
    distinct = np.unique(sample, axis=0)
    if len(distinct) <= num_clusters and method != "dbscan":
        return distinct  # no more colours than K: the exact palette, no clustering needed
    centres = _fit(sample.astype(np.float32), num_clusters, method, seed)
    palette = np.unique(np.clip(np.rint(centres), 0, 255).astype(np.uint8), axis=0)
    return palette[:MAX_PALETTE]


def assign_to_palette(frames, palette, chunk_pixels=1 << 16):
    """Nearest palette colour (Euclidean RGB) of every pixel, in bounded-memory chunks, and the squared error.

    Args:
        frames: `(..., 3)` uint8.
        palette: `(P, 3)` uint8, `P <= 256`.
    Returns:
        `(indices (...) uint8, total squared error over all pixels and channels)`; the error gives the
        reconstruction's PSNR without building the reconstruction.
    """
    pixels = frames.reshape(-1, 3)
    colours = palette.astype(np.float32)  # (P, 3)
    colour_norms = (colours**2).sum(axis=1)  # (P,)
    indices = np.empty(len(pixels), dtype=np.uint8)
    squared_error = 0.0
    for start in range(0, len(pixels), chunk_pixels):
        chunk = pixels[start : start + chunk_pixels].astype(np.float32)  # (c, 3)
        # ||x - p||^2 = ||x||^2 - 2 x.p + ||p||^2; every term is an integer below 2^24, exact in float32
        distances = colour_norms[None, :] - 2.0 * chunk @ colours.T  # (c, P), without ||x||^2
        nearest = distances.argmin(axis=1)
        indices[start : start + len(chunk)] = nearest
        # float64 sums: the two terms are large and nearly cancel
        nearest_distances = np.take_along_axis(distances, nearest[:, None], 1)
        squared_error += float(nearest_distances.sum(dtype=np.float64) + (chunk**2).sum(dtype=np.float64))
    return indices.reshape(frames.shape[:-1]), squared_error


def nearest_palette_indices(frames, palette, chunk_pixels=1 << 16):
    """Index of the nearest palette colour of every pixel: `(..., 3)` uint8 -> `(...)` uint8 (see `assign_to_palette`)."""
    return assign_to_palette(frames, palette, chunk_pixels)[0]
