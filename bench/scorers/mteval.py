"""BLEU and NIST as mteval-v13a-sig.pl computes them for E2E (`e2e-metrics`), and BLEU as multi-bleu.perl.

mteval (E2E): text is lower-cased on ASCII letters only and tokenised with the 13a rules (sacrebleu's `13a`
tokenizer is a line-for-line port). BLEU n-gram statistics come from sacrebleu; the final formula is mteval's
own (`bleu_score`): brevity penalty against the closest reference length, and for an order with no match the
precision 1 / (2^k * total) (k counts such orders); an order the hypotheses never reach (total 0) counts as
precision 1. A missing (empty) reference is skipped, except that an empty *first* reference sets the initial
"closest length" to 0, which sacrebleu reproduces when that slot is passed as ''.

NIST (`nist_score`, n = 5) is our own implementation of the script: information weights
info(w1..wn) = -log2(count(w1..wn) / count(w1..wn-1)) from the n-gram counts (n <= 9) of all references of the
set, count(w1) / (total reference words) for unigrams -- and also for any n-gram whose prefix is the single
token "0", because Perl treats the string "0" as false; matches clipped at the per-segment maximum count over
references; the length penalty uses the "-sig" average reference length = (total reference words) /
(average number of non-empty references per segment).

multi-bleu.perl (WebNLG with -lc, DART without): whitespace tokens only, no smoothing, every reference slot kept
(an empty line is a reference of length 0 and can be the closest length).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from sacrebleu.metrics import BLEU
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

from bench.scorers.normalize import ascii_lower

NIST_ORDER = 5
_MAX_NGRAM = 9  # mteval's $max_Ngram: n-gram information is collected up to 9-grams
_tok13a = Tokenizer13a()


def mteval_tokenize(text: str) -> str:
    return _tok13a(ascii_lower(text).rstrip())


def _ngrams(words: Sequence[str], max_n: int) -> Counter:
    counts: Counter = Counter()
    for i in range(len(words)):
        for n in range(1, min(max_n, len(words) - i) + 1):
            counts[tuple(words[i:i + n])] += 1
    return counts


def _mteval_slots(refs: Sequence[str]) -> list[str | None]:
    """Reference slots for sacrebleu: an empty slot is skipped (None) unless it is the first one ('')."""
    out: list[str | None] = []
    for j, ref in enumerate(refs):
        empty = mteval_tokenize(ref) == ""
        out.append(("" if j == 0 else None) if empty else ascii_lower(ref))
    return out


def mteval_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """mteval-v13a BLEU as a fraction (0..1). references[i] lists the reference slots of hypothesis i."""
    width = max(len(r) for r in references)
    slots = [_mteval_slots(list(r) + [""] * (width - len(r))) for r in references]
    streams = [[seg[j] for seg in slots] for j in range(width)]
    stats = BLEU(tokenize="13a", lowercase=False, smooth_method="none", force=True).corpus_score(
        [ascii_lower(h) for h in hypotheses], streams)
    correct, total, sys_len, ref_len = stats.counts, stats.totals, stats.sys_len, stats.ref_len
    if sys_len == 0:
        return 0.0
    log_sum, smooth = 0.0, 1.0
    for n in range(4):
        if total[n] == 0:
            continue  # iscore = log(1) = 0
        if correct[n] == 0:
            smooth *= 2
            log_sum += math.log(1.0 / (smooth * total[n]))
        else:
            log_sum += math.log(correct[n] / total[n])
    return math.exp(min(0.0, 1.0 - ref_len / sys_len)) * math.exp(log_sum / 4)


def nist_length_penalty(ratio: float) -> float:
    if ratio >= 1:
        return 1.0
    if ratio <= 0:
        return 0.0
    beta = -math.log(0.5) / math.log(1.5) / math.log(1.5)
    return math.exp(-beta * math.log(ratio) * math.log(ratio))


def mteval_nist(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float | None:
    """mteval-v13a-sig NIST (n=5), raw. None when the references hold no words at all (0/0 in the script)."""
    ref_tokens = [[mteval_tokenize(r).split() for r in refs] for refs in references]
    # information weights from all reference n-grams of the set
    ngram_count: Counter = Counter()
    total_words = 0
    for refs in ref_tokens:
        for words in refs:
            total_words += len(words)
            ngram_count.update(_ngrams(words, _MAX_NGRAM))
    if total_words == 0:
        return None

    def info(ngram: tuple) -> float:
        prefix = ngram[:-1]
        if prefix and prefix != ("0",):  # Perl: the prefix string "0" is false
            return -math.log(ngram_count[ngram] / ngram_count[prefix]) / math.log(2)
        return -math.log(ngram_count[ngram] / total_words) / math.log(2)

    tst_info = [0.0] * (NIST_ORDER + 1)
    tst_count = [0] * (NIST_ORDER + 1)
    ref_words = 0
    n_refs = 0
    for hyp, refs in zip(hypotheses, ref_tokens, strict=True):
        words = mteval_tokenize(hyp).split()
        for n in range(1, NIST_ORDER + 1):
            tst_count[n] += max(0, len(words) - n + 1)
        ref_max: Counter = Counter()
        for ref in refs:
            n_refs += 1 if ref else 0
            ref_words += len(ref)
            for ngram, c in _ngrams(ref, NIST_ORDER).items():
                if c > ref_max[ngram]:
                    ref_max[ngram] = c
        for ngram, c in _ngrams(words, NIST_ORDER).items():
            if ngram in ref_max:
                tst_info[len(ngram)] += info(ngram) * min(c, ref_max[ngram])
    avg_refs = n_refs / len(ref_tokens)
    if avg_refs == 0:
        return None
    score = sum(tst_info[n] / max(tst_count[n], 1) for n in range(1, NIST_ORDER + 1))
    return score * nist_length_penalty(tst_count[1] / (ref_words / avg_refs))


def multi_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]], *, lowercase: bool) -> float:
    """multi-bleu.perl BLEU as a percent (the script prints it x100). Missing slots are ''."""
    width = max(len(r) for r in references)
    case = ascii_lower if lowercase else (lambda text: text)  # Perl's lc without `use utf8`: ASCII only
    streams = [[case(refs[j] if j < len(refs) else "") for refs in references] for j in range(width)]
    bleu = BLEU(tokenize="none", lowercase=False, smooth_method="none", force=True)
    return float(bleu.corpus_score([case(h) for h in hypotheses], streams).score)
