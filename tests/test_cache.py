"""The continuous cache pointer (awdlib.cache) against a per-token reference, on a tiny AWD-LSTM,
in generation and on the command line."""

import math
import re

import pytest
import torch

import awdlib
from awdlib.__main__ import main
from awdlib.cache import cache_distribution
from awdlib.checkpoint import load_model
from awdlib.generate import sample_words


def reference_nll(log_probs, hiddens, targets, window, theta, lambdah, history="paper"):
    """Grave et al. (2016), eq. 2-3, one token at a time, straight from the definition."""
    nll = []
    for t in range(len(targets)):
        lo = max(0, t - window)
        p_vocab = log_probs[t, targets[t]].exp()
        if t - lo == 0 or (history == "official" and t - lo < window):
            nll.append(-p_vocab.log())
            continue
        attention = torch.softmax(theta * hiddens[lo:t] @ hiddens[t], dim=0)
        p_cache = attention[targets[lo:t] == targets[t]].sum()
        nll.append(-((1 - lambdah) * p_vocab + lambdah * p_cache).log())
    return torch.stack(nll)


def random_inputs(T=60, V=7, H=5, seed=0, dtype=torch.float64):
    """Few word types, so that targets repeat within any window; hiddens large enough that the
    attention is far from uniform."""
    g = torch.Generator().manual_seed(seed)
    log_probs = torch.log_softmax(3 * torch.randn(T, V, generator=g, dtype=dtype), dim=1)
    hiddens = torch.randn(T, H, generator=g, dtype=dtype)
    targets = torch.randint(V, (T,), generator=g)
    return log_probs, hiddens, targets


@pytest.mark.parametrize("window", [1, 3, 10, 59, 60, 500])
@pytest.mark.parametrize("history", ["paper", "official"])
def test_vectorised_nll_equals_the_per_token_definition(window, history):
    log_probs, hiddens, targets = random_inputs()
    expected = reference_nll(log_probs, hiddens, targets, window, 0.8, 0.3, history)
    for block_size in (None, 7):  # blocks that do and do not divide T
        got = awdlib.cache_pointer_nll(log_probs, hiddens, targets, window, 0.8, 0.3,
                                       history=history, block_size=block_size)
        assert got.shape == (60,)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_large_scores_stay_finite_and_match_in_float64_and_float32():
    log_probs, hiddens, targets = random_inputs(T=300, V=20, H=64, seed=1)
    hiddens = 5 * hiddens  # theta h.h up to ~2000: exp() overflows even float64 without log-sum-exp
    expected = reference_nll(log_probs, hiddens, targets, 100, 1.0, 0.1)
    got = awdlib.cache_pointer_nll(log_probs, hiddens, targets, 100, 1.0, 0.1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    single = awdlib.cache_pointer_nll(log_probs.float(), hiddens.float(), targets, 100, 1.0, 0.1)
    assert torch.isfinite(single).all()  # float32 rounds scores of ~2000 by ~1e-4, hence atol
    torch.testing.assert_close(single.double(), expected, atol=1e-3, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_hit_far_below_the_top_score_keeps_its_exact_weight(dtype):
    # step 2 attends to step 0 (score 1000, a miss) and step 1 (score 0, the hit): p_cache = e^-1000,
    # which exp() cannot represent; the softmax gives the target e^-999
    hiddens = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=dtype)
    targets = torch.tensor([0, 2, 2])
    log_probs = torch.log_softmax(torch.tensor([[0.0, -999.0, -999.0]] * 3, dtype=dtype), dim=1)
    nll = awdlib.cache_pointer_nll(log_probs, hiddens, targets, 5, 1000.0, 0.5)
    # -log(0.5 e^-999 + 0.5 e^-1000), from the log-probabilities as given
    expected = -(math.log(0.5) + log_probs[2, 2].item() + math.log1p(math.exp(-1.0)))
    assert nll[2].item() == pytest.approx(expected, rel=1e-6)


def test_a_target_never_in_the_window_costs_log_of_one_minus_lambda_not_nan():
    log_probs, hiddens, _ = random_inputs(T=5)
    targets = torch.tensor([0, 1, 2, 3, 4])  # every target new
    got = awdlib.cache_pointer_nll(log_probs, hiddens, targets, 10, 1.0, 0.25)
    plain = -log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)
    torch.testing.assert_close(got[1:], plain[1:] - math.log(0.75))
    assert got[0] == plain[0]  # step 0 has no history: plain softmax


