"""detrt.bench.measure: durations, interleaving order, percentiles, the too-short error (counter clock, no sleeps)."""

import numpy as np
import pytest

from detrt.bench.measure import DurationTooShort, interleave, parse_batches, parse_duration
from detrt.errors import InputError


class CounterClock:
    """A fake clock: runners advance it by their known latency; reading it costs nothing."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def runner(self, latencies):
        """A runner whose calls take latencies[0], latencies[1], ... (the last one repeats)."""
        it = iter(latencies)
        last = [None]

        def call():
            last[0] = next(it, last[0])
            self.now += last[0]

        return call


@pytest.mark.parametrize("text, seconds", [("2s", 2.0), ("500ms", 0.5), ("1m", 60.0), ("1.5", 1.5),
                                           (" 3 s ", 3.0), ("2min", 120.0), ("0.25s", 0.25)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_bare_numbers_mean_what_trtexec_means():
    assert parse_duration("200", "--warmUp", bare="ms") == 0.2  # trtexec --warmUp=200: 200 milliseconds
    assert parse_duration("3", "--duration") == 3.0  # trtexec --duration=3: 3 seconds
    assert parse_duration("2s", "--warmUp", bare="ms") == 2.0  # a unit always wins


@pytest.mark.parametrize("text", ["", "abc", "2h", "-1s", "0s", "1..2s"])
def test_parse_duration_rejects(text):
    with pytest.raises(InputError, match="--warmUp"):
        parse_duration(text, "--warmUp")


def test_parse_batches():
    assert parse_batches("8,1,4,4") == [1, 4, 8]
    for bad in ("", "0", "1,x", "-2"):
        with pytest.raises(InputError, match="--batch"):
            parse_batches(bad)


def test_interleaving_order_slow_runner_gets_the_same_time_not_more_calls():
    # exact binary fractions, so the clock sums are exact
    clock = CounterClock()
    order = []
    runners = {"A": clock.runner([0.125]), "B": clock.runner([0.375])}
    samples = interleave(runners, warmup_s=0.25, duration_s=1.0, clock=clock, order=order)
    # warm-up: A B A (B's one call covers its 0.25 s); measurement slices of 0.1 s: one call each per visit,
    # B leaves after 3 calls (1.125 s), A goes on alone until it has 1.0 s (8 calls)
    assert order == list("ABA") + list("ABABAB") + list("AAAAA")
    assert samples["A"].latencies == [0.125] * 8 and samples["B"].latencies == [0.375] * 3
    assert (samples["A"].warmup_calls, samples["B"].warmup_calls) == (2, 1)


def test_fast_runner_fills_its_slice():
    clock = CounterClock()
    order = []
    runners = {"A": clock.runner([1 / 32]), "B": clock.runner([0.25])}
    interleave(runners, warmup_s=1 / 32, duration_s=1.0, clock=clock, order=order)
    measured = "".join(order[2:])  # warm-up: one call each
    # slice = 0.1 s: A makes 4 calls (0.125 s) per visit, B one; B done after 4 visits, A after 8
    assert measured == "AAAAB" * 4 + "AAAA" * 4


def test_percentiles_from_known_latencies():
    clock = CounterClock()
    lat = [k / 1024 for k in range(1, 101)]  # 1..100 units of ~0.98 ms, summing exactly to 5050/1024 s
    rng = np.random.default_rng(0)
    shuffled = list(rng.permutation(lat))
    samples = interleave({"m": clock.runner([0.5] + shuffled)}, warmup_s=1e-9, duration_s=5050 / 1024, clock=clock)
    s = samples["m"]
    assert s.warmup_calls == 1 and s.latencies == shuffled
    st = s.stats(batch=4)
    unit = 1000 / 1024  # ms
    assert st["calls"] == 100
    assert st["min"] == pytest.approx(1 * unit) and st["max"] == pytest.approx(100 * unit)
    assert st["p50"] == pytest.approx(50.5 * unit)  # linear interpolation between ranks 50 and 51
    assert st["p90"] == pytest.approx(90.1 * unit)
    assert st["p99"] == pytest.approx(99.01 * unit)
    assert st["mean"] == pytest.approx(50.5 * unit)
    assert st["images_per_s"] == pytest.approx(4 * 100 / (5050 / 1024))


def test_duration_shorter_than_one_run_says_so():
    clock = CounterClock()
    runners = {"fast": clock.runner([0.01]), "slow": clock.runner([2.0])}
    with pytest.raises(DurationTooShort, match=r"--duration 1s is shorter than one run of slow.model at batch 8 "
                                               r"\(2 s after warm-up\)"):
        interleave(runners, 0.1, 1.0, clock=clock, what={"slow": "slow.model at batch 8"})
    assert issubclass(DurationTooShort, InputError)  # the CLI's exit 2
