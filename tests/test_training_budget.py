"""Training on a time budget (``TrainingSettings.minutes``, ``train --minutes``, ``fit --minutes``; issue #38).

The trainer's clock is replaced by one that a slowed step advances, so that the tests say exactly how many
steps a budget buys on a machine of a given speed, and how the learning rate follows the share of the budget
spent, without depending on this machine's speed.
"""

from __future__ import annotations

import math
import types

import pytest
import torch

from lgtutorial.score import training as training_module
from lgtutorial.score.schedules import one_cycle_learning_rate
from lgtutorial.score.settings import TrainingSettings, UNetSettings
from lgtutorial.score.step import TrainingStep
from lgtutorial.score.training import TrainingInterrupted, train_score_model
from lgtutorial.synthetic import blobs

MODEL = UNetSettings(channels=1, latent_channels=4, depth=1, num_blocks=1)
RATES = dict(initial_lr=1e-3, peak_lr=1e-2, final_lr=1e-5, warmup_fraction=0.3)


def _settings(**changes):
    base = dict(patch_size=16, n_patches=64, batch_size=4, steps=100_000, eval_every=10, checkpoint_every=1000,
                device="cpu", minutes=1.0, **RATES)
    return TrainingSettings(**{**base, **changes})


class _SlowMachine:
    """A clock for the trainer that stands still except while a step runs: step ``k`` takes ``seconds(k)``."""

    def __init__(self, monkeypatch, seconds):
        self.now, self.seconds, self.rates = 1000.0, seconds, []
        clock = types.SimpleNamespace(perf_counter=lambda: self.now, strftime=training_module.time.strftime)
        monkeypatch.setattr(training_module, "time", clock)
        real_step = TrainingStep.__call__

        def slowed(step_self, patches, step):
            rate = []
            hook = step_self.optimizer.register_step_pre_hook(lambda optimizer, *_: rate.append(
                optimizer.param_groups[0]["lr"]))  # the rate the step runs with
            loss = real_step(step_self, patches, step)
            hook.remove()
            self.rates.append((step_self.budget_fraction, rate[0]))
            self.now += self.seconds(step)
            return loss

        monkeypatch.setattr(TrainingStep, "__call__", slowed)


def test_the_one_cycle_rate_of_a_fraction_is_torchs_one_cycle_schedule():
    steps = 200
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=RATES["initial_lr"])
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=RATES["peak_lr"], total_steps=steps, pct_start=RATES["warmup_fraction"],
        anneal_strategy="cos", div_factor=RATES["peak_lr"] / RATES["initial_lr"],
        final_div_factor=RATES["initial_lr"] / RATES["final_lr"], cycle_momentum=False)
    ours = []
    for step in range(steps):
        ours.append(one_cycle_learning_rate(step / (steps - 1), **RATES))
        assert optimizer.param_groups[0]["lr"] == pytest.approx(ours[-1], rel=0.03, abs=1e-6)
        optimizer.step()
        scheduler.step()
    assert max(ours) == pytest.approx(RATES["peak_lr"], rel=1e-3) and ours[-1] == RATES["final_lr"]


def test_a_budget_trains_until_its_time_is_spent_and_anneals_by_the_end(monkeypatch):
    machine = _SlowMachine(monkeypatch, lambda step: 2.0)  # 2 s a step: a 1-minute budget buys 30 steps
    run = train_score_model(blobs(32, 1.5), model_settings=MODEL, training_settings=_settings(), progress=False)
    assert run.history["step"][-1] == 30 and not run.stopped_at_time_limit
    assert run.wall_time_s == pytest.approx(60.0) and run.steps_per_second == pytest.approx(0.5)
    fractions = [f for f, _ in machine.rates]
    assert fractions == pytest.approx([2.0 * k / 60.0 for k in range(30)])
    # each step runs with the one-cycle rate of the share of the budget spent before it
    for fraction, rate in machine.rates:
        assert rate == pytest.approx(one_cycle_learning_rate(fraction, **RATES))
    rates = [rate for _, rate in machine.rates]
    peak = rates.index(max(rates))
    assert 8 <= peak <= 10  # 30 % of 30 steps
    assert rates[-1] < 0.01 * RATES["peak_lr"] < rates[0]  # annealed by the end of the budget


def test_a_machine_that_slows_down_still_stops_on_time_with_an_annealed_rate(monkeypatch):
    # 1 s a step for the first 20 s, then 4 s a step (another job started): the steps of a plan measured at the
    # start (60) would have run 3 minutes; the budget stops at 1 minute with the learning-rate cycle completed
    machine = _SlowMachine(monkeypatch, lambda step: 1.0 if step < 20 else 4.0)
    run = train_score_model(blobs(32, 1.5), model_settings=MODEL, training_settings=_settings(), progress=False)
    assert run.history["step"][-1] == 30 and run.wall_time_s == pytest.approx(60.0)
    fractions = [f for f, _ in machine.rates]
    assert fractions[-1] == pytest.approx(56.0 / 60.0)
    assert machine.rates[-1][1] < 0.03 * RATES["peak_lr"]


