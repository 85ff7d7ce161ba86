"""One short case of tests/real_cure.py: read's prescription cures a real model on real data.

Slow, and skipped where torch or scikit-learn is not installed. The wine MLP (nn.Sequential,
three hidden ReLU layers of 64), seed 0: the healthy dose (lr 0.1) and lr 2, far too high.
"""

import pytest
from real_cure import ROUNDS, judged, run_dose  # stdlib alone: torch is imported in it

torch = pytest.importorskip("torch", reason="the real cure needs torch: pip install torch")
pytest.importorskip("sklearn", reason="the real cure needs scikit-learn: pip install scikit-learn")

pytestmark = pytest.mark.slow


def test_the_wine_mlp_healthy_is_well_and_lr_2_is_cured_within_three_rounds():
    threads = torch.get_num_threads()
    try:
        healthy, sick = judged([run_dose((0, "sequential", "wine", dose)) for dose in
                                ("healthy", "lr 2")])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    untreated = healthy["rounds"][0]
    assert not untreated["failed"]
    assert untreated["well"] and untreated["prescription"] == []
    assert not healthy["false_alarm"]
    assert sick["flagged"], "read found nothing wrong with lr 2"
    assert sick["rounds"][0]["prescription"], "read prescribed nothing for lr 2"
    assert len(sick["rounds"]) <= ROUNDS + 1
    assert sick["cured"], [(r["accuracy"], r["well"], r["prescription"]) for r in sick["rounds"]]
