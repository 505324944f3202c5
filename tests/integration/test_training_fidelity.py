""" "Does it learn?" on the tiny preset, against an untrained network and in the right direction
(the demo figures: docs/notes/training.md).

A small judge CNN is trained once on the real training split (gender, view, Cardiomegaly).

- G1 is conditioned: after 600 stage-1 steps the judge reads the requested gender/view off G1's
  samples clearly better than off an untrained G1 of the same shape (measured: mean accuracy
  0.65 vs 0.50; gender 0.765). At 150 steps it is not yet (0.53), so the old check — the same z
  with flipped labels gives a different image — passed for an untrained G1 as well (11 grey
  levels mean difference against a threshold of 0.5).
- Stage 2 learns the finding in the right direction: from the very same stage-1 images (150 +
  150 steps), the judge's Cardiomegaly score is higher when stage 2 is asked for it (measured
  AUC 0.93, higher in 100 % of pairs). The old check |AUC − 0.5| > 0.2 also passed for the
  opposite direction.

Not asserted, and recorded in docs/notes/training.md: on the 600-step G1, stage 2 at 100–150
steps moves the judge the *wrong* way (AUC 0.45 / 0.42); the judge already scores those
stage-1 images 0.79 for Cardiomegaly, i.e. it is out of its distribution there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.data.splits import patient_split
from gdgan.models.gdgan import build_stage1
from gdgan.store.local import LocalStore
from gdgan.training import fidelity
from gdgan.training.api import train
from gdgan.training.data import resize_uint8
from gdgan.training.sampling import LoadedGenerator, load_generator

pytestmark = pytest.mark.integration
EVERY = {"checkpoint_every": 10000}


def _general_acc(stage1: dict[str, float] | None) -> float:
    assert stage1 is not None
    return (stage1["acc_gender"] + stage1["acc_view"]) / 2


def test_tiny_gdgan_beats_untrained_g1_and_stage2_goes_the_right_way(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    # The calibrated look (the defaults until the fourth wave): these figures measure whether the
    # tiny GAN learns in 600 steps, not the phantom. On the radiograph default the 600-step G1 is
    # not yet readable for view (judge: gender 0.675, view 0.52 vs 0.50 untrained; mean 0.5975).
    ds = make_phantom(
        PhantomConfig(
            n=1000, size=32, seed=0, prevalence={"Cardiomegaly": 0.3}, label_noise=0.0, look="calibrated"
        )
    )
    split = patient_split(ds.labels["patient_id"], 0)
    store = LocalStore(tmp_path / "store")
    judge = fidelity.train_label_classifier(
        resize_uint8(np.asarray(ds.images[split.train]), 32),
        fidelity._targets(ds, split.train),
        epochs=6,
        seed=0,
    )

    def measure(gen: LoadedGenerator) -> fidelity.FidelityReport:
        rep = fidelity.measure(ds, split.train, split.test, gen, None, n_samples=200, classifier=judge)
        print(gen.model_id, rep.to_dict())
        return rep

    # the judge itself works on real images
    r1 = train("stage1", ds, store=store, preset="tiny", overrides={"steps": 600, **EVERY}, device="cpu")
    trained = measure(load_generator(store, r1.model_id, device="cpu"))
    assert trained.real["acc_gender"] > 0.7 and trained.real["acc_view"] > 0.8
    # G1 is conditioned: compared with an untrained G1 of the same shape
    torch.manual_seed(0)
    g1_untrained, _ = build_stage1(trained_gan := load_generator(store, r1.model_id, device="cpu").gan)
    untrained = measure(LoadedGenerator("untrained", "gdgan-stage1", trained_gan, {}, g1=g1_untrained))
    assert _general_acc(untrained.stage1) < 0.56  # chance: the judge cannot read labels off noise
    assert _general_acc(trained.stage1) > _general_acc(untrained.stage1) + 0.1
    assert trained.stage1 is not None and trained.stage1["acc_gender"] > 0.65

    # stage 2, from the very same stage-1 images, raises the judge's Cardiomegaly score
    r = train("gdgan", ds, store=store, preset="tiny", overrides={"steps": 150, **EVERY}, device="cpu")
    rep = measure(load_generator(store, r.model_id, device="cpu"))
    assert rep.stage2 is not None
    # calibrated phantom (issue 11; clean labels here): measured AUC 0.61, paired win 84 % at this
    # budget (AUC 0.93 on the easier phantom before it): the right direction, above chance
    assert rep.stage2["auc_cardiomegaly"] > 0.55 and rep.stage2["paired_win_rate"] > 0.8
    assert rep.stage2["mean_score_with"] > rep.stage2["mean_score_without"]
