"""Stage smoke tests of the adjudications branch: the bundled archives and a user's CSV with a
task the bundled data lacks, with a tiny random encoder."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pandas as pd
import pytest
import yaml
from accelerate.state import AcceleratorState
from click.testing import CliRunner

from lensforge.adjudication import sources, tasks
from lensforge.cli import main
from lensforge.core import artifacts, params, paths
from lensforge.core.errors import ArtifactError, DataError, ParamsError
from lensforge.stages import adjudicate, evaluate_adjudications, finetune, import_adjudications
from tests.helpers import tiny_encoder
from tests.helpers.adjudication_setup import (
    link_archives,
    stance_params,
    write_params,
    write_stance_csv,
)

tiny_encoder_dir = tiny_encoder.tiny_encoder_dir


def _run_branch(loaded, root) -> None:
    import_adjudications.run(loaded, root=root)
    adjudicate.run(loaded, root=root)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("LENSFORGE_THREADS", "1")  # a tiny model: one thread is fastest
            finetune.run(loaded, root=root)
    finally:
        AcceleratorState._reset_state(True)  # leave no process-wide Accelerate state behind
    evaluate_adjudications.run(loaded, root=root)


@pytest.fixture(scope="module")
def project(project_root, tiny_encoder_dir, tmp_path_factory):
    """A tmp project after import -> adjudicate -> finetune (two seeds) -> evaluate."""
    root = tmp_path_factory.mktemp("adjudications")
    link_archives(project_root, root)
    loaded = params.load(write_params(project_root, root, tiny_encoder_dir, seeds=[0, 1]))
    _run_branch(loaded, root)
    return root, loaded


@pytest.fixture(scope="module")
def stance_project(project_root, tiny_encoder_dir, tmp_path_factory):
    """A user's CSV project: one task (stance: against / none / favor), Dawid-Skene."""
    root = tmp_path_factory.mktemp("stance")
    params_path = write_params(project_root, root, tiny_encoder_dir)
    raw = stance_params(yaml.safe_load(params_path.read_text()))
    params_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    write_stance_csv(root)
    loaded = params.load(params_path)
    _run_branch(loaded, root)
    return root, loaded


def _json(path):
    return json.loads(path.read_text())


def test_import_writes_items_long_ratings_of_both_tasks_and_a_provenance_note(project):
    root, _ = project
    items = pd.read_csv(root / paths.ADJUDICATIONS_ITEMS, keep_default_na=False)
    ratings = pd.read_csv(root / paths.ADJUDICATIONS_RATINGS, keep_default_na=False)
    assert list(items.columns) == sources.ITEM_COLUMNS
    assert items["domain"].value_counts().to_dict()["debates"] == 80
    labelled = ratings[ratings["task"] == "polarization"]
    assert set(labelled["rater"]) == {sources.SOURCE_RATER}
    assert len(labelled) == 80 + 60
    note = (root / paths.ADJUDICATIONS_PROVENANCE).read_text()
    assert "MIT" in note and "Apache-2.0" in note and "adjudicate.tasks.polarization" in note


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
    assert set(report["alpha"]["sentiment"]) == {
        "all",
        "tweets",
        "movie_reviews",
        "nyt_editorials",
        "amazon_reviews",
    }
    assert 0.2 < report["alpha"]["sentiment"]["tweets"]["interval_alpha"] < 1.0
    assert report["changed_from_mean_threshold"] == {"sentiment": 0}
    assert tasks.read_task_classes(root / paths.ADJUDICATED_TASKS) == {
        "sentiment": ("negative", "neutral", "positive"),
        "polarization": ("non_polarized", "objective", "partisan"),
    }


def test_finetune_saves_one_model_and_curves_per_seed_and_the_spread(project):
    root, _ = project
    summary = _json(root / paths.FINETUNE_METRICS)
    assert summary["seeds"] == [0, 1] and summary["val_macro_f1"]["n"] == 2
    assert summary["val_macro_f1"]["std"] is not None
    for seed in (0, 1):
        card = _json(paths.adjudicator_dir(root, seed) / paths.ADJUDICATOR_CARD_NAME)
        assert card["training"]["seed"] == seed and card["training"]["n_processes"] == 1
        run = summary["runs"][f"seed_{seed}"]
        assert {"train/sentiment/loss", "train/polarization/weighted", "val/macro_f1"} <= set(
            run["last"]
        )
        curves = paths.finetune_live_dir(root, seed) / "plots" / "metrics"
        frame = pd.read_csv(curves / "val" / "macro_f1.tsv", sep="\t")
        assert frame["step"].tolist() == list(range(1, run["n_epochs"] + 1))
        assert frame["macro_f1"].iloc[run["best_epoch"] - 1] == pytest.approx(
            run["best"]["val/macro_f1"]
        )
    weights = [
        (paths.adjudicator_dir(root, s) / paths.ADJUDICATOR_WEIGHTS_NAME).read_bytes()
        for s in (0, 1)
    ]
    assert weights[0] != weights[1]


