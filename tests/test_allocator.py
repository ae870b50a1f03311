"""bench.allocator: freed memory stays in the process, so steps of varying sizes stop page-faulting (with glibc's
defaults a block above the mmap threshold is unmapped on free and faulted in again by the next step)."""
import subprocess
import sys
import textwrap

import pytest

from bench import allocator

PATTERN = textwrap.dedent("""
    import resource, sys, torch
    from bench import allocator
    if sys.argv[1] == "retain":
        assert allocator.retain_freed_memory()
    else:
        allocator.keep_defaults()
    def one_step(length):    # a step's activations at a padded length, written, then freed
        blocks = [torch.ones(32 * length * 384) for _ in range(24)]
        del blocks
    one_step(16)
    one_step(64)
    faults = []
    for _ in range(5):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        one_step(16)
        one_step(64)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(",".join(map(str, faults)), allocator.state())
""")
PAGES = 24 * 32 * (16 + 64) * 384 * 4 / 4096        # what a timed pair of steps writes, in 4 KiB pages


def _faults(mode: str) -> tuple[list[int], str]:
    """Minor page faults of each of five timed step pairs, and the allocator state."""
    out = subprocess.run([sys.executable, "-c", PATTERN, mode], capture_output=True, text=True, check=True)
    every, state = out.stdout.split(maxsplit=1)
    return [int(n) for n in every.split(",")], state.strip()


@pytest.mark.skipif(allocator.glibc() is None, reason="glibc only")
def test_retained_memory_is_reused_without_page_faults():
    defaults, default_state = _faults("defaults")
    retained, retained_state = _faults("retain")
    assert (default_state, retained_state) == ("glibc defaults", "retained")
    # glibc's defaults: the warm-up's blocks were mapped and unmapped, so the first timed pair faults most of its
    # pages in (later pairs fault less: glibc raises its mmap threshold after freeing a mapped block). Retained:
    # a pair may take a few hundred faults where the heap's layout leaves a block no free space of its size
    # (seen: 384 = two 16-token blocks), never the thousands of freshly mapped blocks.
    assert defaults[0] > PAGES / 4, f"glibc's defaults no longer give back this pattern's memory: {defaults}"
    assert max(retained) < PAGES / 20, f"faults per step pair, retained: {retained}"


def test_once_per_process_and_defaults_can_be_kept(monkeypatch):
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setattr(allocator, "_defaults_kept", False)
    assert allocator.keep_defaults() is True
    assert allocator.retain_freed_memory() is False          # kept: a no-op from then on
    assert allocator.state() in ("glibc defaults", "not glibc")
    monkeypatch.setattr(allocator, "_applied", True)
    assert allocator.keep_defaults() is False                # already applied: cannot be undone
    assert allocator.state() == "retained"


def test_not_glibc_is_left_alone(monkeypatch):
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setattr(allocator, "glibc", lambda: None)
    assert allocator.retain_freed_memory() is False
    assert allocator.state() == "not glibc"
