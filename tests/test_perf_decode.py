"""The decoding case of the performance benchmark as other scripts call it (`run_decode_case`): interleaved
repeats, engines to run, precision, protocol overrides, and its checks."""
from __future__ import annotations

import pytest
import torch

from bench.perf.decode import DecodeCase, run_decode_case


def test_decode_case_records(fixtures_dir):
    torch.set_num_threads(1)
    case = DecodeCase(data_dir=str(fixtures_dir / "perf"), inputs=3, batch_size=2, repeats=2,
                      decoding={"max_new_tokens": 6})
    records = run_decode_case(case)
    assert [r["engine"] for r in records] == ["suite", "hf_batched", "baseline"]
    for r in records:
        assert r["identical_outputs"] is True and r["identical_rows"] == 3 and r["same_outputs_every_repeat"]
        assert len(r["repeat_seconds"]) == 2 and r["seconds"] == min(r["repeat_seconds"])
        assert r["max_new_tokens"] == 6 and r["precision"] == "fp32" and r["inputs_per_s"] > 0
    assert records[0]["search"] == "own" and records[0]["batch_size"] == 2


def test_decode_case_bf16_and_total_without_baseline(fixtures_dir):
    torch.set_num_threads(1)
    case = DecodeCase(data_dir=str(fixtures_dir / "perf"), inputs=2, repeats=1, precision="bf16",
                      engines=("suite",), decoding={"max_new_tokens": 4, "score_length": "total"})
    (record,) = run_decode_case(case)
    assert record["engine"] == "suite" and record["search"] == "own" and record["identical_outputs"] is None
    assert record["score_length"] == "total" and record["generated_tokens"] > 0
    with pytest.raises(ValueError, match="baseline"):
        run_decode_case(DecodeCase(data_dir=str(fixtures_dir / "perf"), inputs=1, repeats=1,
                                   decoding={"max_new_tokens": 2, "score_length": "total"}))
    with pytest.raises(ValueError, match="engines"):
        DecodeCase(engines=("fast",))
    with pytest.raises(ValueError, match="precision"):
        DecodeCase(precision="fp8")
