"""Tests of the prescription: hand-made reports get the treatment the table names."""

import math
from dataclasses import replace

import pytest

import main

LAYERS = 4


def report(epoch, loss=1.0, **readings):
    """An examined report of LAYERS hidden layers that trips no warning, but
    for readings; its "warnings" are what the examination would give it."""
    healthy = dict(
        epoch=epoch,
        loss=loss,
        activation_mean=[0.5] * LAYERS,
        activation_std=[0.5] * LAYERS,
        gradient_std=[1e-2] * LAYERS,
        dead_count=[0] * LAYERS,
        layer_neuron_count=[16] * LAYERS,
        saturation_rate=[0.0] * LAYERS,
        nonfinite_count=[0] * LAYERS,
        update_ratio=[main.STEADY_STEPS] * LAYERS,
    )
    examined = {**healthy, **readings}
    examined["warnings"], examined["calm"] = main.examination_warnings(examined)
    return examined


def dosing(**changes):
    """The healthy dosing, named by no patient, with changes."""
    return main.patient("hand-made", **changes)


def names(prescription):
    return [treatment.name for treatment in prescription]


def test_a_healthy_report_gets_nothing():
    assert report(1)["warnings"] == []
    assert main.prescribe([report(1, loss=0.5), report(2, loss=0.01)], dosing()) == []


def test_init_scale_is_the_init_std_over_the_recommended_one_geometric_mean_over_layers():
    # The lesson's sick dose, std 1 where Kaiming gives sqrt(2 / fan_in): 0.5
    # for fan_in 8, then 2^-1.5 four times; ratios 2 and 2^1.5: 2^(7/5).
    sick = dosing(init_mode="bad", weight_scale_override=1.0)
    assert main.init_scale(sick) == pytest.approx(2**1.4, rel=1e-12)
    # Tanh against Xavier, sqrt(2 / (fan_in + fan_out)), layer by layer.
    tanh = dosing(init_mode="bad", weight_scale_override=0.03, activation="tanh")
    xavier = [math.sqrt(2 / 24), 0.25, 0.25, 0.25, math.sqrt(2 / 20)]
    assert main.init_scale(tanh) == pytest.approx(0.03 / math.prod(xavier) ** 0.2, rel=1e-12)
    assert main.init_scale(dosing()) == 1.0
    assert main.CONDITIONS["init too large"](sick, [])
    assert main.CONDITIONS["init off by 2x"](sick, [])
    assert main.CONDITIONS["init too small"](tanh, [])
    assert not any(
        main.CONDITIONS[name](dosing(), []) for name in ("init too large", "init too small")
    )


@pytest.mark.parametrize(
    ("ratios", "nudge", "factor"),
    [
        ([0.07, 0.007, 0.0007, 0.007], 1.0, 0.1),  # the largest layer's ratio, 10x too fast
        ([math.nan, 0.07, math.nan, 0.007], 1.0, 0.1),  # NaN layers have no say
        ([0.0007] * LAYERS, 2.0, 10.0),  # 10x too slow
        ([0.0105] * LAYERS, 1.0, 2 / 3),  # 1.5x too fast...
        ([0.0105] * LAYERS, 2.0, 0.5),  # ...nudged by at least 2x
        ([0.0035] * LAYERS, 2.0, 2.0),  # 2x too slow
        ([0.007] * LAYERS, 2.0, 2.0),  # steady: the least nudge up
        ([7e-6] * LAYERS, 1.0, 30.0),  # at most 30x
        ([0.0] * LAYERS, 1.0, 30.0),  # steps that move nothing
        ([math.nan] * LAYERS, 1.0, 1 / 30),  # no finite ratio: as fast as steps can be
    ],
)
def test_steady_factor_moves_the_learning_rate_toward_steady_steps(ratios, nudge, factor):
    reports = [report(1, update_ratio=ratios), report(2)]
    assert main.steady_factor(reports, nudge) == pytest.approx(factor, rel=1e-12)


def test_dead_neurons_after_fast_steps_get_a_lower_learning_rate():
    # Epoch-1 steps ten times STEADY_STEPS: the learning rate goes down 10x.
    reports = [
        report(1, update_ratio=[10 * main.STEADY_STEPS] * LAYERS),
        report(2, dead_count=[12, 0, 0, 0]),
    ]
    (treatment,) = main.prescribe(reports, dosing())
    assert treatment.name == "learning rate x 0.1"
    assert treatment.change == {"learning_rate": pytest.approx(0.005)}
    assert treatment.reason == "answers dead neurons at epoch 2 (Karpathy, CS231n notes)"


def test_dead_neurons_after_steady_steps_get_a_leaky_relu():
    reports = [report(1), report(2, dead_count=[12, 0, 0, 0])]
    assert names(main.prescribe(reports, dosing())) == ["leaky ReLU"]


def test_the_init_comes_first_when_it_is_off():
    # The lesson's sick dose: std 1 where Kaiming gives about 0.35.
    sick = dosing(init_mode="bad", weight_scale_override=1.0)
    reports = [report(1, gradient_std=[1e-2, 1e-2, 1e-2, 50.0])]
    (treatment,) = main.prescribe(reports, sick)
    assert treatment.name == "kaiming init"
    assert treatment.reason == "answers exploding gradients at epoch 1 (He et al. 2015)"
    tanh = dosing(init_mode="bad", weight_scale_override=0.03, activation="tanh")
    vanishing = [report(1, gradient_std=[1e-9] * LAYERS)]
    assert names(main.prescribe(vanishing, tanh)) == ["xavier init"]


