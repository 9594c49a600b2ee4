"""``quality.quadrants``: quadrant assignment on hand-made concept records, seeded sampling."""

from __future__ import annotations

import pandas as pd
import pytest

from lensforge.core.errors import DataError
from lensforge.core.params import QuadrantParams
from lensforge.quality import quadrants

NOTE = QuadrantParams(
    low_synsets_max=2, high_synsets_min=5, low_siblings_max=3, high_siblings_min=10
)


def records(rows: list[tuple[str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(c, 3, s, b) for c, s, b in rows],
        columns=["concept", "pack_layer", "n_synsets", "n_siblings"],
    )


# The research note's own concepts (synsets, siblings) land in the note's quadrants.
NOTE_CONCEPTS = [
    ("BayesianRiskReasoning", 0, 1, "A"),
    ("AerobicExerciseDevice", 1, 3, "A"),
    ("EndTimesNarrative", 0, 10, "B"),
    ("PyridostigmineBromide", 1, 32, "B"),
    ("ChestOrCabinet", 5, 10, "C"),
    ("SwitchDevice", 16, 33, "C"),
    ("LegislativeChamber", 5, 1, "D"),
    ("StringInstrument", 35, 3, "D"),
]


@pytest.mark.parametrize(("concept", "n_synsets", "n_siblings", "quadrant"), NOTE_CONCEPTS)
def test_the_notes_concepts_fall_in_the_notes_quadrants(concept, n_synsets, n_siblings, quadrant):
    assert quadrants.assign_quadrant(n_synsets, n_siblings, thresholds=NOTE) == quadrant


@pytest.mark.parametrize(("n_synsets", "n_siblings"), [(3, 0), (4, 12), (1, 5), (7, 9)])
def test_a_count_between_the_thresholds_is_in_no_quadrant(n_synsets, n_siblings):
    assert quadrants.assign_quadrant(n_synsets, n_siblings, thresholds=NOTE) == ""


def test_quadrant_table_and_counts():
    table = quadrants.quadrant_table(
        records([(c, s, b) for c, s, b, _ in NOTE_CONCEPTS] + [("Middle", 3, 5)]),
        thresholds=NOTE,
    )
    assert table["quadrant"].tolist() == [q for *_, q in NOTE_CONCEPTS] + [""]
    assert quadrants.quadrant_counts(table) == {"A": 2, "B": 2, "C": 2, "D": 2, "none": 1}


def test_bad_records_are_data_errors_naming_the_concept():
    with pytest.raises(DataError, match="listed twice") as exc:
        quadrants.quadrant_table(records([("X", 1, 1), ("X", 2, 2)]), thresholds=NOTE)
    assert exc.value.row == "X"
    with pytest.raises(DataError, match="negative"):
        quadrants.quadrant_table(records([("Y", -1, 1)]), thresholds=NOTE)
    with pytest.raises(DataError, match="columns"):
        quadrants.quadrant_table(pd.DataFrame({"concept": ["Z"]}), thresholds=NOTE)


def test_sampling_takes_k_per_quadrant_seeded_and_reports_a_short_quadrant():
    rows = [(f"A{i}", 1, 1) for i in range(6)] + [(f"C{i}", 9, 20) for i in range(5)]
    rows += [("D0", 9, 0)]
    table = quadrants.quadrant_table(records(rows), thresholds=NOTE)
    first = quadrants.sample_concepts(table, per_quadrant=3, seed=0)
    again = quadrants.sample_concepts(table, per_quadrant=3, seed=0)
    pd.testing.assert_frame_equal(first, again)
    assert first.groupby("quadrant").size().to_dict() == {"A": 3, "C": 3, "D": 1}
    # no silent fallback: B stays empty and D keeps its one concept
    assert quadrants.shortfalls(table, per_quadrant=3) == {"B": 3, "D": 2}
    others = {
        tuple(quadrants.sample_concepts(table, per_quadrant=3, seed=s)["concept"]) for s in range(6)
    }
    assert len(others) > 1


def test_adding_concepts_to_one_quadrant_leaves_the_others_draws_alone():
    base = [(f"A{i}", 1, 1) for i in range(6)] + [(f"C{i}", 9, 20) for i in range(6)]
    more = base + [(f"B{i}", 1, 20) for i in range(4)]
    before = quadrants.sample_concepts(
        quadrants.quadrant_table(records(base), thresholds=NOTE), per_quadrant=2, seed=1
    )
    after = quadrants.sample_concepts(
        quadrants.quadrant_table(records(more), thresholds=NOTE), per_quadrant=2, seed=1
    )
    keep = after[after["quadrant"] != "B"].reset_index(drop=True)
    assert keep["concept"].tolist() == before["concept"].tolist()


def test_concept_records_count_synsets_and_siblings():
    chosen = pd.DataFrame(
        {"term": ["P", "Q"], "pack_layer": [1, 1], "synsets": [["a.n.01", "b.n.01"], []]}
    )
    got = quadrants.concept_records(chosen, siblings={"P": {"Q", "R"}})
    assert got.to_dict("list") == {
        "concept": ["P", "Q"],
        "pack_layer": [1, 1],
        "n_synsets": [2, 0],
        "n_siblings": [2, 0],
    }
