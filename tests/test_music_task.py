"""`fusedrnn train music` and `fusedrnn predict music` on a tiny setting, end to end."""

import json
import math

from fusedrnn import cli
from fusedrnn.datasets.jsb_chorales import KEYS, read_midi_notes


def test_train_and_predict_music(tmp_path, capsys):
    out = tmp_path / "music"
    args = ["train", "music", "--epochs", "1", "--hidden", "8", "--sample", "12", "--no-progress",
            "--threads", "1", "--out", str(out)]
    assert cli.main(args) == 0
    assert "NLL a frame (nats) valid" in capsys.readouterr().out
    for name in ("best.pt", "last.pt", "metrics.jsonl", "results.json", "curves.png", "sample.mid",
                 "sample.png"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    # one epoch of a tiny model: better than chance (keys * log 2 a frame), far from perfect
    for split in ("valid_nll", "test_nll"):
        assert 0 < results[split] < KEYS * math.log(2), split
    sample = read_midi_notes(out / "sample.mid")
    assert sample and max(end for _, _, end in sample) <= (16 + 12) * 24  # primer + sample frames

    midi = tmp_path / "more.mid"
    assert cli.main(["predict", "music", "--checkpoint", str(out / "best.pt"), "--frames", "8",
                     "--midi", str(midi)]) == 0
    assert read_midi_notes(midi)
    assert "8 frames after the first bar of test chorale 0" in capsys.readouterr().out
    assert cli.main(["predict", "music", "--checkpoint", str(out / "best.pt"), "--primer", "test:999",
                     "--midi", str(midi)]) == 2
    assert "--primer must be SPLIT:INDEX" in capsys.readouterr().out
    assert cli.main(["predict", "music", "--checkpoint", str(tmp_path / "none.pt")]) == 1