def test_lambda_zero_gives_exactly_the_plain_nll():
    log_probs, hiddens, targets = random_inputs()
    plain = -log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)
    assert torch.equal(awdlib.cache_pointer_nll(log_probs, hiddens, targets, 10, 1.0, 0.0), plain)
    log_p_cache, uses = awdlib.cache.cache_log_probs(hiddens, targets, 10, 1.0)  # the search's path
    assert torch.equal(awdlib.cache.mix_nll(-plain, log_p_cache, uses, 0.0), plain)


def test_gathered_target_log_probs_give_the_same_result_as_the_full_softmax():
    log_probs, hiddens, targets = random_inputs()
    gathered = log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)
    torch.testing.assert_close(awdlib.cache_pointer_nll(gathered, hiddens, targets, 9, 1.0, 0.2),
                               awdlib.cache_pointer_nll(log_probs, hiddens, targets, 9, 1.0, 0.2))


def test_official_rule_is_plain_until_the_window_is_full_then_the_papers():
    log_probs, hiddens, targets = random_inputs()
    plain = -log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)
    official = awdlib.cache_pointer_nll(log_probs, hiddens, targets, 10, 1.0, 0.3, history="official")
    paper = awdlib.cache_pointer_nll(log_probs, hiddens, targets, 10, 1.0, 0.3)
    assert torch.equal(official[:10], plain[:10])
    assert not torch.allclose(paper[1:10], plain[1:10])
    torch.testing.assert_close(official[10:], paper[10:])


@pytest.mark.parametrize("history", ["paper", "official"])
def test_past_history_makes_chunked_scoring_exact(history):
    log_probs, hiddens, targets = random_inputs(T=90)
    whole = awdlib.cache_pointer_nll(log_probs, hiddens, targets, 25, 0.7, 0.4, history=history)
    parts, start = [], 0
    for stop in (4, 30, 31, 77, 90):
        past = dict(past_hiddens=hiddens[:start], past_targets=targets[:start])
        parts.append(awdlib.cache_pointer_nll(log_probs[start:stop], hiddens[start:stop],
                                              targets[start:stop], 25, 0.7, 0.4, history=history,
                                              **past))
        start = stop
    torch.testing.assert_close(torch.cat(parts), whole)


@pytest.mark.parametrize("bad, message", [
    (dict(window=0), "window must be an integer >= 1"),
    (dict(window=2.5), "window must be an integer >= 1"),
    (dict(theta=math.nan), "theta must be a finite number"),
    (dict(theta=math.inf), "theta must be a finite number"),
    (dict(lambdah=1.5), "lambdah must be between 0 and 1"),
    (dict(lambdah=-0.1), "lambdah must be between 0 and 1"),
    (dict(history="grave"), "history must be 'paper'"),
])
def test_bad_settings_are_rejected_with_the_rule(bad, message):
    log_probs, hiddens, targets = random_inputs(T=5)
    settings = dict(window=3, theta=1.0, lambdah=0.1) | bad
    history = settings.pop("history", "paper")
    with pytest.raises(ValueError, match=message):
        awdlib.cache_pointer_nll(log_probs, hiddens, targets, **settings, history=history)


def test_attention_rows_are_distributions_over_the_window_only():
    _, hiddens, _ = random_inputs(T=12)
    attention = awdlib.cache_attention(hiddens, 4, 1.0)
    assert attention[0].sum() == 0  # no history
    torch.testing.assert_close(attention[1:].sum(1), torch.ones(11, dtype=attention.dtype))
    rows, cols = torch.nonzero(attention, as_tuple=True)
    assert ((cols < rows) & (cols >= rows - 4)).all()
    official = awdlib.cache_attention(hiddens, 4, 1.0, history="official")
    assert official[:4].sum() == 0 and torch.equal(official[4:], attention[4:])


