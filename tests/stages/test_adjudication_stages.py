"""Stage smoke tests of the adjudications branch on the real archives with a tiny random encoder."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pandas as pd
import pytest
from accelerate.state import AcceleratorState
from click.testing import CliRunner

from lensforge.adjudication import sources
from lensforge.cli import main
from lensforge.core import params, paths
from lensforge.core.errors import ArtifactError, DataError, ParamsError
from lensforge.stages import adjudicate, evaluate_adjudications, finetune, import_adjudications
from tests.helpers import tiny_encoder
from tests.helpers.adjudication_setup import link_archives, write_params

tiny_encoder_dir = tiny_encoder.tiny_encoder_dir


@pytest.fixture(scope="module")
def project(project_root, tiny_encoder_dir, tmp_path_factory):
    """A tmp project after import -> adjudicate -> finetune -> evaluate (run once per module)."""
    root = tmp_path_factory.mktemp("adjudications")
    link_archives(project_root, root)
    loaded = params.load(write_params(project_root, root, tiny_encoder_dir))
    import_adjudications.run(loaded, root=root)
    adjudicate.run(loaded, root=root)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("LENSFORGE_THREADS", "1")  # a tiny model: one thread is fastest
            finetune.run(loaded, root=root)
    finally:
        AcceleratorState._reset_state(True)  # leave no process-wide Accelerate state behind
    evaluate_adjudications.run(loaded, root=root)
    return root, loaded


def _json(path):
    return json.loads(path.read_text())


def test_import_writes_items_long_ratings_and_a_provenance_note(project):
    root, _ = project
    items = pd.read_csv(root / paths.ADJUDICATIONS_ITEMS, keep_default_na=False)
    ratings = pd.read_csv(root / paths.ADJUDICATIONS_RATINGS)
    assert items["domain"].value_counts().to_dict()["debates"] == 80
    assert set(ratings["item_id"]) == set(items.loc[items["source_label"] == "", "item_id"])
    note = (root / paths.ADJUDICATIONS_PROVENANCE).read_text()
    assert "MIT" in note and "Apache-2.0" in note and "| debates | Moderator | objective |" in note


def test_adjudicate_labels_each_task_only_where_the_source_has_it(project):
    root, _ = project
    table = pd.read_csv(root / paths.ADJUDICATED_ITEMS, keep_default_na=False)
    rated = table["domain"].isin(["tweets", "movie_reviews", "nyt_editorials", "amazon_reviews"])
    assert (table.loc[rated, "polarization"] == "").all()
    assert (table.loc[~rated, "sentiment"] == "").all()
    assert table.groupby("split_group")["split"].nunique().max() == 1
    normalised = table["text"].map(sources.normalise_text)
    assert table.groupby(normalised)["split"].nunique().max() == 1
    report = _json(root / paths.ADJUDICATE_METRICS)
    assert report["cross_split_identical_texts"] == 0
    assert report["validation"]["success"] is True
    assert set(report["alpha"]) == {"tweets", "movie_reviews", "nyt_editorials", "amazon_reviews"}
    assert 0.2 < report["alpha"]["tweets"]["interval_alpha"] < 1.0


def test_finetune_saves_weights_card_metrics_and_curves(project):
    root, _ = project
    card = _json(root / paths.ADJUDICATOR_DIR / paths.ADJUDICATOR_CARD_NAME)
    assert card["training"]["n_processes"] == 1
    assert card["trained_on_sha256"]
    summary = _json(root / paths.FINETUNE_METRICS)
    assert {
        "train/sentiment/loss",
        "train/polarization/weighted",
        "val/macro_f1",
        "grad_norm",
    } <= set(summary["last"])
    curves = sorted((root / paths.FINETUNE_LIVE_DIR / "plots" / "metrics").rglob("*.tsv"))
    names = {
        str(c.relative_to(root / paths.FINETUNE_LIVE_DIR / "plots" / "metrics")) for c in curves
    }
    assert {"val/macro_f1.tsv", "train/total.tsv", "grad_norm.tsv"} <= names
    for curve in curves:  # one row per epoch, the step is the 1-based epoch
        frame = pd.read_csv(curve, sep="\t")
        assert frame["step"].tolist() == list(range(1, summary["n_epochs"] + 1)), curve
    best = pd.read_csv(
        root / paths.FINETUNE_LIVE_DIR / "plots" / "metrics" / "val" / "macro_f1.tsv", sep="\t"
    )
    assert best["macro_f1"].iloc[summary["best_epoch"] - 1] == pytest.approx(
        summary["best"]["val/macro_f1"]
    )


def test_finetune_checks_the_class_keys_of_its_params_before_anything_else(project, tmp_path):
    _, loaded = project
    config = loaded.finetune
    boosts = dataclasses.replace(config.oversample, polarization={"objective": 3.0})
    broken = dataclasses.replace(loaded, finetune=dataclasses.replace(config, oversample=boosts))
    with pytest.raises(ParamsError, match="finetune.oversample.polarization"):
        finetune.run(broken, root=tmp_path)  # an empty folder: the check comes first


def test_evaluate_reports_per_class_f1_tuned_offsets_cross_tables_and_plots(project):
    root, _ = project
    report = _json(root / paths.EVALUATE_ADJUDICATIONS_METRICS)
    assert set(report["sentiment"]["neutral"]) == {"precision", "recall", "f1", "support"}
    assert len(report["polarization"]["offsets"]) == 3
    assert "objective_f1" in report["polarization"]["tuned"]
    assert set(report["cross_tables"]["predicted_polarization_given_sentiment"]) == {
        "negative",
        "neutral",
        "positive",
    }
    confusion = pd.read_csv(root / paths.EVALUATE_ADJUDICATIONS_CONFUSION["sentiment"])
    assert len(confusion) == report["sentiment"]["neutral"]["support"] + sum(
        report["sentiment"][c]["support"] for c in ("negative", "positive")
    )


def test_evaluate_refuses_to_score_without_trained_weights(project, tmp_path):
    root, loaded = project
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (copy / paths.ADJUDICATOR_DIR / paths.ADJUDICATOR_WEIGHTS_NAME).unlink()
    with pytest.raises(ArtifactError, match="refusing to score an untrained model"):
        evaluate_adjudications.run(loaded, root=copy)
    shutil.rmtree(copy / paths.ADJUDICATOR_DIR)
    result = CliRunner().invoke(main, ["--root", str(copy), "evaluate_adjudications"])
    assert result.exit_code == 2 and "trained weights not found" in result.output


def test_evaluate_refuses_a_model_trained_on_other_items(project, tmp_path):
    root, loaded = project
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    items = copy / paths.ADJUDICATED_ITEMS
    items.write_text(items.read_text().replace("train", "validation", 1))
    with pytest.raises(ArtifactError, match="trained on other adjudicated items"):
        evaluate_adjudications.run(loaded, root=copy)


def test_bad_raw_input_stops_adjudicate_with_file_row_and_rule(project, tmp_path):
    root, loaded = project
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    ratings_path = copy / paths.ADJUDICATIONS_RATINGS
    ratings = pd.read_csv(ratings_path, dtype={"item_id": str})
    ratings.loc[0, "score"] = 9
    ratings.to_csv(ratings_path, index=False)
    items_path = copy / paths.ADJUDICATIONS_ITEMS
    items = pd.read_csv(items_path, dtype=str, keep_default_na=False)
    debate = items.index[items["domain"] == "debates"][0]
    items.loc[debate, "source_label"] = "Libertarian"
    items.to_csv(items_path, index=False)
    with pytest.raises(DataError) as caught:
        adjudicate.run(loaded, root=copy)
    message = str(caught.value)
    assert f"row {ratings.loc[0, 'item_id']}#{ratings.loc[0, 'rater']}, rule score range" in message
    assert f"row {items.loc[debate, 'item_id']}, rule polarization mapping" in message
    report = _json(copy / paths.ADJUDICATE_METRICS)["validation"]
    assert report["success"] is False and report["n_failures"] == 2
    result = CliRunner().invoke(main, ["--root", str(copy), "adjudicate"])
    assert result.exit_code == 2 and "score must be in [-4, 4]" in result.output
