"""What the notebooks teach, as numbers, and how far a run may move them: shared by the checks of
the committed notebooks (`test_taught_numbers.py`) and of a fresh execution
(`test_fresh_execution.py`).

Tolerances come from the seed spread measured by `python scripts/preset_search.py` on this
repository's 2-core machine (README, "How the cpu preset was chosen").
"""

from __future__ import annotations

SPLIT_SIZES = {"train": 5532, "validation": 2275, "test": 1607}
UNFAIR = {"train": 630, "validation": 230, "test": 172}
# all-MiniLM-L6-v2 with LoRA of rank r on the 6 linear layers of each of its 6 blocks (each
# adapter adds r x (in + out)), plus the head: 384 weights and a bias. Every preset but `gpu`.
LORA_PARAMS_PER_RANK = 6 * (4 * (384 + 384) + 2 * (384 + 1536))
CPU_TRAINABLE_PARAMS = 8 * LORA_PARAMS_PER_RANK + 385
CPU_TOTAL_PARAMS = 22_897_537  # MiniLM without its pooler, which the mean-pooling head skips
FULL_TRAINABLE_PARAMS = 22_565_761  # every weight of MiniLM without its pooler, and the head
# The workshop preset: 2,000 training clauses (every unfair one), a stratified 800 of validation,
# every test clause.
WORKSHOP_SPLIT_SIZES = {"train": 2000, "validation": 800, "test": 1607}
# TF-IDF + LinearSVC trained on the workshop preset's sample, tested on every clause: deterministic.
WORKSHOP_BASELINE_F1 = 0.673
# What the default path's served model must reach on every test clause (their real ~1:9 share of
# unfair ones) at the threshold it serves: measured 0.764 on the committed run.
REAL_TEXT_F1_FLOOR = 0.70
BASELINE_F1 = 0.775  # TF-IDF + LinearSVC on the test split: deterministic
# The preset search (README, "How the cpu preset was chosen") trained it with seeds 42, 1, 2:
# test F1 0.805 / 0.800 / 0.810, PR-AUC 0.877 / 0.873 / 0.891, against the baseline's 0.775 and
# 0.868. So every seed beat the baseline by at least 0.025 F1 and ranked better; a fresh run may
# land anywhere in that range, and another machine's arithmetic moves it a little further.
LORA_F1_MARGIN = 0.02  # the least LoRA's test F1 exceeds the baseline's by: every seed did
F1_TOLERANCE = 0.02  # a fresh run's test F1 against the committed one: twice the seed range
PR_AUC_TOLERANCE = 0.03  # the same for PR-AUC, whose seed range was 0.018
WORKSHOP_MARGIN = 0.15
# LexGLUE's m-F1 of the multilabel run notebook 03 scores (README, "LexGLUE's multilabel task").
# The old recipe collapsed to 10.5, never flagging a rare category; the weighted recipe measured
# 63.2 after 3 epochs and 73.4 after 6. A run below 60 has lost the rare categories again.
MULTILABEL_MACRO_F1_FLOOR = 60.0