def test_cache_distribution_adds_the_attention_of_repeated_words():
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    p = cache_distribution(torch.tensor([1.0, 0.0]), keys, torch.tensor([2, 0, 2]), 4, 1.0)
    weights = torch.softmax(torch.tensor([1.0, 0.0, 1.0]), 0)
    torch.testing.assert_close(p, torch.tensor([weights[1], 0, weights[0] + weights[2], 0]))


# ---------------------------------------------------------------------------- a tiny AWD-LSTM
@pytest.fixture(scope="module")
def tiny_model_and_corpus():
    corpus = awdlib.synthetic_corpus(vocab_size=30, n_train=3000, n_eval=600)
    torch.manual_seed(0)
    smoke = awdlib.PRESETS["smoke"].model  # smoke-sized, random weights
    config = awdlib.AWDLSTMConfig(len(corpus.vocab), smoke["emb_size"], smoke["hidden_size"], 2)
    return awdlib.AWDLSTM(config).eval(), corpus


def test_chunk_length_does_not_change_evaluate_with_cache(tiny_model_and_corpus):
    model, corpus = tiny_model_and_corpus
    losses = [awdlib.evaluate_with_cache(model, corpus.valid, 40, 1.0, 0.3, bptt=bptt)
              for bptt in (1, 7, 64, 5000)]
    assert losses == pytest.approx([losses[0]] * 4, rel=1e-6)
    plain = awdlib.evaluate(model, corpus.valid, bptt=50, batch_size=1)
    assert abs(losses[0] - plain) > 1e-3  # the cache did something
    assert awdlib.evaluate_with_cache(model, corpus.valid, 40, 1.0, 0.0) == pytest.approx(plain,
                                                                                          rel=1e-6)


def test_the_grid_searchs_best_point_equals_evaluating_it_directly(tiny_model_and_corpus):
    model, corpus = tiny_model_and_corpus
    inputs = awdlib.cache_inputs(model, corpus.valid)
    result = awdlib.search_cache(inputs, thetas=(0.1, 1.0, 3.0), lambdahs=(0.0, 0.1, 0.5, 0.9),
                                 windows=(5, 100))
    assert result.losses.shape == (2, 3, 4)
    best = result.best
    assert best["loss"] == result.losses.min().item()
    direct = awdlib.evaluate_with_cache(model, corpus.valid, best["window"], best["theta"],
                                        best["lambdah"], bptt=33)
    assert direct == pytest.approx(best["loss"], rel=1e-6)
    assert result.plain_loss == pytest.approx(awdlib.evaluate(model, corpus.valid, 70, 1), rel=1e-6)
    torch.testing.assert_close(result.losses[:, :, 0],  # lambda = 0 column: the plain model
                               torch.full((2, 3), result.plain_loss, dtype=torch.float64))
    assert inputs.loss(best["window"], best["theta"], best["lambdah"]) == pytest.approx(best["loss"])


def test_tune_and_test_scores_test_once_with_the_settings_validation_chose(tiny_model_and_corpus):
    model, corpus = tiny_model_and_corpus
    grid = dict(thetas=(0.1, 1.0, 3.0), lambdahs=(0.0, 0.1, 0.5, 0.9), windows=(5, 100))
    row = awdlib.cache.tune_and_test(model, corpus.valid, corpus.test, **grid)
    best = awdlib.search_cache(awdlib.cache_inputs(model, corpus.valid), **grid).best
    assert {k: row[k] for k in ("window", "theta", "lambdah")} == \
        {k: best[k] for k in ("window", "theta", "lambdah")}
    assert row["valid_ppl"] == pytest.approx(math.exp(best["loss"]))
    test = awdlib.evaluate_with_cache(model, corpus.test, best["window"], best["theta"],
                                      best["lambdah"])
    assert row["test_ppl"] == pytest.approx(math.exp(test), rel=1e-6)
    plain = awdlib.evaluate(model, corpus.test, 70, 1)
    assert row["test_plain_ppl"] == pytest.approx(math.exp(plain), rel=1e-6)
    assert row["test_ppl"] != pytest.approx(row["test_plain_ppl"])


