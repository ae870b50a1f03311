"""bench.allocator: freed memory stays in the process, so steps of varying sizes stop page-faulting (with glibc's
defaults the heap is trimmed after a step and faulted in again by the next longer one)."""
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
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    one_step(16)
    one_step(64)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, allocator.state())
""")
PAGES = 24 * 32 * (16 + 64) * 384 * 4 / 4096        # what the two timed steps write, in 4 KiB pages


def _faults(mode: str) -> tuple[float, str]:
    out = subprocess.run([sys.executable, "-c", PATTERN, mode], capture_output=True, text=True, check=True)
    faults, state = out.stdout.split(maxsplit=1)
    return float(faults), state.strip()


@pytest.mark.skipif(allocator.glibc() is None, reason="glibc only")
def test_retained_memory_is_reused_without_page_faults():
    default_faults, default_state = _faults("defaults")
    retained_faults, retained_state = _faults("retain")
    assert (default_state, retained_state) == ("glibc defaults", "retained")
    assert default_faults > PAGES / 4, "glibc's defaults no longer give back this pattern's memory"
    assert retained_faults < PAGES / 100


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
