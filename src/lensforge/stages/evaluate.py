"""evaluate stage: saved lenses + cached test activations -> metrics, diagnostics and plot tables.

The test rows are those ``prompts.overlap`` keeps (``overlap.labelled_rows``); next to the
ordinary scores, ``set/...`` and ``single_pole/...`` (``evaluation.overlap_scores``) score rows of
overlap synsets set-valued and the single-pole rows apart.

Reads the activation index, the vectors of the TEST rows only (validation enters only through
what each lens card recorded: the validation macro-F1 it was selected and graded on), and every
lens under ``models/lenses/<simplex>/seed_<seed>/``, rebuilt from its own card and weights and
checked against these activations (``models.load_checked_lens``): an untrained, substituted or
stale lens is an ``ArtifactError``, never scored.

Outputs (atomic; the metrics JSON last): ``metrics/evaluate/{confusion,f1_by_seed,calibration}.csv``
(see ``evaluation.add_plot_rows``), ``metrics/evaluate/detail.json`` (per seed, per pole
precision / recall / margins, confusion counts, Brier: versioned, not a DVC metric) and
``metrics/evaluate.json``: the headline keys ``<simplex>/<metric>`` a user compares between
trials (``evaluation.split_headline``) and ``diagnostics``, plain-words messages naming simplex
and seed (also logged as warnings).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from lensforge.activations import cache
from lensforge.core import artifacts, paths
from lensforge.core.errors import ArtifactError
from lensforge.core.params import Params
from lensforge.lenses import evaluation, models, overlap
from lensforge.lenses.hatcat import POLES

log = logging.getLogger(__name__)

PLOTS = {
    "confusion": paths.EVALUATE_CONFUSION,
    "f1_by_seed": paths.EVALUATE_F1_BY_SEED,
    "calibration": paths.EVALUATE_CALIBRATION,
}


def run(params: Params, *, root: Path) -> None:
    act_dir = paths.under(root, paths.ACTIVATIONS_DIR)
    index = overlap.labelled_rows(
        cache.read_index(act_dir),
        mode=params.prompts.overlap,
        primary=params.prompts.overlap_primary,
    )
    test = index[index["split"] == "test"]
    if test.empty:
        raise ArtifactError("the activation index has no test rows", path=act_dir, rule="test rows")
    manifest_sha256 = artifacts.file_sha256(act_dir / paths.ACTIVATION_MANIFEST_NAME)
    lenses_root = paths.under(root, paths.LENSES_DIR)
    lens_dirs = models.find_lenses(lenses_root, simplexes=list(pd.unique(test["simplex"])))

    summary: dict[str, object] = {}
    detail: dict[str, object] = {}
    diagnostics: list[str] = []
    plots: dict[str, list[pd.DataFrame]] = {name: [] for name in PLOTS}
    for simplex, seeds in tqdm(lens_dirs.items(), desc="evaluate lenses", unit="simplex"):
        rows = test[test["simplex"] == simplex]
        layer = models.shared_layer(seeds)
        x = cache.read_vectors(act_dir, rows, layer=layer)  # (n_test, d_model)
        y = rows["label"].to_numpy()  # (n_test,)
        runs, probs, messages = evaluation.score_seeds(
            seeds,
            x,
            y,
            simplex=simplex,
            config=params.evaluate,
            manifest_sha256=manifest_sha256,
            poles=rows["poles"].tolist(),
        )
        diagnostics += messages
        simplex_summary = evaluation.summarize_seeds(
            runs, class_names=POLES, config=params.evaluate
        )
        headline, rest = evaluation.split_headline(simplex_summary)
        summary.update({f"{simplex}/{key}": value for key, value in headline.items()})
        detail.update({f"{simplex}/{key}": value for key, value in rest.items()})
        evaluation.add_plot_rows(plots, simplex, y, probs, runs, n_bins=params.evaluate.ece_bins)
        log.info(evaluation.summary_line(simplex, simplex_summary))
    for message in diagnostics:
        log.warning(message)

    for name, frames in plots.items():
        artifacts.write_csv(paths.under(root, PLOTS[name]), pd.concat(frames, ignore_index=True))
    artifacts.write_json(paths.under(root, paths.EVALUATE_DETAIL), detail)
    artifacts.write_json(
        paths.under(root, paths.EVALUATE_METRICS), {**summary, "diagnostics": diagnostics}
    )
