"""The published numbers are data in one place (awdlib.published), and they hang together."""

import pytest

from awdlib.cache import OFFICIAL_SETTINGS, PAPER_CACHE
from awdlib.experiments import PAPER_PTB_VALID
from awdlib.presets import PRESETS
from awdlib.published import (DYNAMIC_EVAL, OFFICIAL_EPOCH_SECONDS, PUBLISHED, STAGES,
                              comparison_table, projected_hours, published)


def test_every_preset_corpus_has_both_sources_and_every_stage():
    for preset in ("ptb", "wt2"):
        dataset = PRESETS[preset].dataset
        for source in ("paper", "official"):
            assert set(PUBLISHED[dataset][source]) == set(STAGES)


def test_each_stage_improves_on_the_one_before():
    # fine-tuning lowers perplexity, the cache lowers it further, on valid and on test
    for dataset, sources in PUBLISHED.items():
        for source, stages in sources.items():
            for before, after in zip(STAGES, STAGES[1:]):
                assert all(a < b for a, b in zip(stages[after], stages[before])), (dataset, source)


def test_paper_numbers_agree_with_the_ablation_table_used_by_the_ladder():
    assert published("ptb", "paper", "fine-tuned")[0] == PAPER_PTB_VALID["AWD-LSTM"]
    assert published("ptb", "paper", "trained")[0] == PAPER_PTB_VALID["– fine-tuning"]


def test_speed_anchors_cover_the_corpora_with_the_cache_settings():
    assert {dataset for dataset, _ in OFFICIAL_EPOCH_SECONDS} == set(OFFICIAL_SETTINGS) == set(PUBLISHED)


def test_unknown_names_are_refused_with_the_known_ones():
    with pytest.raises(KeyError, match="'ptb', 'wikitext-2'"):
        published("wt2", "paper", "trained")
    with pytest.raises(KeyError, match="stage"):
        published("ptb", "paper", "cache")


def test_comparison_table_places_our_numbers_beside_the_published_ones():
    table = comparison_table("ptb", {"trained": (70.123, 68.0)}, label="smoke, CPU")
    lines = table.splitlines()
    assert "smoke, CPU" in lines[0] and len(lines) == 2 + len(STAGES)
    assert "70.12" in lines[2] and "60.70" in lines[2] and "61.20" in lines[2]
    assert lines[3].split()[:3] == ["fine-tuned", "60.00", "57.30"]  # our blank cells stay blank


def test_projection_is_seconds_per_epoch_times_epochs():
    assert projected_hours(45.0, 500, 300) == pytest.approx(10.0)


def test_the_cache_modules_paper_numbers_are_the_published_ones():
    assert PAPER_CACHE == {"ptb": {"valid": (60.0, 53.9), "test": (57.3, 52.8)},
                           "wikitext-2": {"valid": (68.6, 53.8), "test": (65.8, 52.0)}}


def test_dynamic_evaluation_beats_the_cache_on_both_corpora_as_published():
    assert set(DYNAMIC_EVAL) == set(PUBLISHED)
    for dataset, (valid, test) in DYNAMIC_EVAL.items():
        cache_valid, cache_test = published(dataset, "paper", "+ cache")
        assert valid < cache_valid and test < cache_test, dataset
    assert DYNAMIC_EVAL["ptb"][1] == 51.1 and DYNAMIC_EVAL["wikitext-2"][1] == 44.3  # the abstract's