# ---------------------------------------------------------------------------------- generation
def test_generation_with_the_cache_is_reproducible_and_differs_from_without(tiny_model_and_corpus):
    model, corpus = tiny_model_and_corpus
    cached = dict(cache_window=20, cache_theta=1.0, cache_lambdah=0.5)
    words = sample_words(model, corpus.vocab, 40, seed=5, **cached)
    assert sample_words(model, corpus.vocab, 40, seed=5, **cached) == words
    assert sample_words(model, corpus.vocab, 40, seed=5) != words
    text = awdlib.generate.generate(model, corpus.vocab, 40, seed=5, **cached)
    assert text.split() == [w for w in words if w != "<eos>"]


def test_a_cache_weight_of_one_only_repeats_words_already_in_the_text(tiny_model_and_corpus):
    model, corpus = tiny_model_and_corpus
    start = corpus.vocab.itos[5:8]  # three start words: two (output, next word) pairs in the cache
    words = sample_words(model, corpus.vocab, 30, seed=1, start=start, cache_window=50,
                         cache_theta=1.0, cache_lambdah=1.0)
    assert set(words) <= set(start[1:])


@pytest.mark.parametrize("bad, message", [
    (dict(cache_window=0), "cache_window must be an integer >= 1"),
    (dict(cache_window=10, cache_theta=math.nan), "cache_theta must be a finite number"),
    (dict(cache_window=10, cache_lambdah=2.0), "cache_lambdah must be between 0 and 1"),
    (dict(cache_lambdah=-1.0), "cache_lambdah must be between 0 and 1"),
])
def test_generation_rejects_bad_cache_settings(tiny_model_and_corpus, bad, message):
    model, corpus = tiny_model_and_corpus
    with pytest.raises(ValueError, match=message):
        sample_words(model, corpus.vocab, 3, seed=0, **bad)


# -------------------------------------------------------------------------------- command line
def test_cache_command_prints_the_perplexity_of_evaluate_with_cache(smoke_checkpoint, capsys):
    assert main(["cache", str(smoke_checkpoint), "--split", "valid", "--window", "50", "--theta",
                 "0.5", "--lambdah", "0.2", "--bptt", "37"]) == 0
    out = capsys.readouterr().out
    plain, cached = (float(x) for x in re.search(r"perplexity ([\d.]+) without the cache, "
                                                  r"([\d.]+) with", out).groups())
    valid = awdlib.PRESETS["smoke"].corpus().valid
    model = load_model(smoke_checkpoint)
    assert cached == pytest.approx(math.exp(awdlib.evaluate_with_cache(model, valid, 50, 0.5, 0.2)),
                                   abs=0.01)
    assert plain == pytest.approx(math.exp(awdlib.evaluate(model, valid, 70, 1)), abs=0.01)


def test_cache_command_search_reports_valid_then_test_at_the_best_point(smoke_checkpoint, capsys):
    assert main(["cache", str(smoke_checkpoint), "--search", "--window", "100", "--thetas", "0.3",
                 "2", "--lambdahs", "0", "0.05", "0.3"]) == 0
    out = capsys.readouterr().out
    corpus, model = awdlib.PRESETS["smoke"].corpus(), load_model(smoke_checkpoint)
    best = awdlib.search_cache(awdlib.cache_inputs(model, corpus.valid), (0.3, 2.0), (0, 0.05, 0.3),
                               (100,)).best
    assert f"{math.exp(best['loss']):.2f} at the best of 6 points" in out
    test = awdlib.evaluate_with_cache(model, corpus.test, 100, best["theta"], best["lambdah"])
    assert (f"test: perplexity {math.exp(awdlib.evaluate(model, corpus.test, 70, 1)):.2f} without the "
            f"cache, {math.exp(test):.2f} with it") in out
    assert f"window 100, theta {best['theta']:g}, lambdah {best['lambdah']:g};" in out


