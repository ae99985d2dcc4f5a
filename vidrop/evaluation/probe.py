"""Linear probe and k-NN classification of frozen features, with scikit-learn."""

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

# Inverse regularisation strengths tried by the linear probe (chosen by cross-validation on the train split):
# 1e-4 to 100, half a decade apart.
PROBE_C_GRID = tuple(float(10.0 ** (e / 2)) for e in range(-8, 5))


def _check(train_x, train_y, test_x, test_y):
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise ValueError("features and labels differ in length; allowed: one label per feature row")
    if len(np.unique(train_y)) < 2:
        raise ValueError(f"the train split has {len(np.unique(train_y))} class; allowed: at least 2 classes")
    if len(test_y) == 0:
        raise ValueError("the eval split is empty; allowed: at least one video to evaluate")


def _probe(c, seed):
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000, random_state=seed))


def split_indices(labels, eval_fraction, seed):
    """Stratified `(train, eval)` index arrays holding out `eval_fraction` of the videos (at least one per class)."""
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction={eval_fraction!r} is out of range; allowed: (0, 1)")
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < 2:
        raise ValueError(f"a class has {counts.min()} video; allowed: at least 2 per class to split train and eval")
    held_out = min(max(round(eval_fraction * len(labels)), len(classes)), len(labels) - len(classes))
    return train_test_split(np.arange(len(labels)), test_size=held_out, random_state=seed, stratify=labels)


def linear_probe(train_x, train_y, test_x, test_y, seed=0, c_grid=PROBE_C_GRID, folds=5):
    """Top-1 accuracy of a logistic regression on standardised features.

    The regularisation `C` is the one of `c_grid` with the best mean accuracy over a stratified `folds`-fold
    cross-validation of the train split (fewer folds when a class has fewer videos; ties: the stronger
    regularisation); the probe is then refitted on the whole train split. Every train video is held out once,
    so the choice does not hang on one small validation split, which with a few hundred videos can pick a C
    that leaves the probe at chance.

    Returns:
        `{"top1": accuracy on the test split in [0, 1], "C": the chosen C, "per_class_top1": {label: accuracy
        on the test videos of that label}}`: which classes the features tell apart and which they confuse.
    """
    _check(train_x, train_y, test_x, test_y)
    folds = min(folds, int(np.unique(train_y, return_counts=True)[1].min()))
    if folds < 2:
        raise ValueError("a class has 1 video in the train split; allowed: at least 2 per class to choose the "
                         "probe's regularisation")
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = [cross_val_score(_probe(c, seed), train_x, train_y, cv=splits).mean() for c in c_grid]
    best = max(scores)
    best_c = min(c for c, score in zip(c_grid, scores) if score == best)
    predictions = _probe(best_c, seed).fit(train_x, train_y).predict(test_x)
    test_y = np.asarray(test_y)
    correct = predictions == test_y
    per_class = {int(label): float(correct[test_y == label].mean()) for label in np.unique(test_y)}
    return {"top1": float(correct.mean()), "C": best_c, "per_class_top1": per_class}


def mean_per_class(per_class_scores):
    """The mean per class of several `{class: top-1}` scores (runs, seeds or probe splits of the same classes)."""
    return {name: float(np.mean([scores[name] for scores in per_class_scores])) for name in per_class_scores[0]}


def knn_top1(train_x, train_y, test_x, test_y, k=20):
    """Top-1 accuracy of a majority vote of the `k` nearest train features by cosine similarity."""
    _check(train_x, train_y, test_x, test_y)
    if k < 1:
        raise ValueError(f"k={k!r} is not allowed; allowed: >= 1")
    knn = KNeighborsClassifier(n_neighbors=min(k, len(train_x)), metric="cosine", algorithm="brute")
    return float(knn.fit(train_x, train_y).score(test_x, test_y))
