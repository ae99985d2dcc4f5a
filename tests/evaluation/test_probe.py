"""Linear probe and k-NN on features of known structure."""

import numpy as np
import pytest

from vidrop.evaluation import knn_top1, linear_probe, split_indices


def _blobs(num_classes=4, per_class=30, dim=16, separation=6.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, separation, size=(num_classes, dim))
    labels = np.repeat(np.arange(num_classes), per_class)
    features = centres[labels] + rng.normal(0, 1, size=(len(labels), dim))
    return features.astype(np.float32), labels


def test_separable_features_are_classified_and_random_labels_are_at_chance():
    x, y = _blobs()
    train, test = split_indices(y, 0.5, seed=0)
    assert linear_probe(x[train], y[train], x[test], y[test])["top1"] == 1.0
    assert knn_top1(x[train], y[train], x[test], y[test], k=5) == 1.0

    shuffled = np.random.default_rng(1).permutation(y)  # labels carry no information about the features
    chance = [linear_probe(x[train], shuffled[train], x[test], shuffled[test], seed=s)["top1"] for s in range(3)]
    assert np.mean(chance) < 0.45  # 4 classes: chance is 0.25
    assert knn_top1(x[train], shuffled[train], x[test], shuffled[test], k=5) < 0.45


def test_the_probe_scores_each_class_so_confused_classes_show():
    # classes 0 and 1 are blobs of their own; 2 and 3 are drawn from one blob, so only they are confused
    x, y = _blobs(num_classes=3, per_class=40)
    y = np.where((y == 2) & (np.arange(len(y)) % 2 == 1), 3, y)
    train, test = split_indices(y, 0.5, seed=0)
    result = linear_probe(x[train], y[train], x[test], y[test])
    per_class = result["per_class_top1"]
    assert sorted(per_class) == [0, 1, 2, 3]
    assert per_class[0] == per_class[1] == 1.0
    assert per_class[2] + per_class[3] < 1.5  # one blob for two labels: about one of the two right on average
    counts = np.bincount(y[test])
    assert result["top1"] == pytest.approx(sum(per_class[c] * counts[c] for c in per_class) / len(test))


def test_the_probe_chooses_its_regularisation_by_cross_validation_on_the_train_split():
    # the class is x0 - x1 (a shared nuisance cancels): a weakly regularised probe finds it, a very strongly
    # regularised one degenerates to comparing class means along x0 (near chance); selection must find C=100
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), 60)
    nuisance = rng.normal(0, 10, size=120)
    x = np.stack([nuisance + (2 * y - 1) * 0.5, nuisance], axis=1).astype(np.float32)
    train, test = split_indices(y, 0.5, seed=0)
    for grid in ((1e-9, 100.0), (100.0, 1e-9)):
        result = linear_probe(x[train], y[train], x[test], y[test], c_grid=grid)
        assert result["C"] == 100.0
        assert result["top1"] > 0.95
    assert linear_probe(x[train], y[train], x[test], y[test], c_grid=(1e-9,))["top1"] < 0.75


def test_knn_uses_cosine_similarity():
    # the same directions at very different norms: cosine neighbours ignore the norm
    train_x = np.array([[1.0, 0.0], [100.0, 0.0], [0.0, 1.0], [0.0, 100.0]])
    train_y = np.array([0, 0, 1, 1])
    test_x = np.array([[50.0, 1.0], [0.02, 1.0]])
    assert knn_top1(train_x, train_y, test_x, np.array([0, 1]), k=2) == 1.0


def test_the_split_is_stratified_and_seeded():
    labels = np.repeat(np.arange(3), 10)
    train, test = split_indices(labels, 0.5, seed=3)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(30))
    assert np.bincount(labels[test]).tolist() == [5, 5, 5]
    assert np.array_equal(split_indices(labels, 0.5, seed=3)[1], test)
    assert not np.array_equal(split_indices(labels, 0.5, seed=4)[1], test)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: split_indices(np.array([0, 0, 1]), 0.5, 0), "at least 2 per class"),
        (lambda: split_indices(np.array([0, 1] * 4), 1.5, 0), "allowed: (0, 1)"),
        (lambda: knn_top1(np.zeros((4, 2)), np.array([0, 1, 0, 1]), np.zeros((1, 2)), np.array([0]), k=0), "k=0"),
        (lambda: linear_probe(np.zeros((4, 2)), np.zeros(4), np.zeros((2, 2)), np.zeros(2)), "at least 2 classes"),
        (
            lambda: linear_probe(np.zeros((3, 2)), np.array([0, 0, 1]), np.zeros((1, 2)), np.zeros(1)),
            "at least 2 per class",
        ),
    ],
)
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()
