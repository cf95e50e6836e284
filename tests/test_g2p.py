"""CMUdict loading and splitting, G2P scoring, batching, and the g2p task end to end."""

import argparse
import gzip
import json
import time

import pytest
import torch

from fusedrnn.datasets import cmudict
from fusedrnn.tasks import g2p

TINY_DICT = """\
;;; the older cmudict-0.7b comment style
# a whole-line comment
abbe AE1 B IY0
abbe(2) AE1 B # alternate, with a trailing comment
read R IY1 D
read(2) R EH1 D
read(3) R IY2 D
x-ray EH1 K S R EY2

o'neil OW0 N IY1 L
"""


def _write(tmp_path, text=TINY_DICT, name="tiny.dict"):
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def test_parse_comments_alternates_and_stress(tmp_path):
    entries = cmudict.load_cmudict(_write(tmp_path))
    assert list(entries) == ["abbe", "read", "x-ray", "o'neil"]
    assert entries["abbe"] == [("AE", "B", "IY"), ("AE", "B")]
    # R IY1 D and R IY2 D are one pronunciation once stress is stripped
    assert entries["read"] == [("R", "IY", "D"), ("R", "EH", "D")]
    assert entries["o'neil"] == [("OW", "N", "IY", "L")]
    with_stress = cmudict.load_cmudict(_write(tmp_path), stress=True)
    assert with_stress["read"] == [("R", "IY1", "D"), ("R", "EH1", "D"), ("R", "IY2", "D")]
    assert with_stress["abbe"][1] == ("AE1", "B")


def test_gzip_and_bad_lines(tmp_path):
    assert cmudict.load_cmudict(_write(tmp_path, name="d.gz")) == cmudict.load_cmudict(_write(tmp_path))
    with pytest.raises(ValueError, match="line 2"):
        cmudict.parse_cmudict(["ok OW K", "lonely"])


def test_shipped_dictionary():
    entries = cmudict.load_cmudict()
    assert len(entries) > 120_000
    assert ("HH", "AH", "L", "OW") in entries["hello"]
    assert len(entries["tomato"]) >= 2  # alternates are grouped under the word
    graphemes, phonemes = cmudict.vocabularies(entries)
    assert len(phonemes) == 4 + 39  # specials + the 39 stressless ARPAbet phones
    assert "a" in graphemes.stoi and "'" in graphemes.stoi


def test_split_is_disjoint_complete_and_deterministic():
    words = [f"w{i}" for i in range(1000)] * 2  # duplicates count once
    split = cmudict.split_words(words, seed=3)
    sets = {k: set(v) for k, v in split.items()}
    assert len(sets["valid"]) == len(sets["test"]) == 50 and len(sets["train"]) == 900
    assert not (sets["train"] & sets["valid"] or sets["train"] & sets["test"] or sets["valid"] & sets["test"])
    assert sets["train"] | sets["valid"] | sets["test"] == set(words)
    assert cmudict.split_words(reversed(words), seed=3) == split  # input order does not matter
    assert cmudict.split_words(words, seed=4) != split
    with pytest.raises(ValueError, match="fractions"):
        cmudict.split_words(words, fractions=(0.5, 0.5, 0.5))


def test_all_pronunciations_of_a_word_stay_together(tmp_path):
    entries = cmudict.load_cmudict(_write(tmp_path))
    split = cmudict.split_words(entries, seed=0, fractions=(0.4, 0.3, 0.3))
    for name, words in split.items():
        pairs = cmudict.pairs(entries, words)
        assert {w for w, _ in pairs} == set(words), name
        assert len(pairs) == sum(len(entries[w]) for w in words)


def test_vocab_roundtrip():
    vocab = cmudict.Vocab("cab")
    assert vocab.itos[:4] == list(cmudict.SPECIALS) and vocab.itos[4:] == ["a", "b", "c"]
    ids = vocab.encode("cabz")
    assert ids[-1] == vocab.unk
    assert vocab.decode([vocab.bos, *ids[:3], vocab.eos, 5]) == ["c", "a", "b"]
    assert cmudict.Vocab.from_list(vocab.itos).stoi == vocab.stoi


