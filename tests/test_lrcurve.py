"""bench.perf.lrcurve: a preset row's loss curve at several rates, on the smoke preset's tiny models."""
import json

import pytest

from bench.perf import lrcurve


def test_rates_share_the_batches_and_differ_after_the_first_update(tmp_path):
    out = tmp_path / "curve.json"
    rc = lrcurve.main(["--preset", "smoke", "--row", "lora", "--task", "sst2", "--lrs", "1e-4,3e-2",
                       "--steps", "4", "--window", "2", "--out", str(out)])
    assert rc == 0
    record = json.loads(out.read_text())
    assert record["method"] == "lora" and record["task"] == "sst2" and record["seed"] == 0
    slow, fast = record["curves"]
    assert [c["lr"] for c in record["curves"]] == [1e-4, 3e-2]
    assert len(slow["losses"]) == len(fast["losses"]) == 4
    # the same model, seed and batches: the first loss is taken before any update, so it is the same for both
    assert slow["losses"][0] == pytest.approx(fast["losses"][0], abs=1e-5)
    assert slow["losses"][1:] != pytest.approx(fast["losses"][1:], abs=1e-4)
    assert fast["last_window"] == pytest.approx(sum(fast["losses"][-2:]) / 2, abs=1e-3)


def test_an_ambiguous_or_unknown_row_exits_2_naming_the_choices(capsys):
    assert lrcurve.main(["--preset", "smoke", "--row", "lora", "--lrs", "1e-3"]) == 2
    assert "matches several rows" in capsys.readouterr().err
    assert lrcurve.main(["--preset", "smoke", "--row", "nope", "--lrs", "1e-3"]) == 2
    assert "the preset has:" in capsys.readouterr().err
    assert lrcurve.main(["--preset", "smoke", "--row", "full", "--task", "sst2", "--lrs", "0"]) == 2
    assert "positive learning rates" in capsys.readouterr().err


def test_window_means():
    assert lrcurve.window_means([4.0, 2.0, 1.0, 3.0], 2) == (3.0, 2.0)
    with pytest.raises(ValueError):
        lrcurve.window_means([1.0], 2)
