import pytest

from vidrop.training.schedules import SSLSchedules, cosine_schedule, warmup_then_constant


def test_cosine_schedule_known_values():
    assert cosine_schedule(0, 110, 1.0, 0.0, warmup_steps=10) == 0.0
    assert cosine_schedule(5, 110, 1.0, 0.0, warmup_steps=10, warmup_start=0.2) == pytest.approx(0.6)
    assert cosine_schedule(10, 110, 1.0, 0.0, warmup_steps=10) == pytest.approx(1.0)
    assert cosine_schedule(60, 110, 1.0, 0.0, warmup_steps=10) == pytest.approx(0.5)  # half way down
    assert cosine_schedule(110, 110, 1.0, 0.1) == 0.1 and cosine_schedule(500, 110, 1.0, 0.1) == 0.1
    values = [cosine_schedule(s, 100, 0.996, 1.0) for s in range(101)]
    assert all(a <= b for a, b in zip(values, values[1:]))  # momentum only rises


def test_teacher_temperature_warmup():
    assert warmup_then_constant(0, 30, 0.04, 0.07) == 0.04
    assert warmup_then_constant(15, 30, 0.04, 0.07) == pytest.approx(0.055)
    assert warmup_then_constant(30, 30, 0.04, 0.07) == 0.07 and warmup_then_constant(3, 0, 0.04, 0.07) == 0.07


def test_ssl_schedules_are_a_function_of_the_step():
    schedules = SSLSchedules(total_steps=100, warmup_steps=10, teacher_temperature_warmup_steps=20)
    start, end = schedules.at(0), schedules.at(100)
    assert start == pytest.approx({"lr": 0.0, "weight_decay": 0.04, "momentum": 0.996, "teacher_temperature": 0.04})
    assert end == pytest.approx({"lr": 1e-6, "weight_decay": 0.2, "momentum": 1.0, "teacher_temperature": 0.07})
    assert schedules.at(10)["lr"] == pytest.approx(5e-4)
    same = SSLSchedules(total_steps=100, warmup_steps=10, teacher_temperature_warmup_steps=20)
    assert schedules.at(37) == same.at(37)


def test_bad_schedule_lengths_are_clear_errors():
    with pytest.raises(ValueError, match="total_steps=0, warmup_steps=0; allowed: total_steps >= 1"):
        cosine_schedule(0, 0, 1.0, 0.0)
    with pytest.raises(ValueError, match="warmup_steps=20"):
        cosine_schedule(0, 10, 1.0, 0.0, warmup_steps=20)