def test_finetune_checks_the_class_keys_of_its_params_before_training(project, tmp_path):
    root, loaded = project
    config = loaded.finetune
    losses = dict(config.losses)
    losses["polarization"] = dataclasses.replace(
        losses["polarization"], oversample_boosts={"objective": 3.0}
    )
    broken = dataclasses.replace(loaded, finetune=dataclasses.replace(config, losses=losses))
    (tmp_path / paths.ADJUDICATED_DIR).mkdir(parents=True)
    shutil.copy2(root / paths.ADJUDICATED_TASKS, tmp_path / paths.ADJUDICATED_TASKS)
    with pytest.raises(ParamsError, match="finetune.losses.polarization.oversample_boosts"):
        finetune.run(broken, root=tmp_path)  # no items table: the check comes first


def test_evaluate_reports_seed_spread_baselines_domains_and_plots(project):
    root, _ = project
    report = _json(root / paths.EVALUATE_ADJUDICATIONS_METRICS)
    assert report["seeds"] == ["seed_0", "seed_1"]
    sentiment = report["sentiment"]
    assert sentiment["macro_f1"] == pytest.approx(
        sum(report["runs"][s]["sentiment"]["macro_f1"] for s in ("seed_0", "seed_1")) / 2
    )
    assert sentiment["macro_f1_std"] is not None and sentiment["neutral"]["f1_std"] is not None
    assert sentiment["n_catastrophic_runs"] in (0, 1, 2)
    assert set(sentiment["baselines"]) == {"tfidf_logreg", "majority", "domain_only"}
    assert 0.0 <= sentiment["baselines"]["tfidf_logreg"]["neutral_f1"] <= 1.0
    assert set(sentiment["by_domain"]) <= {
        "tweets",
        "movie_reviews",
        "nyt_editorials",
        "amazon_reviews",
    }
    # The bundled polarization label comes from the source: the domain alone tells much of it.
    polarization = report["polarization"]
    domain_only = polarization["baselines"]["domain_only"]["macro_f1"]
    assert domain_only > polarization["baselines"]["majority"]["macro_f1"] + 0.2
    close = domain_only >= polarization["macro_f1"] - 0.05
    said = any(
        m.startswith("polarization: predicting from the domain alone")
        for m in report["diagnostics"]
    )
    assert said == close
    run = report["runs"]["seed_0"]
    assert len(run["polarization"]["offsets"]) == 3
    assert set(run["cross_tables"]["predicted_polarization_given_sentiment"]) == {
        "negative",
        "neutral",
        "positive",
    }
    confusion = pd.read_csv(paths.adjudication_confusion_path(root, "sentiment"))
    first = confusion[confusion["seed"] == "seed_0"]
    assert len(first) == sum(
        run["sentiment"][c]["support"] for c in ("negative", "neutral", "positive")
    )


def test_evaluate_refuses_to_score_without_trained_weights(project, tmp_path):
    root, loaded = project
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (paths.adjudicator_dir(copy, 1) / paths.ADJUDICATOR_WEIGHTS_NAME).unlink()
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
    ratings = pd.read_csv(ratings_path, dtype=str, keep_default_na=False)
    ratings.loc[0, "score"] = "9"
    source = ratings.index[ratings["task"] == "polarization"][0]
    ratings.loc[source, "label"] = "Libertarian"
    ratings.to_csv(ratings_path, index=False)
    with pytest.raises(DataError) as caught:
        adjudicate.run(loaded, root=copy)
    message = str(caught.value)
    first = f"{ratings.loc[0, 'item_id']}#{ratings.loc[0, 'rater']}#sentiment (line 2)"
    assert f"row {first}, rule score range" in message
    assert f"(line {source + 2}), rule class known" in message
    report = _json(copy / paths.ADJUDICATE_METRICS)["validation"]
    assert report["success"] is False and report["n_failures"] == 2
    result = CliRunner().invoke(main, ["--root", str(copy), "adjudicate"])
    assert result.exit_code == 2 and "score must be in [-4, 4]" in result.output