@pytest.mark.parametrize("flags, message", [
    (["--window", "0"], "error: --window must be an integer >= 1"),
    (["--theta", "nan"], "error: --theta must be a finite number"),
    (["--lambdah", "1.5"], "error: --lambdah must be between 0 and 1"),
    (["--search", "--lambdahs", "0.1", "-2"], "error: --lambdahs: lambdah must be between 0 and 1"),
])
def test_cache_command_rejects_bad_values_in_one_line(smoke_checkpoint, capsys, flags, message):
    assert main(["cache", str(smoke_checkpoint), *flags]) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_several_thetas_at_once_equal_one_at_a_time():
    _, hiddens, targets = random_inputs(T=80)
    together, uses = awdlib.cache.cache_log_probs(hiddens, targets, 30, [0.0, 0.5, 2.0])
    for k, theta in enumerate([0.0, 0.5, 2.0]):
        alone, _ = awdlib.cache.cache_log_probs(hiddens, targets, 30, theta)
        torch.testing.assert_close(together[k][uses], alone[uses])


# ------------------------------------------------------------------------------ figures and presets
def test_attention_plot_rings_exactly_the_earlier_entries_that_propose_the_next_word():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from awdlib.plots import plot_cache_attention

    words = ["a", "b", "a", "c", "b", "a"]
    attention = awdlib.cache_attention(torch.randn(len(words), 4), window=10, theta=1.0)
    ax = plot_cache_attention(attention, words)
    rings = {tuple(map(int, p)) for p in ax.collections[0].get_offsets()}  # (column i, row t)
    expected = {(i, t) for t in range(len(words)) for i in range(t) if words[i] == words[t]}
    assert rings == expected  # (0, 2), (0, 5), (2, 5), (1, 4)
    matplotlib.pyplot.close("all")


def test_grid_plot_stars_the_searchs_best_point():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from awdlib.plots import plot_cache_grid

    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 5, (200,), generator=g)
    inputs = awdlib.CacheInputs(torch.full((200,), -3.0), torch.randn(200, 8, generator=g), targets)
    search = awdlib.search_cache(inputs, thetas=(0.1, 0.5, 1.0), lambdahs=(0.0, 0.1, 0.3),
                                 windows=(5, 50))
    ax = plot_cache_grid(search)
    star = ax.lines[0].get_xydata()[0]
    assert tuple(star) == (search.best["theta"], search.best["lambdah"])
    assert f"{math.exp(search.best['loss']):.2f}" in ax.get_legend().get_texts()[0].get_text()
    matplotlib.pyplot.close("all")


@pytest.mark.parametrize("name, base", [("demo-wt2", "demo"), ("smoke-wt2", "smoke")])
def test_wikitext2_cache_presets_are_their_ptb_scales_model_on_wikitext2(name, base):
    wt2, ptb = awdlib.PRESETS[name], awdlib.PRESETS[base]
    assert wt2.dataset == "wikitext-2" and wt2.finetune_epochs == 0
    assert {k: v for k, v in wt2.model.items() if k != "dropouti"} == \
        {k: v for k, v in ptb.model.items() if k != "dropouti"}


def test_a_search_survives_a_round_trip_through_json_exactly():
    import json
    g = torch.Generator().manual_seed(3)
    T, H, V = 60, 8, 20
    inputs = awdlib.CacheInputs(torch.randn(T, generator=g).abs().neg(), torch.randn(T, H, generator=g),
                                torch.randint(V, (T,), generator=g))
    search = awdlib.search_cache(inputs, thetas=(0.5, 1.0), lambdahs=(0.0, 0.1, 0.3), windows=(5, 20))
    again = awdlib.cache.CacheSearch.from_record(json.loads(json.dumps(search.to_record())))
    assert torch.equal(again.losses, search.losses) and again.losses.dtype == torch.float64
    assert (again.windows, again.thetas, again.lambdahs, again.best, again.plain_loss) == \
        (search.windows, search.thetas, search.lambdahs, search.best, search.plain_loss)
