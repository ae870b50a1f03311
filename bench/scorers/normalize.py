"""Text preparation exactly as each official evaluation pipeline does it before scoring.

- E2E (`e2e-metrics/measure_scores.py`): lines are stripped; the reference CSV gets four encoding repairs
  (Ł, Â£ -> £; Ã©, ã© -> é). mteval lowercases ASCII letters only (`tr/[A-Z]/[a-z]/`).
- WebNLG 2017 (DART repo, `webnlg-automatic-evaluation/evaluation.py`): hypotheses are unidecoded, lower-cased
  and split around every non-word character; references are split first, then lower-cased and unidecoded.
- DART (`dart_reference/all-delex-reference{0,1,2}.lex`): the first three references of each entry, split
  around every non-word character, whitespace collapsed, lower-cased (no unidecode). This rule regenerates all
  3 x 5,097 lines of the official files from `dart-v1.1.1-full-test.xml` (checked: 0 mismatches).
"""
from __future__ import annotations

import re

from unidecode import unidecode

_NON_WORD = re.compile(r"(\W)")
_ASCII_UPPER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_E2E_CSV_REPAIRS = (("Ł", "£"), ("Â£", "£"), ("Ã©", "é"), ("ã©", "é"))

WEBNLG_MAX_REFS = 3  # bleu_eval_3ref.sh, meteor -r 3, ter 3ref files
DART_MAX_REFS = 3    # all-delex-reference0..2.lex


def ascii_lower(text: str) -> str:
    """Lowercase A-Z only, as mteval's `tr/[A-Z]/[a-z]/` (É stays É)."""
    return text.translate(_ASCII_UPPER)


def e2e_reference(text: str) -> str:
    """A reference as e2e-metrics reads it from the CSV."""
    for bad, good in _E2E_CSV_REPAIRS:
        text = text.replace(bad, good)
    return text.strip()


def _split_non_word(text: str) -> str:
    return " ".join(" ".join(_NON_WORD.split(text)).split())


def webnlg_hypothesis(text: str) -> str:
    return _split_non_word(unidecode(unidecode(text.strip()).lower()))


def webnlg_reference(text: str) -> str:
    return unidecode(_split_non_word(text).lower())


def dart_reference(text: str) -> str:
    """A raw DART reference turned into the line the official .lex files hold."""
    return _split_non_word(text).lower()
