"""Shared checks for methods that hook GPT-2's attention or inputs (prefix, prompt)."""
import torch


def gpt2_left_padded_batch():
    """Two rows of 6 tokens for tiny-gpt2; the second is left-padded with EOS (id 256) over 2 positions."""
    ids = torch.randint(5, 250, (2, 6), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    ids[1, :2], mask[1, :2] = 256, 0
    return ids, mask


def assert_same_tokens_with_and_without_cache(model, beams: int) -> None:
    ids, mask = gpt2_left_padded_batch()
    common = dict(input_ids=ids, attention_mask=mask, max_new_tokens=10, min_new_tokens=10, num_beams=beams,
                  do_sample=False, pad_token_id=256)
    cached = model.generate(**common, use_cache=True)
    uncached = model.generate(**common, use_cache=False)
    assert cached.shape == (2, 16)
    assert torch.equal(cached, uncached)
