"""Clusterers: pick a palette of at most 256 RGB colours for one video from a sample of its pixels.

Every method has one interface, `fit_palette(pixels, num_clusters, method, seed) -> (P, 3) uint8`. The pixel
sample is bounded (`sample_pixels`), so fitting costs the same for a 2-second and a 2-hour video.
"""

import numba
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
    is_integer = isinstance(num_clusters, (int, np.integer)) and not isinstance(num_clusters, bool)
    if not is_integer or not 2 <= num_clusters <= 256:
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


def unique_colours(pixels):
    """The distinct rows of `pixels` `(M, 3)` uint8, sorted (as `np.unique(pixels, axis=0)`, faster: one uint32
    code per colour)."""
    codes = np.unique(pixels.astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], dtype=np.uint32))  # (C,)
    return np.stack([codes >> 16, (codes >> 8) & 255, codes & 255], axis=1).astype(np.uint8)


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
    distinct = unique_colours(sample)
    if len(distinct) <= num_clusters and method != "dbscan":
        return distinct  # no more colours than K: the exact palette, no clustering needed
    centres = _fit(sample.astype(np.float32), num_clusters, method, seed)
    palette = unique_colours(np.clip(np.rint(centres), 0, 255).astype(np.uint8))
    return palette[:MAX_PALETTE]


# Colour cells of the assignment table: 2**CELL_BITS levels per channel, 64**3 cells of 4**3 colours.
CELL_BITS = 6


@numba.njit(cache=True, nogil=True)
def _nearest_exact(r, g, b, colours):
    """`(index, squared distance)` of the colour of `colours` `(P, 3)` int32 nearest to `(r, g, b)` (any
    numbers; ties go to the lower index)."""
    best, nearest = np.inf, 0
    for p in range(colours.shape[0]):
        dr, dg, db = r - colours[p, 0], g - colours[p, 1], b - colours[p, 2]
        distance = dr * dr + dg * dg + db * db
        if distance < best:
            best, nearest = distance, p
    return nearest, best


@numba.njit(cache=True, nogil=True)
def _cell_table(palette):
    """`(2 ** (3 * CELL_BITS),)` int16: the index of the palette colour nearest to every colour of a cell, or -1
    where the cell straddles a boundary between two colours' regions.

    A colour's region (the points nearer to it than to any other colour, ties going to the lower index) is an
    intersection of half-spaces, so it is convex: a cell whose 8 corners (half-integer colours enclosing its
    integer colours) share their nearest colour lies wholly inside that colour's region. Corners are
    half-integers, so every distance here is exact in float64.
    """
    levels, width = 1 << CELL_BITS, 256 >> CELL_BITS
    colours = palette.astype(np.float64)
    corners = np.empty((levels + 1, levels + 1, levels + 1), dtype=np.int16)  # cell a spans [4a - 0.5, 4a + 3.5]
    for r in range(levels + 1):
        for g in range(levels + 1):
            for b in range(levels + 1):
                corners[r, g, b] = _nearest_exact(r * width - 0.5, g * width - 0.5, b * width - 0.5, colours)[0]
    table = np.empty(levels**3, dtype=np.int16)
    for r in range(levels):
        for g in range(levels):
            for b in range(levels):
                first = corners[r, g, b]
                inside = True
                for corner in range(1, 8):
                    if corners[r + (corner >> 2), g + ((corner >> 1) & 1), b + (corner & 1)] != first:
                        inside = False
                table[(r * levels + g) * levels + b] = first if inside else -1
    return table


@numba.njit(cache=True, nogil=True)
def _assign_pixels(pixels, palette, table, indices):
    """Fill `indices` `(N,)` uint8 with the nearest colour of every pixel of `pixels` `(N, 3)` uint8 (the cell
    table's answer, or an exact search over `palette` `(P, 3)` where the cell straddles a boundary; ties go to
    the lower index) and return the total squared error, an exact integer."""
    colours = palette.astype(np.int32)
    shift = 8 - CELL_BITS
    total = 0
    for i in range(pixels.shape[0]):
        r, g, b = np.int32(pixels[i, 0]), np.int32(pixels[i, 1]), np.int32(pixels[i, 2])
        nearest = table[(((r >> shift) << CELL_BITS | (g >> shift)) << CELL_BITS) | (b >> shift)]
        if nearest >= 0:
            dr, dg, db = r - colours[nearest, 0], g - colours[nearest, 1], b - colours[nearest, 2]
            best = dr * dr + dg * dg + db * db
        else:
            nearest, best = _nearest_exact(r, g, b, colours)
        indices[i] = nearest
        total += best
    return total


def assign_to_palette(frames, palette):
    """Nearest palette colour (Euclidean RGB) of every pixel, and the total squared error.

    Most pixels are answered by a table of colour cells that lie inside one colour's region (`_cell_table`);
    the others are searched exactly. Memory beyond the output: the 512 KB table.

    Args:
        frames: `(..., 3)` uint8.
        palette: `(P, 3)` uint8, `P <= 256`.
    Returns:
        `(indices (...) uint8, total squared error over all pixels and channels)`; the error gives the
        reconstruction's PSNR without building the reconstruction.
    """
    pixels = np.ascontiguousarray(frames).reshape(-1, 3)
    palette = np.ascontiguousarray(palette, dtype=np.uint8)
    indices = np.empty(len(pixels), dtype=np.uint8)
    squared_error = _assign_pixels(pixels, palette, _cell_table(palette), indices)
    return indices.reshape(frames.shape[:-1]), float(squared_error)


def nearest_palette_indices(frames, palette):
    """Index of the nearest palette colour of every pixel: `(..., 3)` uint8 -> `(...)` uint8
    (see `assign_to_palette`)."""
    return assign_to_palette(frames, palette)[0]
