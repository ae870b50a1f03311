"""The report says which training variant (kept state, loss) every recipe's rows used."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from bench.report.build import _training_variants
from bench.report.load import read_results

REPO = Path(__file__).resolve().parents[1]


def _run(recipe, label, select, loss):
    return SimpleNamespace(text={"recipe": recipe, "label": label, "select": select, "loss": loss, "method": "m"})


def test_protocol_lines_name_each_recipes_selection_and_loss():
    grid = SimpleNamespace(runs=[_run("script", "FT", "final", "token_mean"),
                                 _run("script", "Prefix (0.1%)", "final", "sentence_sum"),
                                 _run("own", "FT", "best", "token_mean"),
                                 _run("own", "Prefix (0.1%)", "best", "token_mean")])
    lines = _training_variants(grid)
    own = next(line for line in lines if "recipe `own`" in line)
    script = next(line for line in lines if "recipe `script`" in line)
    assert "best epoch on the dev set" in own and "token mean" in own and "(" not in own.split(":", 1)[1]
    assert script.count("final epoch's state") == 2
    assert "summed token losses averaged over the batch (Prefix (0.1%))" in script
    assert "token mean (FT)" in script


def test_result_files_written_before_the_variant_columns_read_as_best_and_token_mean(tmp_path):
    """A CSV of the committed rows with the `loss`, `select` and `selection` columns taken out, as files written
    before those columns existed look."""
    import csv

    with (REPO / "results" / "minilm-glue.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("selection", "dev") == "dev"][:4]
    old = [{k: v for k, v in r.items() if k not in ("loss", "select", "selection")} for r in rows]
    path = tmp_path / "old.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(old[0]))
        writer.writeheader()
        writer.writerows(old)
    read = read_results(path)
    assert len(read) == 4 and {(r.text["select"], r.text["loss"], r.text["selection"]) for r in read} == {
        ("best", "token_mean", "dev")}


def test_table_captions_say_which_state_the_runs_kept():
    from bench.report.tables import kept_text

    def runs(*pairs):
        return SimpleNamespace(runs=[SimpleNamespace(text={"task": t, "select": s}) for t, s in pairs])

    assert kept_text(runs(("e2e", "final"), ("e2e", "final")), ["e2e"]) == "each run's final state, no selection"
    assert kept_text(runs(("sst2", "best"), ("sst2", "")), ["sst2"]) == "best epoch on dev per run"
    assert "as each recipe keeps it" in kept_text(runs(("e2e", "final"), ("e2e", "best")), ["e2e"])
    # another task's runs do not change the caption of this table
    assert kept_text(runs(("e2e", "final"), ("sst2", "best")), ["e2e"]) == "each run's final state, no selection"
