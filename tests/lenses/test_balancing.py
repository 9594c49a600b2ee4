"""Balancing arithmetic and row selection, against the balancing experiment's taste_development numbers."""

from __future__ import annotations

import pandas as pd
import pytest

from lensforge.core.errors import DataError
from lensforge.lenses import balancing
from lensforge.lenses.hatcat import POLES

SEED_000_SYNSETS = {"negative": 87, "neutral": 13, "positive": 88}


def _rows(k: dict[str, int], n_synsets: dict[str, int]) -> list[int]:
    return [k[pole] * n_synsets[pole] for pole in POLES]


def seed_000_index(*, prompts_per_synset: int = 40, neutral_prompts: int | None = None):
    """A train + held-out index with the balancing experiment's 87 / 13 / 88 train synsets and ranked prompts."""
    records = []
    for pole in POLES:
        n_prompts = neutral_prompts if pole == "neutral" and neutral_prompts else prompts_per_synset
        synsets = [("train", i) for i in range(SEED_000_SYNSETS[pole])]
        synsets += [(split, i) for split in ("validation", "test") for i in range(3)]
        for split, i in synsets:
            key = f"{pole}_{split}_{i}"
            for rank in range(n_prompts):
                records.append((pole, key, split, rank, "definitional"))
        for split in ("train", "validation", "test"):
            records.append((pole, f"experiential:{pole}:{split}", split, 0, "experiential"))
    index = pd.DataFrame(records, columns=["pole", "synset_key", "split", "rank", "kind"])
    index.insert(0, "simplex", "taste_development")
    index.insert(0, "prompt_id", [f"p{i}" for i in range(len(index))])
    index["label"] = index["pole"].map({p: i for i, p in enumerate(POLES)})
    index["poles"] = index["pole"]
    index["soft"] = False
    index["group"] = index["synset_key"]
    index["shard"] = "shard_r00_00000.safetensors"
    index["row"] = range(len(index))
    return index


def test_none_gives_seed_000_baseline_435_65_440():
    k = balancing.prompts_per_synset(SEED_000_SYNSETS, strategy="none", base_prompts=5)
    assert k == {"negative": 5, "neutral": 5, "positive": 5}
    assert _rows(k, SEED_000_SYNSETS) == [435, 65, 440]


def test_median_target_gives_neutral_34_prompts_per_synset_and_435_442_440_rows():
    k = balancing.prompts_per_synset(SEED_000_SYNSETS, strategy="median_target", base_prompts=5)
    assert k == {"negative": 5, "neutral": 34, "positive": 5}
    assert _rows(k, SEED_000_SYNSETS) == [435, 442, 440]


def test_downsample_min_gives_seed_000_experiment_2_counts_87_65_88():
    k = balancing.prompts_per_synset(SEED_000_SYNSETS, strategy="downsample_min", base_prompts=5)
    assert k == {"negative": 1, "neutral": 5, "positive": 1}
    assert _rows(k, SEED_000_SYNSETS) == [87, 65, 88]


def test_downsample_min_rounds_half_up_and_keeps_at_least_one_prompt():
    # min_rows = 1 synset x 5 = 5: negative 5 / 2 = 2.5 -> 3 (half-even rounding would give 2);
    # positive 5 / 20 = 0.25 -> 0, raised to 1 so every synset stays represented.
    k = balancing.prompts_per_synset(
        {"negative": 2, "neutral": 1, "positive": 20}, strategy="downsample_min", base_prompts=5
    )
    assert k == {"negative": 3, "neutral": 5, "positive": 1}


def test_class_weight_keeps_base_prompts_and_equalises_pole_weight_mass():
    k = balancing.prompts_per_synset(SEED_000_SYNSETS, strategy="class_weight", base_prompts=5)
    weights = balancing.class_weights(dict(zip(POLES, _rows(k, SEED_000_SYNSETS), strict=True)))
    assert weights == pytest.approx(
        {"negative": 940 / 1305, "neutral": 940 / 195, "positive": 940 / 1320}
    )
    masses = [weights[p] * n for p, n in zip(POLES, [435, 65, 440], strict=True)]
    assert masses == pytest.approx([940 / 3] * 3)


def test_unknown_strategy_is_rejected_with_its_name():
    with pytest.raises(ValueError, match="'oversample'"):
        balancing.prompts_per_synset(SEED_000_SYNSETS, strategy="oversample", base_prompts=5)


@pytest.mark.parametrize(
    ("strategy", "template_rows"),
    [
        ("none", [435, 65, 440]),
        ("downsample_min", [87, 65, 88]),
        ("median_target", [435, 442, 440]),
        ("class_weight", [435, 65, 440]),
    ],
)
def test_selected_rows_reproduce_seed_000_counts(strategy, template_rows):
    rows, summary = balancing.select_train_rows(seed_000_index(), strategy=strategy, base_prompts=5)
    counts = summary["taste_development"]
    assert [counts[p]["n_synsets"] for p in POLES] == [87, 13, 88]
    assert [counts[p]["n_template_rows"] for p in POLES] == template_rows
    assert [counts[p]["n_experiential_rows"] for p in POLES] == [1, 1, 1]
    assert [counts[p]["n_rows"] for p in POLES] == [n + 1 for n in template_rows]
    assert len(rows) == sum(template_rows) + 3
    assert counts["imbalance_ratio"] == pytest.approx(
        max(template_rows) / min(template_rows), rel=0.02
    )


@pytest.mark.parametrize("strategy", balancing.STRATEGIES)
def test_balance_never_selects_or_alters_validation_and_test_rows(strategy):
    index = seed_000_index()
    before = index.copy()

    rows, _ = balancing.select_train_rows(index, strategy=strategy, base_prompts=5)

    assert set(rows["split"]) == {"train"}
    held_out = index.loc[index["split"] != "train", "prompt_id"]
    assert not set(rows["prompt_id"]) & set(held_out)
    pd.testing.assert_frame_equal(index, before)


def test_selected_rows_are_a_rank_prefix_of_every_synset():
    rows, _ = balancing.select_train_rows(
        seed_000_index(), strategy="median_target", base_prompts=5
    )
    templates = rows[rows["kind"] != "experiential"]
    per_synset = templates.groupby(["pole", "synset_key"])["rank"].agg(["max", "count"])
    assert (per_synset["max"] + 1 == per_synset["count"]).all()
    assert set(per_synset.loc["neutral", "count"]) == {34}


def test_pool_too_small_names_simplex_pole_synset_and_numbers():
    index = seed_000_index(neutral_prompts=20)
    with pytest.raises(DataError) as excinfo:
        balancing.select_train_rows(index, strategy="median_target", base_prompts=5)
    message = str(excinfo.value)
    for part in (
        "'taste_development'",
        "'neutral'",
        "'neutral_train_",
        "has 20 prompts",
        "needs 34",
    ):
        assert part in message


def test_a_pole_without_train_synsets_is_a_data_error():
    index = seed_000_index()
    index = index[~((index["pole"] == "neutral") & (index["split"] == "train"))]
    with pytest.raises(DataError, match=r"no train synsets for pole\(s\) \['neutral'\]"):
        balancing.select_train_rows(index, strategy="none", base_prompts=5)


def test_class_weight_rows_carry_the_pole_weight():
    rows, summary = balancing.select_train_rows(
        seed_000_index(), strategy="class_weight", base_prompts=5
    )
    n_rows = {pole: summary["taste_development"][pole]["n_rows"] for pole in POLES}
    expected = balancing.class_weights(n_rows)
    for pole in POLES:
        assert rows.loc[rows["pole"] == pole, "weight"].to_numpy() == pytest.approx(expected[pole])