def test_exploding_gradients_with_steady_steps_get_clipping():
    reports = [report(1, gradient_std=[1e-2, 1e-2, 1e-2, 50.0])]
    (treatment,) = main.prescribe(reports, dosing())
    assert treatment.name == "gradient clipping at 1"
    assert treatment.change == {"clip": main.CLIP_NORM}


def test_blown_up_steps_cut_the_learning_rate_by_the_most_one_round_allows():
    # No finite update ratio at all (NaN weights): as fast as steps can be.
    reports = [report(1, update_ratio=[math.nan] * LAYERS, nonfinite_count=[0, 0, 0, 9])]
    (treatment,) = main.prescribe(reports, dosing())
    assert treatment.change["learning_rate"] == pytest.approx(0.05 / main.LR_FACTOR_LIMIT)


def test_one_treatment_per_family_and_at_most_two():
    # Exploding gradients and saturation (one family: the explosion speaks
    # for it, with clipping; saturation alone would get a layer norm), dead
    # neurons, and collapse (its layer norm would be a third treatment).
    reports = [
        report(
            1,
            gradient_std=[1e-2, 1e-2, 1e-2, 50.0],
            saturation_rate=[0.9, 0, 0, 0],
            dead_count=[0, 12, 0, 0],
            activation_std=[0.5, 0.5, 1e-6, 0.5],
        )
    ]
    prescription = main.prescribe(reports, dosing())
    assert names(prescription) == ["gradient clipping at 1", "leaky ReLU"]
    assert [t.reason.split(" at ")[0] for t in prescription] == [
        "answers exploding gradients",
        "answers dead neurons",
    ]


def test_the_first_sign_is_answered_before_the_last_epochs_warnings():
    # Exploding gradients at epoch 1, dead neurons at the last: the dead
    # neurons are most often the explosion's aftermath.
    reports = [
        report(1, gradient_std=[1e-2, 1e-2, 1e-2, 50.0]),
        report(2, dead_count=[12, 0, 0, 0]),
    ]
    assert names(main.prescribe(reports, dosing())) == ["gradient clipping at 1"]
    # Already clipped, nothing is left for the first sign: the last epoch's turn.
    (treatment,) = main.prescribe(reports, dosing(clip=main.CLIP_NORM))
    assert treatment.reason == "answers dead neurons at epoch 2 (Maas, Hannun and Ng 2013)"


def test_no_progress_without_a_warning_gets_adam_first():
    # Never warned, but the loss ended at 1.2: Kingma and Ba's Adam comes first.
    reports = [report(1, update_ratio=[main.STEADY_STEPS / 10] * LAYERS), report(30, loss=1.2)]
    (treatment,) = main.prescribe(reports, dosing())
    assert treatment.name == f"Adam at lr={main.ADAM_LEARNING_RATE:g}"
    assert treatment.change == {"optimizer": "adam", "learning_rate": main.ADAM_LEARNING_RATE}
    assert treatment.reason == "answers no progress in 30 epochs (Kingma and Ba 2015)"


def falling(*losses):
    """Reports of epochs 1.. with these losses and no warning."""
    return [report(epoch, loss=loss) for epoch, loss in enumerate(losses, start=1)]


def test_a_loss_still_falling_trains_twice_as_long_once():
    on_adam = dosing(optimizer="adam", learning_rate=main.ADAM_LEARNING_RATE, untreated_epochs=6)
    still = falling(2.0, 1.0, 0.5, 0.4, 0.3, 0.2)  # 0.2 <= 0.9 * 2.0 over the last five epochs
    (treatment,) = main.prescribe(still, replace(on_adam, epochs=6))
    assert treatment.name == "12 epochs instead of 6"
    assert treatment.change == {"epochs": 12}
    # Not twice: a dosing already trained longer gets the next row that
    # answers (its steps are steady, so the least nudge of the learning rate).
    longer = main.prescribe(falling(2.0, 1.0, 0.5, 0.4, 0.3, 0.2), replace(on_adam, epochs=12))
    assert names(longer) == ["learning rate x 2"]
    # Not when the loss has stopped falling: 0.2 > 0.9 * 0.21.
    flat = main.prescribe(falling(0.21, 0.21, 0.2, 0.2, 0.2, 0.2), replace(on_adam, epochs=6))
    assert names(flat) == ["learning rate x 2"]


def test_a_tried_dosing_is_passed_over():
    # Adam tried: steady steps on SGD get the least nudge up instead.
    reports = [report(1), report(30, loss=1.2)]
    adam = main.apply_treatments(dosing(), main.prescribe(reports, dosing()))
    tried = [dosing(), adam]
    first = main.prescribe(reports, dosing(), tried)
    assert names(first) == ["learning rate x 2"]
    tried.append(main.apply_treatments(dosing(), first))
    assert names(main.prescribe(reports, dosing(), tried)) == ["learning rate x 0.5"]


def test_the_name_is_never_read():
    reports = [report(1, update_ratio=[0.1] * LAYERS), report(2, dead_count=[12, 0, 0, 0])]
    assert main.prescribe(reports, dosing()) == main.prescribe(
        reports, replace(dosing(), patient="sick", label="SICK")
    )


def test_a_round_is_set_back_when_a_quiet_patient_ends_no_lower():
    # Before: the last epoch warned nothing, and the loss was 0.5.
    before = [report(30, loss=0.5)]
    assert main.set_back([report(30, loss=0.5)], before)
    assert not main.set_back([report(30, loss=0.4)], before)
    # A patient that still warned cannot be set back by a round.
    warned = [report(30, loss=0.5, dead_count=[12, 0, 0, 0])]
    assert not main.set_back([report(30, loss=0.9)], warned)