def test_steps_cap_a_budget(monkeypatch):
    _SlowMachine(monkeypatch, lambda step: 1.0)
    run = train_score_model(blobs(32, 1.5), model_settings=MODEL, training_settings=_settings(steps=7),
                            progress=False)
    assert run.history["step"][-1] == 7 and run.wall_time_s == pytest.approx(7.0)


def test_an_interrupted_budget_resumes_for_what_is_left_and_keeps_its_schedule(monkeypatch, tmp_path):
    machine = _SlowMachine(monkeypatch, lambda step: 2.0)

    def interrupt(info):
        if info["step"] == 12:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        train_score_model(blobs(32, 1.5), model_settings=MODEL, training_settings=_settings(), output=tmp_path,
                          progress=False, callback=interrupt)
    first = list(machine.rates)
    run = train_score_model(blobs(32, 1.5), model_settings=MODEL, training_settings=_settings(), output=tmp_path,
                            progress=False, resume=True)
    assert run.history["step"][-1] == 30 and run.wall_time_s == pytest.approx(60.0)
    resumed = machine.rates[len(first):]
    assert [f for f, _ in resumed] == pytest.approx([2.0 * k / 60.0 for k in range(12, 30)])
    assert resumed[0][1] == pytest.approx(one_cycle_learning_rate(24.0 / 60.0, **RATES))
    # a budget already spent trains no further
    again = train_score_model(blobs(32, 1.5), model_settings=MODEL, training_settings=_settings(), output=tmp_path,
                              progress=False, resume=True)
    assert again.history["step"][-1] == 30 and math.isnan(again.steps_per_second)


def test_a_budget_is_part_of_the_run_a_resume_must_repeat(monkeypatch, tmp_path):
    _SlowMachine(monkeypatch, lambda step: 30.0)
    train_score_model(blobs(32, 1.5), model_settings=MODEL, training_settings=_settings(), output=tmp_path,
                      progress=False)
    with pytest.raises(ValueError, match="minutes: 1.0 -> 2.0"):
        train_score_model(blobs(32, 1.5), model_settings=MODEL, training_settings=_settings(minutes=2.0),
                          output=tmp_path, progress=False, resume=True)


@pytest.mark.parametrize("minutes", [0, -1, float("nan"), float("inf"), "5"])
def test_bad_budgets_are_refused_naming_the_option(minutes):
    with pytest.raises(ValueError, match="minutes"):
        _settings(minutes=minutes)


def test_train_minutes_lifts_the_presets_step_count_and_steps_cap_it():
    from lgtutorial.cli.train import TrainSettings
    from lgtutorial.score.settings import BUDGET_STEP_CAP

    assert TrainSettings("nbsa-proxy", minutes=5).training_settings().steps == BUDGET_STEP_CAP
    assert TrainSettings("nbsa-proxy", minutes=5, steps=40).training_settings().steps == 40
    assert TrainSettings("nbsa-proxy").training_settings().minutes is None
    with pytest.raises(ValueError, match="--minutes"):
        TrainSettings("nbsa-proxy", minutes=0)


def test_train_minutes_on_the_command_line(tmp_path, monkeypatch, capsys):
    from lgtutorial.cli.main import main

    _SlowMachine(monkeypatch, lambda step: 3.0)  # 0.1 min: 2 steps
    out = tmp_path / "t"
    assert main(["train", "nbsa-proxy", "--minutes", "0.1", "--device", "cpu", "--batch-size", "2",
                 "--report-samples", "0", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "trained 2 steps in 0.1 min of a 0.1 min budget (0.33 steps/s)" in printed


def test_a_fit_plan_is_a_budget_and_a_plan_from_before_budgets_keeps_its_steps():
    from lgtutorial.fitting.plan import plan_fit
    from lgtutorial.score.settings import BUDGET_STEP_CAP

    plan = plan_fit(blobs(64, 2.0), minutes=2.0, device="cpu", measure_speed=False)
    assert plan.training_settings.minutes == 2.0 and plan.training_settings.steps == BUDGET_STEP_CAP
    assert plan.expected_steps == 120 and "training until 2 min are spent" in plan.describe()
    old = plan_fit(blobs(64, 2.0), minutes=2.0, device="cpu", steps=50, time_budget=False)
    assert old.training_settings.minutes is None and old.training_settings.steps == 50
