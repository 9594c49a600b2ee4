"""Baselines scored beside the fine-tuned classifier, on exactly its train and test rows.

Per task, fitted on the train rows that carry the task's label and scored on the labelled test
rows (the rows the model is scored on):

- ``tfidf_logreg``: TF-IDF of word 1..n-grams + L2 logistic regression (scikit-learn);
- ``majority``: the task's most frequent train class for every row;
- ``domain_only`` (when items carry a domain): the most frequent train class of the row's domain
  (the overall majority for a domain with no labelled train row). A label that this predicts
  well is a label of the source, not of the text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lensforge.core import metrics
from lensforge.core.params import BaselinesParams


def scores(y_true: np.ndarray, y_pred: np.ndarray, *, class_names: Sequence[str]) -> dict:
    """Macro-F1, accuracy and per-class F1 (``<class>_f1``) of label ids."""
    per_class = metrics.per_class_scores(y_true, y_pred, n_classes=len(class_names))
    return {
        "macro_f1": float(np.mean(per_class["f1"])),
        "accuracy": metrics.accuracy_score(y_true, y_pred),
        **{f"{name}_f1": per_class["f1"][c] for c, name in enumerate(class_names)},
    }


def majority_class(train_y: np.ndarray, *, n_classes: int) -> int:
    """The most frequent class id (the lowest id on a tie)."""
    return int(np.bincount(train_y, minlength=n_classes).argmax())


def predict_majority(train_y: np.ndarray, n_test: int, *, n_classes: int) -> np.ndarray:
    return np.full(n_test, majority_class(train_y, n_classes=n_classes), dtype=np.int64)


def predict_domain_only(
    train_domains: Sequence[str],
    train_y: np.ndarray,
    test_domains: Sequence[str],
    *,
    n_classes: int,
) -> np.ndarray:
    """Most frequent train class of each test row's domain (module doc)."""
    fallback = majority_class(train_y, n_classes=n_classes)
    train_domains = np.asarray(train_domains, dtype=object)
    by_domain = {
        domain: majority_class(train_y[train_domains == domain], n_classes=n_classes)
        for domain in set(train_domains.tolist())
    }
    return np.array([by_domain.get(d, fallback) for d in test_domains], dtype=np.int64)


def predict_tfidf_logreg(
    train_texts: Sequence[str],
    train_y: np.ndarray,
    test_texts: Sequence[str],
    *,
    config: BaselinesParams,
) -> np.ndarray:
    """TF-IDF + logistic regression predictions for the test texts."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(
        ngram_range=(1, config.tfidf_ngram_max),
        min_df=min(config.tfidf_min_df, len(train_texts)),
        max_features=config.tfidf_max_features,
        sublinear_tf=True,
    )
    train_x = vectorizer.fit_transform(list(train_texts))  # (n_train, n_terms)
    if len(set(train_y.tolist())) == 1:
        return np.full(len(test_texts), int(train_y[0]), dtype=np.int64)
    model = LogisticRegression(C=config.logreg_c, max_iter=2000)
    model.fit(train_x, train_y)
    return model.predict(vectorizer.transform(list(test_texts))).astype(np.int64)


def evaluate_baselines(
    train: tuple[Sequence[str], Sequence[str], np.ndarray],
    test: tuple[Sequence[str], Sequence[str], np.ndarray],
    *,
    class_names: Sequence[str],
    config: BaselinesParams,
) -> dict[str, dict]:
    """Scores of every baseline for one task. ``train`` and ``test`` are (texts, domains, label
    ids) of the labelled rows; ``domain_only`` is left out when no row has a domain."""
    train_texts, train_domains, train_y = train
    test_texts, test_domains, test_y = test
    n_classes = len(class_names)
    predictions = {
        "tfidf_logreg": predict_tfidf_logreg(train_texts, train_y, test_texts, config=config),
        "majority": predict_majority(train_y, len(test_y), n_classes=n_classes),
    }
    if any(domain for domain in [*train_domains, *test_domains]):
        predictions["domain_only"] = predict_domain_only(
            train_domains, train_y, test_domains, n_classes=n_classes
        )
    return {
        name: scores(test_y, predicted, class_names=class_names)
        for name, predicted in predictions.items()
    }