def test_edit_distance():
    assert g2p.edit_distance("kitten", "sitting") == 3
    assert g2p.edit_distance([], ["A", "B"]) == 2
    assert g2p.edit_distance(("A", "B"), ("A", "B")) == 0
    assert g2p.edit_distance(("A", "B", "C"), ("C", "B", "A")) == 2
    assert g2p.edit_distance("ab", "ba") == 2


def test_score_matches_any_reference_and_uses_the_closest_for_per():
    refs = [
        [("R", "IY", "D"), ("R", "EH", "D")],  # right: matches the second
        [("K", "AE", "T")],  # one substitution
        [("AH", "B", "AW", "T"), ("B", "AW", "T")],  # closest is the 3-phone one: 1 deletion
    ]
    preds = [("R", "EH", "D"), ("K", "AA", "T"), ("B", "AW")]
    result = g2p.score(preds, refs)
    assert result["wer"] == pytest.approx(2 / 3)
    # edits 0 + 1 + 1 over reference lengths 3 + 3 + 3
    assert result["per"] == pytest.approx(2 / 9)
    assert g2p.score([("K", "AE", "T")], [[("K", "AE", "T")]]) == {"wer": 0.0, "per": 0.0, "words": 1}
    with pytest.raises(ValueError):
        g2p.score(preds[:2], refs)


def test_pair_batches_cover_every_pair_once():
    entries = {"ab": [("A", "B")], "abc": [("A", "B", "K"), ("A", "K")], "b": [("B",)]}
    graphemes, phonemes = cmudict.vocabularies(entries)
    pairs = cmudict.pairs(entries, sorted(entries))
    batches = g2p.PairBatches(pairs, graphemes, phonemes, batch_size=2, device="cpu")
    assert len(batches) == 2
    seen = []
    for src, src_len, tgt_in, tgt_out in batches:
        assert src.shape[0] == src_len.shape[0] == tgt_in.shape[0] == tgt_out.shape[0]
        assert int(src_len.max()) == src.shape[1]
        assert (tgt_in[:, 0] == phonemes.bos).all()
        for row in range(src.shape[0]):
            word = "".join(graphemes.decode(src[row]))
            phones = phonemes.decode(tgt_out[row])
            assert tgt_out[row].tolist().count(phonemes.eos) == 1
            assert tgt_in[row, 1:len(phones) + 1].tolist() == tgt_out[row, :len(phones)].tolist()
            seen.append((word, tuple(phones)))
    assert sorted(seen) == sorted(pairs)


def _train_args(tmp_path, *extra):
    parser = argparse.ArgumentParser()
    g2p.add_train_arguments(parser)
    return parser.parse_args([
        "--out", str(tmp_path / "run"), "--max-words", "300", "--epochs", "1", "--emb", "8",
        "--enc-hidden", "12", "--dec-hidden", "16", "--batch-size", "64", "--valid-words", "10",
        "--beam", "3", "--no-progress", "--device", "cpu", "--threads", "1", *extra,
    ])


@pytest.mark.parametrize("backend,cell,attention", [("fused", "gru", "luong"), ("torch", "lstm", "bahdanau")])
def test_train_and_predict_end_to_end(tmp_path, capsys, backend, cell, attention):
    threads = torch.get_num_threads()
    try:
        args = _train_args(tmp_path, "--backend", backend, "--cell", cell, "--attention", attention)
        assert g2p.train(args) == 0
    finally:
        torch.set_num_threads(threads)
    run = tmp_path / "run"
    for name in ("best.pt", "last.pt", "metrics.csv", "curves.png", "results.json"):
        assert (run / name).is_file(), name
    results = json.loads((run / "results.json").read_text())
    for key in ("valid_greedy", "valid_beam3", "test_greedy", "test_beam3"):
        assert 0.0 <= results["scores"][key]["wer"] <= 1.0
        assert results["scores"][key]["per"] >= 0.0
    assert results["scores"]["test_greedy"]["words"] == 15  # 5% of 300 words
    capsys.readouterr()

    parser = argparse.ArgumentParser()
    g2p.add_predict_arguments(parser)
    pargs = parser.parse_args(["hello", "World", "--checkpoint", str(run / "best.pt"), "--beam", "2"])
    assert g2p.predict(pargs) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["hello", "World"]


