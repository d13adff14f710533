r"""Fitted scikit-learn tree models as plain arrays, so that policies on them save without pickle.

:func:`as_tree_ensemble` turns a fitted decision tree, random forest, extra-trees, gradient
boosting or histogram gradient boosting model into a :class:`TreeEnsembleModel`: the nodes of
all its trees in flat arrays, and how their leaves combine. A row reaches leaf :math:`\ell_t(x)`
of tree :math:`t` (left when :math:`x_{f} \le \theta`, or when :math:`x_f` is missing and the
node sends missing values left), and the model's raw score is

.. math::

    s(x) = b + w \sum_t v_{\ell_t(x)}

with the baseline :math:`b` (the boosting's initial prediction, 0 for forests), the tree weight
:math:`w` (the learning rate of gradient boosting, :math:`1/T` for a forest of :math:`T` trees,
1 for histogram gradient boosting, whose leaves hold the shrunk values) and the leaf values
:math:`v` (``(k,)`` each). The link maps :math:`s` to predictions: ``identity`` (regressors),
``logistic`` (:math:`P(c_1) = \sigma(s)`, binary boosting), ``softmax`` (multi-class boosting)
or ``probability`` (trees and forests of classifiers: :math:`s` already is the class
probabilities).

The conversion uses the trees' public arrays (``tree_.children_left``, ``tree_.feature``,
``tree_.threshold``, ``tree_.value``, ``tree_.missing_go_to_left``) and, for histogram gradient
boosting, its predictors' node records (``feature_idx``, ``num_threshold``, ``left``,
``right``, ``is_leaf``, ``value``, ``missing_go_to_left``) and baseline. It is checked: the
arrays must reproduce the estimator's predictions (``predict`` or ``predict_proba``) on the
training rows to ``1e-8``, else :func:`as_tree_ensemble` refuses and the estimator is kept in
memory only. Categorical splits of histogram gradient boosting, multi-output trees, a
non-constant ``init`` estimator and losses with another link are refused with the reason.

Saved arrays are input: :meth:`TreeEnsembleModel.from_arrays` checks their dtypes, shapes and
sizes, that every node index points forward into its own tree and every node but the roots has
exactly one parent (so each row reaches a leaf in fewer steps than its tree has nodes), and
that values are finite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

__all__ = [
    "TREE_LINKS",
    "TreeEnsembleModel",
    "as_tree_ensemble",
    "is_tree_ensemble",
    "link_probabilities",
]

TREE_LINKS: tuple[str, ...] = ("identity", "logistic", "softmax", "probability")
"""How a :class:`TreeEnsembleModel` maps its raw scores to predictions."""

MAX_NODES = 10_000_000
"""Most nodes (over all trees) a saved ensemble may hold: about 300 MB of arrays."""
MAX_TREES = 100_000
MAX_OUTPUTS = 1_000
MAX_INPUTS = 1_000_000
MAX_VALUES = 20_000_000
"""Most leaf-value cells (nodes × outputs)."""

_SINGLE_TREES = frozenset(
    {"DecisionTreeRegressor", "DecisionTreeClassifier", "ExtraTreeRegressor", "ExtraTreeClassifier"}
)
_FORESTS = frozenset(
    {
        "RandomForestRegressor",
        "RandomForestClassifier",
        "ExtraTreesRegressor",
        "ExtraTreesClassifier",
    }
)
_BOOSTING = frozenset({"GradientBoostingRegressor", "GradientBoostingClassifier"})
_HIST_BOOSTING = frozenset({"HistGradientBoostingRegressor", "HistGradientBoostingClassifier"})
_SUPPORTED = _SINGLE_TREES | _FORESTS | _BOOSTING | _HIST_BOOSTING
_IDENTITY_LOSSES = frozenset({"squared_error", "absolute_error", "huber", "quantile"})
_CHECK_TOLERANCE = 1e-8
_CHECK_ROWS = 2_000
_CHUNK_CELLS = 1 << 15  # (row, tree) pairs walked at once: they stay in cache

_INTEGER_ARRAYS = ("feature", "left", "right", "tree_offsets", "n_inputs")
_FLOAT_ARRAYS = ("threshold", "value", "baseline", "tree_weight", "class_values")


def link_probabilities(scores: np.ndarray, link: str) -> np.ndarray:
    """``(n, k)`` class probabilities from scores, by link (shared with the linear models).

    ``logistic``: two classes from one score column; ``softmax``: one column per class; any
    other link returns the scores.
    """
    if link == "logistic":
        p1 = 1.0 / (1.0 + np.exp(-scores[:, 0]))
        return np.stack([1.0 - p1, p1], axis=1)
    if link == "softmax":
        scores = scores - scores.max(axis=1, keepdims=True)
        e = np.exp(scores)
        return e / e.sum(axis=1, keepdims=True)
    return scores


@dataclass(frozen=True, eq=False)
class TreeEnsembleModel:
    r"""Trees of a fitted ensemble as flat arrays, with a vectorised predictor.

    Node indices are global (over all trees); tree :math:`t` holds nodes
    ``tree_offsets[t]:tree_offsets[t + 1]`` and its root is the first of them. Build one with
    :func:`as_tree_ensemble` or :meth:`from_arrays`, which check the arrays.

    Attributes:
        feature: ``(N,)`` input compared at each node (-1 at leaves).
        threshold: ``(N,)`` :math:`\theta`: a row goes left when its input is ``<=`` it (0 at
            leaves; may be infinite).
        left: ``(N,)`` left child (-1 at leaves).
        right: ``(N,)`` right child (-1 at leaves).
        missing_left: ``(N,)`` whether a missing (NaN) input goes left.
        value: ``(N, k)`` :math:`v`, read at the leaves.
        tree_offsets: ``(T + 1,)`` first node of each tree, then ``N``.
        baseline: ``(k,)`` :math:`b`.
        class_values: ``(k,)`` class values (two for ``logistic``, none for ``identity``).
        tree_weight: :math:`w`.
        n_inputs: Number of inputs.
        float32_inputs: Compare the inputs rounded to float32, as scikit-learn's trees do.
        link: One of :data:`TREE_LINKS`.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    missing_left: np.ndarray
    value: np.ndarray
    tree_offsets: np.ndarray
    baseline: np.ndarray
    class_values: np.ndarray
    tree_weight: float = 1.0
    n_inputs: int = 1
    float32_inputs: bool = False
    link: str = "identity"

    saveable = True
    kind = "tree"
    array_names: tuple[str, ...] = (
        "feature",
        "threshold",
        "left",
        "right",
        "missing_left",
        "value",
        "tree_offsets",
        "baseline",
        "class_values",
        "tree_weight",
        "n_inputs",
        "float32_inputs",
    )

    @property
    def n_trees(self) -> int:
        """Number of trees."""
        return self.tree_offsets.size - 1

    @property
    def n_nodes(self) -> int:
        """Number of nodes over all trees."""
        return self.feature.size

    # ------------------------------------------------------------------ prediction
    @cached_property
    def _children(self) -> np.ndarray:
        """``(2 N,)`` left then right child of each node: ``2 i + go_right`` indexes it."""
        return np.stack([self.left, self.right], axis=1).ravel().astype(np.intp)

    @cached_property
    def _features(self) -> np.ndarray:
        return self.feature.astype(np.intp)

    def leaves(self, inputs: np.ndarray) -> np.ndarray:
        """``(n, T)`` the leaf each row reaches in each tree (global node index).

        Raises:
            ValueError: If ``inputs`` does not have ``n_inputs`` columns.
        """
        x = self._prepared(inputs)
        chunk = max(1, _CHUNK_CELLS // self.n_trees)
        walks = [self._walk(x[start : start + chunk]) for start in range(0, x.shape[0], chunk)]
        return np.concatenate(walks or [np.zeros(0, np.intp)]).reshape(x.shape[0], self.n_trees)

    def raw_scores(self, inputs: np.ndarray) -> np.ndarray:
        r"""``(n, k)`` :math:`s(x) = b + w \sum_t v_{\ell_t(x)}`.

        Raises:
            ValueError: If ``inputs`` does not have ``n_inputs`` columns.
        """
        x = self._prepared(inputs)
        n, k = x.shape[0], self.value.shape[1]
        out = np.empty((n, k))
        chunk = max(1, _CHUNK_CELLS // (self.n_trees * k))
        for start in range(0, n, chunk):
            rows = x[start : start + chunk]
            leaf_values = self.value[self._walk(rows)].reshape(rows.shape[0], self.n_trees, k)
            out[start : start + chunk] = self.baseline + self.tree_weight * leaf_values.sum(axis=1)
        return out

    def _prepared(self, inputs: np.ndarray) -> np.ndarray:
        """``inputs`` as a C-ordered float32 or float64 array of ``n_inputs`` columns."""
        inputs = np.asarray(inputs)
        if inputs.ndim != 2 or inputs.shape[1] != self.n_inputs:
            raise ValueError(
                f"the tree ensemble takes {self.n_inputs} inputs, got shape {inputs.shape}"
            )
        return np.ascontiguousarray(inputs, dtype=np.float32 if self.float32_inputs else np.float64)

    def _walk(self, x: np.ndarray) -> np.ndarray:
        """``(m T,)`` leaf of every (row, tree) pair of the prepared rows ``x``, row-major.

        Moves every pair down one level per step, all pairs at once, and drops the pairs that
        reached a leaf: the loop runs as many times as the deepest path is long. The test is
        scikit-learn's: a missing input follows ``missing_left``, else left when ``<=``
        the threshold. Rows come in chunks of :data:`_CHUNK_CELLS` pairs, which stay in cache.
        """
        n_trees = self.n_trees
        features, children = self._features, self._children
        node = np.tile(self.tree_offsets[:-1].astype(np.intp), x.shape[0])
        row_start = np.repeat(np.arange(x.shape[0], dtype=np.intp) * x.shape[1], n_trees)
        flat = x.ravel()
        active = np.flatnonzero(features.take(node) >= 0)
        while active.size:
            current = node.take(active)
            values = flat.take(row_start.take(active) + features.take(current))
            go_right = ~(values <= self.threshold.take(current))
            missing = np.isnan(values)
            if missing.any():
                go_right = np.where(missing, ~self.missing_left.take(current), go_right)
            following = children.take(2 * current + go_right)
            node[active] = following
            active = active[features.take(following) >= 0]
        return node

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """``(n, k)`` class probabilities (``(n, 2)`` for ``logistic``).

        Raises:
            ValueError: For a regressor (``identity``).
        """
        if self.link == "identity":
            raise ValueError("a regressor has no class probabilities")
        return link_probabilities(self.raw_scores(inputs), self.link)

    def expected(self, inputs: np.ndarray) -> np.ndarray:
        """``(n,)`` prediction (regressor) or expected class value (classifier)."""
        if self.link == "identity":
            return self.raw_scores(inputs)[:, 0]
        return self.probabilities(inputs) @ self.class_values

    # ------------------------------------------------------------------ arrays
    def arrays(self) -> dict[str, np.ndarray]:
        """The ensemble by name (what ``state.npz`` stores); scalars as 0-d arrays."""
        out = {name: getattr(self, name) for name in self.array_names[:9]}
        out["tree_weight"] = np.array(self.tree_weight, dtype=np.float64)
        out["n_inputs"] = np.array(self.n_inputs, dtype=np.int64)
        out["float32_inputs"] = np.array(self.float32_inputs, dtype=np.bool_)
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], link: str) -> TreeEnsembleModel:
        """Rebuild from :meth:`arrays` and the link, checking every array.

        Raises:
            ValueError: Naming the array that is missing, of the wrong dtype or shape, too
                large, not finite, or whose node indices do not form trees.
        """
        if link not in TREE_LINKS:
            raise ValueError(f"unknown link {link!r}; expected one of {', '.join(TREE_LINKS)}")
        missing = [name for name in cls.array_names if name not in arrays]
        if missing:
            raise ValueError(f"missing arrays {', '.join(missing)}")
        n = np.asarray(arrays["feature"]).size
        if not 1 <= n <= MAX_NODES:  # before any copy of an absurd array
            raise ValueError(f"array 'feature' must hold 1 to {MAX_NODES:,} nodes, got {n:,}")
        for name in cls.array_names:
            if np.asarray(arrays[name]).size > MAX_VALUES:
                raise ValueError(f"array {name!r} holds more than {MAX_VALUES:,} values")
        values = {name: _typed(name, np.asarray(arrays[name])) for name in cls.array_names}
        for name in ("tree_weight", "n_inputs", "float32_inputs"):
            if values[name].shape != ():
                raise ValueError(f"array {name!r} must be a scalar, got shape {values[name].shape}")
        model = cls(
            **{name: values[name] for name in cls.array_names[:9]},
            tree_weight=float(values["tree_weight"]),
            n_inputs=int(values["n_inputs"]),
            float32_inputs=bool(values["float32_inputs"]),
            link=link,
        )
        _check_arrays(model)
        return model


