"""``lensforge.concepts.prompts``: ranked concept prompts, the grouped split, negatives."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from lensforge.concepts import pack, prompts
from lensforge.core.errors import DataError
from lensforge.core.splits import SPLITS
from lensforge.core.templates import kind_schedule
from tests.concepts.test_pack import REAL_ARCHIVE, concept_doc

FRACTIONS = (0.6, 0.2, 0.2)


def _concepts(spec: list[tuple]) -> pd.DataFrame:
    """A pack table from (term, layer, parents, lemmas[, examples]) tuples."""
    rows = []
    for term, layer, parents, lemmas, *rest in spec:
        doc = concept_doc(term, layer, parents)
        doc["wordnet"]["lemmas"] = lemmas
        doc["training_hints"]["positive_examples"] = rest[0] if rest else []
        rows.append(
            pack.concept_row(doc, file=f"concepts/layer{layer}/{term}.json", pack_layer=layer)
        )
    return pd.DataFrame(rows, columns=pack.CONCEPT_COLUMNS)


def _tree(n_children: int = 12) -> pd.DataFrame:
    """Two roots; under Animal, n_children layer-1 concepts each with two layer-2 children."""
    spec = [("Animal", 0, [], ["animal"]), ("Machine", 0, [], ["machine"])]
    for i in range(n_children):
        spec.append((f"Kind{i}", 1, ["Animal"], [f"kind {i}"]))
        spec += [(f"Breed{i}a", 2, [f"Kind{i}"], [f"breed {i}a"])]
        spec += [(f"Breed{i}b", 2, [f"Kind{i}"], [f"breed {i}b"])]
    return _concepts(spec)


def _table(
    concepts: pd.DataFrame, *, unit: str, seed: int = 0, n_prompts: int = 5, layers=(0, 1, 2)
):
    return prompts.build_prompt_table(
        concepts,
        pack_layers=layers,
        n_prompts=n_prompts,
        behavioral_ratio=0.6,
        fractions=FRACTIONS,
        seed=seed,
        unit=unit,
        file="concept_prompts.parquet",
    )


# names and texts --------------------------------------------------------------------------


def test_terms_become_words_and_sumo_markup_is_read_out():
    assert prompts.term_words("AIArtifact") == "AI artifact"
    assert prompts.term_words("CreatedThings") == "created things"
    assert prompts.term_words("Murder_Mass Murderer") == "mass murderer"
    assert (
        prompts.readable_definition("An &%AutonomousAgent that\n;;sells &%Products.")
        == "An autonomous agent that sells products."
    )


def test_names_are_lemmas_and_aliases_once_each_else_the_term():
    assert prompts.concept_names(["Abbey", "abbey"], ["the_abbey"], "Abbey") == [
        "Abbey",
        "the abbey",
    ]
    assert prompts.concept_names([], [], "CreatedThings") == ["created things"]


def test_concept_prompts_fill_behavioural_slots_with_examples_first():
    examples = ["A hammer drove the nail.", "She fixed the shelf with a wrench."]
    ranked = prompts.concept_prompts(
        ["tool"],
        "A device used to do work.",
        examples,
        n_prompts=10,
        behavioral_ratio=0.6,
        seed=3,
        where="Tool",
    )
    kinds = [kind for kind, _ in ranked]
    schedule = kind_schedule(10, 0.6)
    assert [k if k == "definitional" else "behavioral" for k in kinds] == schedule
    behavioural = [kind for kind in kinds if kind != "definitional"]
    assert behavioural[:2] == ["example", "example"]
    assert set(behavioural[2:]) == {"behavioral"}
    assert {text for kind, text in ranked if kind == "example"} == set(examples)
    assert len({text.casefold() for _, text in ranked}) == 10
    assert any("a device used to do work" in text for _, text in ranked)


def test_concept_prompts_are_deterministic_per_seed():
    def make(seed):
        return prompts.concept_prompts(
            ["tool"], "a device", [], n_prompts=8, behavioral_ratio=0.6, seed=seed, where="Tool"
        )

    assert make(1) == make(1)
    assert make(1) != make(2)


def test_a_concept_without_definition_cannot_make_definitional_prompts():
    with pytest.raises(DataError, match="enough distinct prompts") as caught:
        prompts.concept_prompts(
            ["tool"], " ", [], n_prompts=4, behavioral_ratio=0.6, seed=0, where="Tool (t.json)"
        )
    assert caught.value.row == "Tool (t.json)"


# the split, unit concept ------------------------------------------------------------------


def test_concepts_sharing_a_name_are_one_group_in_one_split():
    concepts = _tree()
    concepts.at[concepts.index[concepts["term"] == "Breed0b"][0], "lemmas"] = ["Kind_0"]
    table = _table(concepts, unit="concept")
    assert table.groupby("concept")["split"].nunique().max() == 1
    assert table.groupby("group")["split"].nunique().max() == 1
    group = table.set_index("concept")["group"]
    assert group["Breed0b"].iloc[0] == group["Kind0"].iloc[0]
    assert (
        table.loc[table["concept"] == "Breed0b", "split"].iloc[0]
        == (table.loc[table["concept"] == "Kind0", "split"].iloc[0])
    )
    chosen = prompts.select_concepts(concepts, pack_layers=(0, 1, 2))
    assert prompts.shared_lemma_counts(table, chosen)["n_cross_split_lemmas"] == 0


def test_the_concept_split_is_stratified_by_pack_layer_and_deterministic():
    concepts = _tree(n_children=20)
    table = _table(concepts, unit="concept", seed=1)
    per_layer = table.drop_duplicates("concept").groupby(["pack_layer", "split"]).size()
    assert per_layer.loc[1].to_dict() == {"test": 4, "train": 12, "validation": 4}
    assert per_layer.loc[2].to_dict() == {"test": 8, "train": 24, "validation": 8}
    pd.testing.assert_frame_equal(table, _table(concepts, unit="concept", seed=1))
    assert not table["split"].equals(_table(concepts, unit="concept", seed=2)["split"])


def test_the_table_has_one_row_per_prompt_and_only_the_chosen_layers():
    table = _table(_tree(), unit="concept", layers=(1,), n_prompts=6)
    assert list(table.columns) == prompts.PROMPT_COLUMNS
    assert set(table["pack_layer"]) == {1}
    assert table["prompt_id"].is_unique
    assert table.groupby("concept").size().eq(6).all()
    assert table.groupby("concept")["rank"].agg(list).map(lambda r: r == list(range(6))).all()


def test_an_unknown_split_unit_is_refused():
    with pytest.raises(ValueError, match="unknown split unit 'synset'"):
        _table(_tree(), unit="synset")


# the split, unit prompt -------------------------------------------------------------------


def test_every_concept_has_prompts_in_every_split_with_unit_prompt():
    table = _table(_tree(), unit="prompt", n_prompts=8)
    per_concept = table.groupby(["concept", "split"]).size().unstack()
    assert per_concept[list(SPLITS)].notna().all().all() and (per_concept > 0).all().all()
    assert table["group"].is_unique  # no text shared between concepts here


def test_near_copies_of_one_template_never_straddle_splits():
    table = _table(_tree(), unit="prompt", n_prompts=8)
    shapes = table["concept"] + "|" + table["text"].map(prompts.shape_key)
    assert table.groupby(shapes)["split"].nunique().eq(1).all()
    assert prompts.cross_split_shapes(table) == 0
    # the key blanks exactly the person a behavioural template names
    assert prompts.shape_key("How would a teacher explain regions to a child?") == (
        prompts.shape_key("How would a stranger explain regions to a child?")
    )
    assert prompts.shape_key("regions: an area.") != prompts.shape_key("places: an area.")


def test_a_text_shared_by_two_concepts_keeps_one_split():
    shared = "The same sentence written for both concepts."
    concepts = _concepts(
        [
            ("Root", 0, [], ["root"]),
            ("Cat", 1, ["Root"], ["cat"], [shared]),
            ("Dog", 1, ["Root"], ["dog"], [shared]),
        ]
    )
    table = _table(concepts, unit="prompt", n_prompts=8)
    rows = table[table["text"] == shared]
    assert len(rows) == 2
    assert rows["split"].nunique() == 1
    assert rows["group"].nunique() == 1
    assert set(table[table["concept"] == "Dog"]["split"]) == set(SPLITS)


# negatives --------------------------------------------------------------------------------


def test_negatives_are_siblings_plus_random_others_of_the_same_split():
    concepts = _tree()
    table = _table(concepts, unit="prompt", n_prompts=5)
    negatives = prompts.concept_negatives(
        table, concepts, targets=["Breed3a", "Kind3"], random_ratio=2.0, seed=0
    )
    split_of = table.set_index("prompt_id")["split"]
    concept_of = table.set_index("prompt_id")["concept"]
    assert (negatives["prompt_id"].map(split_of) == negatives["split"]).all()
    for (term, split), rows in negatives.groupby(["concept", "split"]):
        owners = rows["prompt_id"].map(concept_of)
        assert term not in set(owners)
        own = int(((table["concept"] == term) & (table["split"] == split)).sum())
        siblings = {"Breed3a": {"Breed3b"}, "Kind3": {f"Kind{i}" for i in range(12)} - {"Kind3"}}
        sibling_rows = table[table["concept"].isin(siblings[term]) & (table["split"] == split)]
        assert set(rows.loc[rows["negative"] == "sibling", "prompt_id"]) == set(
            sibling_rows["prompt_id"]
        )
        random = owners[rows["negative"] == "random"]
        assert len(random) == math.ceil(2.0 * own)
        # never a sibling, nor an ancestor or descendant, among the random draws
        lineage = {"Breed3a": {"Kind3", "Animal"}, "Kind3": {"Animal", "Breed3a", "Breed3b"}}
        assert not set(random) & (siblings[term] | lineage[term])


def test_negatives_are_deterministic_and_roots_are_siblings_of_each_other():
    concepts = _tree()
    table = _table(concepts, unit="concept", n_prompts=5)
    first = prompts.concept_negatives(
        table, concepts, targets=table["concept"].unique(), random_ratio=1.5, seed=4
    )
    again = prompts.concept_negatives(
        table, concepts, targets=table["concept"].unique(), random_ratio=1.5, seed=4
    )
    other = prompts.concept_negatives(
        table, concepts, targets=table["concept"].unique(), random_ratio=1.5, seed=5
    )
    pd.testing.assert_frame_equal(first, again)
    assert not first["prompt_id"].equals(other["prompt_id"])
    # with unit concept a concept has one split, and its negatives come from that split
    split_of = table.drop_duplicates("concept").set_index("concept")["split"]
    assert (first["split"] == first["concept"].map(split_of)).all()
    family = prompts.siblings(prompts.parents_map(concepts), among=concepts["term"])
    assert family["Animal"] == {"Machine"}
    assert family["Breed0a"] == {"Breed0b"}
    by_prompt = _table(concepts, unit="prompt", n_prompts=5)
    animal = prompts.concept_negatives(
        by_prompt, concepts, targets=["Animal"], random_ratio=1.0, seed=0
    )
    hard = animal[animal["negative"] == "sibling"]
    assert set(hard["prompt_id"].str.split("|").str[0]) == {"Machine"}
    assert len(hard) == 5


def test_a_prompt_with_the_concepts_own_text_is_never_its_negative():
    shared = "The same sentence written for both concepts."
    concepts = _concepts(
        [
            ("Root", 0, [], ["root"]),
            ("Cat", 1, ["Root"], ["cat"], [shared]),
            ("Dog", 1, ["Root"], ["dog"], [shared]),
        ]
    )
    table = _table(concepts, unit="prompt", n_prompts=8)
    negatives = prompts.concept_negatives(
        table, concepts, targets=["Cat"], random_ratio=1.0, seed=0
    )
    texts = negatives["prompt_id"].map(table.set_index("prompt_id")["text"])
    assert shared not in set(texts)
    assert len(negatives[negatives["negative"] == "sibling"]) == 7  # Dog's other prompts


# the real pack ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_concepts() -> pd.DataFrame:
    return pack.read_pack(REAL_ARCHIVE).concepts


def test_real_pack_layers_0_to_2_make_a_leak_free_concept_split(real_concepts):
    table = _table(real_concepts, unit="concept", n_prompts=8)
    chosen = prompts.select_concepts(real_concepts, pack_layers=(0, 1, 2))
    counts = prompts.prompt_counts(table, chosen)
    assert counts["n_concepts"] == 269
    assert counts["n_prompts"] == 269 * 8
    assert counts["n_cross_split_lemmas"] == 0
    assert counts["n_concepts_without_definition"] == 0
    assert sum(counts[f"{s}/n_prompts"] for s in SPLITS) == 269 * 8
    assert all(counts[f"{s}/n_concepts"] > 0 for s in SPLITS)
    assert not table["text"].str.contains("&%").any()


def test_real_pack_layers_0_to_2_give_every_concept_every_split_with_unit_prompt(real_concepts):
    table = _table(real_concepts, unit="prompt", n_prompts=8)
    assert table.groupby("concept")["split"].nunique().eq(3).all()
    assert len(table) == 269 * 8