def test_predict_without_checkpoint(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    g2p.add_predict_arguments(parser)
    assert g2p.predict(parser.parse_args(["hello", "--checkpoint", str(tmp_path / "none.pt")])) == 1
    assert "no checkpoint" in capsys.readouterr().err


def test_choose_threads():
    assert g2p.choose_threads("3") == (3, "as asked")
    n, why = g2p.choose_threads("auto")
    assert n >= 1 and why.startswith("auto")
    with pytest.raises(ValueError):
        g2p.choose_threads(0)


def test_time_budget_ends_training_and_resume_continues(tmp_path):
    threads = torch.get_num_threads()
    try:
        # a budget of 6 ms: the first epoch stops after one step, the second never starts
        assert g2p.train(_train_args(tmp_path, "--epochs", "3", "--time-budget", "0.0001")) == 0
        rows = json.loads((tmp_path / "run" / "results.json").read_text())
        assert rows["epochs"] == 1
        # without a budget the cosine spans --epochs; --resume continues from last.pt
        assert g2p.train(_train_args(tmp_path, "--epochs", "1", "--time-budget", "0")) == 0
        assert g2p.train(_train_args(tmp_path, "--epochs", "2", "--time-budget", "0", "--resume")) == 0
    finally:
        torch.set_num_threads(threads)
    # training ran at --matmul-precision medium (the default) and gave the caller's setting back
    assert torch.get_float32_matmul_precision() == "highest"
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["epochs"] == 2
    lines = (tmp_path / "run" / "metrics.csv").read_text().strip().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2"]


def test_cosine_schedule_by_steps():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    schedule = g2p.CosineSchedule(opt, 1.0, 0.0, budget_s=0, total_steps=4)
    lrs = []
    for _ in range(5):
        schedule.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([1.0, 0.8535534, 0.5, 0.1464466, 0.0])
    assert not schedule.out_of_time()
    timed = g2p.CosineSchedule(opt, 1.0, 0.0, budget_s=10.0, total_steps=1, elapsed_s=10.0)
    assert timed.out_of_time() and timed.progress() == 1.0
    # with a budget, the step limit still ends the decay if it comes first
    capped = g2p.CosineSchedule(opt, 1.0, 0.0, budget_s=1e6, total_steps=4, steps=2)
    assert capped.progress() == pytest.approx(0.5) and not capped.out_of_time()
    half_time = g2p.CosineSchedule(opt, 1.0, 0.0, budget_s=10.0, total_steps=100, elapsed_s=5.0)
    assert half_time.progress() == pytest.approx(0.5, abs=0.01)


def test_budget_clock_starts_with_the_first_epoch():
    # setup before training (data, model, checkpoint checks) must not spend the budget: on a busy
    # machine a short budget was spent before the first epoch and nothing was trained
    param = torch.nn.Parameter(torch.zeros(1))
    schedule = g2p.CosineSchedule(torch.optim.SGD([param], lr=1.0), 1.0, 0.0, budget_s=0.005,
                                  total_steps=10, elapsed_s=0.001)
    time.sleep(0.02)
    assert not schedule.out_of_time() and schedule.elapsed() == pytest.approx(0.001)
    epochs = g2p.budgeted([0, 1, 2], schedule)
    run = epochs()  # starts the clock
    assert next(run) == 0  # an epoch that starts runs at least one step
    time.sleep(0.02)
    assert schedule.out_of_time() and list(run) == []  # then ends early
    with pytest.raises(g2p.OutOfTime):
        epochs()