def _typed(name: str, array: np.ndarray) -> np.ndarray:
    """``array`` in the canonical dtype of ``name``; refuses a dtype that would change values.

    Raises:
        ValueError: If an index array is not integer, a value array not numeric, or the flags
            not boolean (or 0/1).
    """
    kind = array.dtype.kind
    if name in _INTEGER_ARRAYS:
        if kind not in "iu":
            raise ValueError(f"array {name!r} must hold integers, got dtype {array.dtype}")
        if array.size and (array.min() < -1 or array.max() > np.iinfo(np.int64).max // 2):
            raise ValueError(f"array {name!r} holds an index out of range")
        return array.astype(np.int64)
    if name in _FLOAT_ARRAYS:
        if kind not in "biuf":
            raise ValueError(f"array {name!r} must hold numbers, got dtype {array.dtype}")
        return array.astype(np.float64)
    if kind not in "biu" or (array.size and not np.isin(array, (0, 1)).all()):
        raise ValueError(f"array {name!r} must hold booleans, got dtype {array.dtype}")
    return array.astype(np.bool_)


def _check_arrays(model: TreeEnsembleModel) -> None:
    """Check the sizes, shapes, values and tree structure of ``model``'s arrays.

    Raises:
        ValueError: Naming the array at fault.
    """
    n = model.feature.shape[0] if model.feature.ndim == 1 else -1
    if not 1 <= n <= MAX_NODES:
        raise ValueError(f"array 'feature' must hold 1 to {MAX_NODES:,} nodes, got {n:,}")
    for name in ("threshold", "left", "right", "missing_left"):
        if getattr(model, name).shape != (n,):
            raise ValueError(f"array {name!r} must have shape ({n},)")
    value = model.value
    k = value.shape[1] if value.ndim == 2 and value.shape[0] == n else -1
    if not 1 <= k <= MAX_OUTPUTS or value.size > MAX_VALUES:
        raise ValueError(
            f"array 'value' must have shape ({n}, k) with 1 <= k <= {MAX_OUTPUTS} and at most "
            f"{MAX_VALUES:,} cells, got {value.shape}"
        )
    if model.baseline.shape != (k,):
        raise ValueError(f"array 'baseline' must have shape ({k},)")
    n_classes = {"identity": 0, "logistic": 2, "softmax": k, "probability": k}[model.link]
    if model.class_values.shape != (n_classes,) or (model.link == "logistic" and k != 1):
        raise ValueError(f"array 'class_values' does not fit a {model.link} model with {k} outputs")
    if model.link in ("softmax", "probability") and k < 2:
        raise ValueError(f"a {model.link} model needs two classes or more, got {k}")
    if model.link == "identity" and k != 1:
        raise ValueError(f"a regressor has one output, array 'value' has {k}")
    if not 1 <= model.n_inputs <= MAX_INPUTS:
        raise ValueError(f"array 'n_inputs' must be in [1, {MAX_INPUTS:,}], got {model.n_inputs}")
    for name in ("value", "baseline", "class_values"):
        if not np.isfinite(getattr(model, name)).all():
            raise ValueError(f"array {name!r} holds non-finite values")
    if not np.isfinite(model.tree_weight):
        raise ValueError("array 'tree_weight' is not finite")
    _check_structure(model)


def _check_structure(model: TreeEnsembleModel) -> None:
    """Check that the node indices form ``T`` trees whose children follow their parents.

    Children pointing forward inside their own tree mean a row walks down in fewer steps than
    the tree has nodes; every node but the roots being a child exactly once means the arrays
    are trees (no node shared or orphaned).

    Raises:
        ValueError: Naming the array at fault.
    """
    n = model.n_nodes
    offsets = model.tree_offsets
    n_trees = offsets.size - 1
    if offsets.ndim != 1 or not 1 <= n_trees <= MAX_TREES:
        raise ValueError(f"array 'tree_offsets' must hold 2 to {MAX_TREES + 1:,} entries")
    if offsets[0] != 0 or offsets[-1] != n or not (np.diff(offsets) > 0).all():
        raise ValueError(f"array 'tree_offsets' must rise strictly from 0 to {n}")
    leaf = model.feature < 0
    if not ((model.left < 0) == leaf).all() or not ((model.right < 0) == leaf).all():
        raise ValueError("arrays 'left' and 'right' must be -1 exactly at the leaves (feature -1)")
    if model.feature.max() >= model.n_inputs:
        raise ValueError(f"array 'feature' names an input beyond the {model.n_inputs} inputs")
    internal = np.flatnonzero(~leaf)
    if np.isnan(model.threshold[internal]).any():
        raise ValueError("array 'threshold' holds NaN")
    tree_end = offsets[np.searchsorted(offsets, internal, side="right")]
    for name in ("left", "right"):
        child = getattr(model, name)[internal]
        if not ((child > internal) & (child < tree_end)).all():
            raise ValueError(f"array {name!r}: a child outside its tree or not after its parent")
    parents = np.bincount(
        np.concatenate([model.left[internal], model.right[internal]]), minlength=n
    )
    expected = np.ones(n, dtype=np.int64)
    expected[offsets[:-1]] = 0
    if not np.array_equal(parents, expected):
        raise ValueError("arrays 'left' and 'right' do not form trees (a node with 0 or 2 parents)")


# ---------------------------------------------------------------------------- conversion
def is_tree_ensemble(estimator: Any) -> bool:
    """Whether ``estimator`` is a scikit-learn tree model that :func:`as_tree_ensemble` knows."""
    kind = type(estimator)
    return kind.__name__ in _SUPPORTED and kind.__module__.startswith("sklearn.")


def as_tree_ensemble(estimator: Any, inputs: np.ndarray) -> TreeEnsembleModel:
    """The fitted tree model ``estimator`` as a :class:`TreeEnsembleModel`, checked on ``inputs``.

    Args:
        estimator: A fitted scikit-learn tree model (:func:`is_tree_ensemble`).
        inputs: ``(n, d)`` rows it was fitted on; the arrays must reproduce its predictions on
            (the first 2,000 of) them.

    Raises:
        ValueError: Saying why the estimator cannot be converted: an unsupported kind or
            setting (categorical splits, multi-output, non-numeric classes, a loss with another
            link, a non-constant ``init``), too many nodes, or predictions not reproduced.
    """
    name = type(estimator).__name__
    if not is_tree_ensemble(estimator):
        raise ValueError(f"{name} is not a supported scikit-learn tree model")
    d = np.asarray(inputs).shape[1]
    try:
        if name in _HIST_BOOSTING:
            model = _from_hist_boosting(estimator, d)
        elif name in _BOOSTING:
            model = _from_boosting(estimator, inputs, d)
        else:
            trees = [estimator] if name in _SINGLE_TREES else list(estimator.estimators_)
            model = _from_trees(estimator, trees, d)
    except (AttributeError, KeyError, IndexError, TypeError) as exc:
        # Another scikit-learn version may lay its fitted trees out otherwise: keep the estimator.
        raise ValueError(
            f"its fitted trees are not laid out as recenv reads them ({exc!r})"
        ) from None
    _check_arrays(model)
    _check_reproduces(model, estimator, inputs, name)
    return model


def _classes(estimator: Any) -> np.ndarray:
    """The classifier's classes as floats.

    Raises:
        ValueError: If they are not numbers.
    """
    classes = np.asarray(estimator.classes_)
    if classes.dtype.kind not in "biuf":
        raise ValueError(f"its classes are not numbers ({classes.dtype})")
    return classes.astype(np.float64)


def _tree_arrays(tree: Any, value: np.ndarray) -> dict[str, np.ndarray]:
    """One scikit-learn ``tree_`` as local arrays, with leaf values ``value`` ``(N, k)``."""
    left = np.asarray(tree.children_left, dtype=np.int64)
    leaf = left < 0
    missing = getattr(tree, "missing_go_to_left", None)  # scikit-learn >= 1.3
    return {
        "feature": np.where(leaf, -1, np.asarray(tree.feature, dtype=np.int64)),
        "threshold": np.where(leaf, 0.0, np.asarray(tree.threshold, dtype=np.float64)),
        "left": np.where(leaf, -1, left),
        "right": np.where(leaf, -1, np.asarray(tree.children_right, dtype=np.int64)),
        "missing_left": (
            np.zeros(leaf.size, dtype=np.bool_)
            if missing is None
            else np.asarray(missing).astype(np.bool_) & ~leaf
        ),
        "value": value,
    }


def _joined(
    parts: Sequence[Mapping[str, np.ndarray]],
    baseline: np.ndarray,
    class_values: np.ndarray,
    *,
    tree_weight: float,
    n_inputs: int,
    float32_inputs: bool,
    link: str,
) -> TreeEnsembleModel:
    """One model from per-tree arrays with local node indices.

    Raises:
        ValueError: If the trees hold more than :data:`MAX_NODES` nodes together.
    """
    sizes = np.array([part["feature"].size for part in parts], dtype=np.int64)
    if sizes.sum() > MAX_NODES or len(parts) > MAX_TREES:
        raise ValueError(
            f"{len(parts):,} trees of {int(sizes.sum()):,} nodes: more than recenv saves "
            f"({MAX_TREES:,} trees, {MAX_NODES:,} nodes)"
        )
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    joined: dict[str, np.ndarray] = {}
    for name in ("feature", "threshold", "missing_left", "value"):
        joined[name] = np.concatenate([part[name] for part in parts])
    for name in ("left", "right"):
        joined[name] = np.concatenate(
            [np.where(p[name] >= 0, p[name] + o, -1) for p, o in zip(parts, offsets, strict=False)]
        )
    return TreeEnsembleModel(
        tree_offsets=offsets,
        baseline=np.asarray(baseline, dtype=np.float64),
        class_values=class_values,
        tree_weight=float(tree_weight),
        n_inputs=n_inputs,
        float32_inputs=float32_inputs,
        link=link,
        **joined,
    )


def _single_output(estimator: Any) -> None:
    if getattr(estimator, "n_outputs_", 1) != 1:
        raise ValueError(f"it has {estimator.n_outputs_} outputs; recenv saves one")


def _from_trees(estimator: Any, trees: Sequence[Any], d: int) -> TreeEnsembleModel:
    """A decision tree, or a forest averaging its trees' predictions (weight ``1 / T``)."""
    _single_output(estimator)
    classifier = hasattr(estimator, "predict_proba")
    parts = []
    for tree in trees:
        raw = np.asarray(tree.tree_.value, dtype=np.float64)[:, 0, :]
        if classifier:
            # As DecisionTreeClassifier.predict_proba: each leaf's class weights, normalised.
            raw = raw[:, : estimator.n_classes_]
            total = raw.sum(axis=1, keepdims=True)
            raw = raw / np.where(total == 0.0, 1.0, total)
        parts.append(_tree_arrays(tree.tree_, raw[:, :1] if not classifier else raw))
    classes = _classes(estimator) if classifier else np.zeros(0)
    k = parts[0]["value"].shape[1]
    return _joined(
        parts,
        np.zeros(k),
        classes,
        tree_weight=1.0 / len(trees),
        n_inputs=d,
        float32_inputs=True,
        link="probability" if classifier else "identity",
    )


def _from_boosting(estimator: Any, inputs: np.ndarray, d: int) -> TreeEnsembleModel:
    """Gradient boosting: a constant baseline plus the learning rate times every stage's trees."""
    classifier = hasattr(estimator, "predict_proba")
    if classifier and estimator.loss != "log_loss":
        raise ValueError(f"its loss {estimator.loss!r} is not the log loss")
    if not classifier and estimator.loss not in _IDENTITY_LOSSES:
        raise ValueError(f"its loss {estimator.loss!r} has no identity link")
    init = estimator.init_
    if not (isinstance(init, str) and init == "zero") and type(init).__name__ not in (
        "DummyRegressor",
        "DummyClassifier",
    ):
        raise ValueError(f"its init estimator {type(init).__name__} is not a constant")
    # The initial raw prediction of a constant init estimator, for one row (the same for all).
    baseline = np.asarray(estimator._raw_predict_init(inputs[:1]), dtype=np.float64)[0]
    stages = np.asarray(estimator.estimators_)
    k = stages.shape[1]
    parts = []
    for stage in stages:
        for column, tree in enumerate(stage):
            value = np.zeros((tree.tree_.node_count, k))
            value[:, column] = np.asarray(tree.tree_.value, dtype=np.float64)[:, 0, 0]
            parts.append(_tree_arrays(tree.tree_, value))
    classes = _classes(estimator) if classifier else np.zeros(0)
    link = "identity" if not classifier else "logistic" if k == 1 else "softmax"
    return _joined(
        parts,
        baseline,
        classes,
        tree_weight=float(estimator.learning_rate),
        n_inputs=d,
        float32_inputs=True,
        link=link,
    )


def _from_hist_boosting(estimator: Any, d: int) -> TreeEnsembleModel:
    """Histogram gradient boosting: its baseline plus every iteration's (shrunk) trees."""
    classifier = hasattr(estimator, "predict_proba")
    if classifier and estimator.loss != "log_loss":
        raise ValueError(f"its loss {estimator.loss!r} is not the log loss")
    if not classifier and estimator.loss not in _IDENTITY_LOSSES:
        raise ValueError(f"its loss {estimator.loss!r} has no identity link")
    categorical = getattr(estimator, "is_categorical_", None)
    if categorical is not None and np.asarray(categorical).any():
        raise ValueError(
            "it has categorical features, whose splits need category bitsets recenv does not "
            "save; one-hot encode them instead"
        )
    k = int(estimator.n_trees_per_iteration_)
    parts = []
    for iteration in estimator._predictors:
        for column, predictor in enumerate(iteration):
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise ValueError("it has categorical splits (category bitsets are not saved)")
            leaf = nodes["is_leaf"].astype(np.bool_)
            value = np.zeros((nodes.size, k))
            value[:, column] = nodes["value"]
            parts.append(
                {
                    "feature": np.where(leaf, -1, nodes["feature_idx"].astype(np.int64)),
                    "threshold": np.where(leaf, 0.0, nodes["num_threshold"].astype(np.float64)),
                    "left": np.where(leaf, -1, nodes["left"].astype(np.int64)),
                    "right": np.where(leaf, -1, nodes["right"].astype(np.int64)),
                    "missing_left": nodes["missing_go_to_left"].astype(np.bool_) & ~leaf,
                    "value": value,
                }
            )
    classes = _classes(estimator) if classifier else np.zeros(0)
    link = "identity" if not classifier else "logistic" if k == 1 else "softmax"
    baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64).reshape(-1)
    return _joined(
        parts, baseline, classes, tree_weight=1.0, n_inputs=d, float32_inputs=False, link=link
    )


def _check_reproduces(
    model: TreeEnsembleModel, estimator: Any, inputs: np.ndarray, name: str
) -> None:
    """Refuse ``model`` unless it predicts as ``estimator`` on the first rows of ``inputs``.

    Raises:
        ValueError: With the largest difference found.
    """
    check = np.asarray(inputs)[:_CHECK_ROWS]
    if model.link == "identity":
        got = model.expected(check)
        want = np.asarray(estimator.predict(check), dtype=np.float64)
        tolerance = _CHECK_TOLERANCE * (1.0 + np.abs(want).max(initial=0.0))
    else:
        got = model.probabilities(check)
        want = np.asarray(estimator.predict_proba(check), dtype=np.float64)
        tolerance = _CHECK_TOLERANCE
    if got.shape != want.shape:
        raise ValueError(f"its arrays predict shape {got.shape}, {name} {want.shape}")
    gap = float(np.abs(got - want).max(initial=0.0))
    if not gap <= tolerance:
        raise ValueError(
            f"its arrays do not reproduce the {name}'s predictions (difference {gap:.3g})"
        )