def test_a_users_stance_csv_runs_the_branch_with_dawid_skene(stance_project):
    root, _ = stance_project
    adjudicated = _json(root / paths.ADJUDICATE_METRICS)
    skills = adjudicated["rater_skills"]["stance"]
    assert skills["cy"] < skills["bob"] and skills["cy"] < skills["ann"]
    assert "stance" in adjudicated["alpha"]
    table = pd.read_csv(root / paths.ADJUDICATED_ITEMS, keep_default_na=False)
    assert {"stance", "stance_confidence"} <= set(table.columns)
    assert table["stance_confidence"].between(0, 1).all()
    report = _json(root / paths.EVALUATE_ADJUDICATIONS_METRICS)
    assert set(report["stance"]["baselines"]) == {"tfidf_logreg", "majority", "domain_only"}
    assert set(report["stance"]["by_domain"]) == {"forum", "tweets"}
    assert 0.0 <= report["stance"]["favor"]["f1"] <= 1.0
    assert report["stance"]["macro_f1_std"] is None  # one seed: no sample std
    assert paths.adjudication_confusion_path(root, "stance").is_file()


def _broken_stance_files(root) -> None:
    ratings_path = paths.under(root, paths.ADJUDICATIONS_USER_RATINGS)
    ratings = pd.read_csv(ratings_path, dtype=str, keep_default_na=False)
    extra = pd.DataFrame(
        [
            ("s0", "ann", "stance", "favor"),  # duplicate (s0, ann, stance)
            ("s1", "dee", "mood", "happy"),  # unknown task
            ("s2", "dee", "stance", "pro"),  # unknown class
            ("ghost", "ann", "stance", "none"),  # an item that is not in items.csv
        ],
        columns=ratings.columns,
    )
    pd.concat([ratings, extra], ignore_index=True).to_csv(ratings_path, index=False)
    items_path = paths.under(root, paths.ADJUDICATIONS_USER_ITEMS)
    items = pd.read_csv(items_path, dtype=str, keep_default_na=False)
    items.loc[3, "text"] = "   "
    items.to_csv(items_path, index=False)


def test_every_broken_rule_in_a_users_csv_is_named_and_nothing_is_imported(
    stance_project, tmp_path
):
    root, loaded = stance_project
    shutil.copy2(root / paths.PARAMS, tmp_path / paths.PARAMS)
    write_stance_csv(tmp_path, n_items=12)
    _broken_stance_files(tmp_path)
    result = CliRunner().invoke(main, ["--root", str(tmp_path), "import_adjudications"])
    assert result.exit_code == 2 and "rule task declared" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(DataError) as caught:
        import_adjudications.run(loaded, root=tmp_path)
    message = str(caught.value)
    for rule in (
        "one rating per item, rater and task",
        "task declared",
        "class known",
        "rated item exists",
        "text non-empty",
        "raters per item",
    ):
        assert f"rule {rule}" in message or rule in message, rule
    assert "ratings.csv, row s0#ann#stance (line 2)" in message
    assert not (tmp_path / paths.ADJUDICATIONS_RAW_DIR).exists()
    assert not (tmp_path / paths.IMPORT_ADJUDICATIONS_METRICS).exists()


def test_a_task_without_labelled_test_rows_ends_evaluation_with_a_named_data_error(
    stance_project, tmp_path
):
    root, loaded = stance_project
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    items = copy / paths.ADJUDICATED_ITEMS
    table = pd.read_csv(items, dtype=str, keep_default_na=False)
    table.loc[table["split"] == "test", "stance"] = ""
    table.to_csv(items, index=False)
    card_path = paths.adjudicator_dir(copy, 0) / paths.ADJUDICATOR_CARD_NAME
    card = _json(card_path)
    card["trained_on_sha256"] = artifacts.file_sha256(items)
    card_path.write_text(json.dumps(card))
    with pytest.raises(
        DataError, match=r"task 'stance' has no labelled test rows.*rule labelled test rows"
    ):
        evaluate_adjudications.run(loaded, root=copy)
