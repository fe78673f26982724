//! The schedule limit: the best first-visible overhead any bot could reach under a platform's
//! bot-wide budget, had it spent the budget on first texts alone, in the order the chats became
//! ready (their first chunk sent by the model).

use std::time::Duration;

use tokio::time::Instant;

use super::report::{Sample, p50_p99, percentile};

/// Below this limit a ratio measured / limit says nothing: it is printed as "–".
pub const RATIO_FLOOR_MS: f64 = 50.0;

/// Each chat's wait for its first text under a perfect scheduler with `rate` texts a second:
/// the chats in the order of `ready` (offsets from any origin, in any order), one slot every
/// 1/rate s, `slot_i = max(ready_i, slot_{i-1} + 1/rate)`, wait `slot_i − ready_i`. The waits
/// come in the order of readiness.
pub fn limits(ready: &[Duration], rate: usize) -> Vec<Duration> {
    let gap = Duration::from_secs(1) / rate.max(1) as u32;
    let mut sorted = ready.to_vec();
    sorted.sort();
    let mut previous: Option<Duration> = None;
    sorted
        .into_iter()
        .map(|at| {
            let slot = previous.map_or(at, |p| at.max(p + gap));
            previous = Some(slot);
            slot - at
        })
        .collect()
}

/// The schedule limits of one side's chats in one round, from when each was ready.
fn limits_of_round(ready: &[Instant], rate: usize) -> Vec<Duration> {
    let Some(&origin) = ready.iter().min() else {
        return Vec::new();
    };
    let offsets: Vec<Duration> = ready.iter().map(|at| *at - origin).collect();
    limits(&offsets, rate)
}

/// One side's busy rounds: the schedule limit of first-visible beside what the bot measured,
/// each as p50 / p99 in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Versus {
    /// The schedule limit of first-visible.
    pub limit: (Option<f64>, Option<f64>),
    /// The measured first-visible overhead (first chunk sent → first write carrying it).
    pub first: (Option<f64>, Option<f64>),
    /// The measured final-visible delay (last chunk sent → final text accepted).
    pub last: (Option<f64>, Option<f64>),
}

impl Versus {
    /// The figures of one side (`telegram` or Discord) over the rounds before `idle_round`, each
    /// round scheduled on its own.
    pub fn of(samples: &[Sample], telegram: bool, idle_round: usize) -> Self {
        let side: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.telegram == telegram && s.round < idle_round)
            .collect();
        let limit: Vec<Duration> = (0..idle_round)
            .flat_map(|round| {
                let of_round = side.iter().filter(|s| s.round == round);
                let ready: Vec<Instant> = of_round.filter_map(|s| s.ready).collect();
                limits_of_round(&ready, super::limits::global_rate(telegram))
            })
            .collect();
        let measured = |f: fn(&Sample) -> Option<Duration>| -> Vec<Duration> {
            side.iter().filter_map(|s| f(s)).collect()
        };
        Self {
            limit: p50_p99(&limit),
            first: p50_p99(&measured(|s| s.first)),
            last: p50_p99(&measured(|s| s.last)),
        }
    }

    /// Measured first-visible over the limit, p50 and p99; `None` where the limit is under
    /// [`RATIO_FLOOR_MS`] or a figure is missing.
    pub fn ratio(&self) -> (Option<f64>, Option<f64>) {
        let over = |measured: Option<f64>, limit: Option<f64>| {
            let limit = limit.filter(|l| *l >= RATIO_FLOOR_MS)?;
            Some(measured? / limit)
        };
        (
            over(self.first.0, self.limit.0),
            over(self.first.1, self.limit.1),
        )
    }
}

/// Checks [`limits`] against the burst of issue 15 and two small cases; panics if it is off.
///
/// The benchmark has no test harness (`harness = false`: `main` runs and `#[test]` functions are
/// never called), so this runs at every start of it, the CI smoke run included; it takes
/// microseconds. 200 chats ready at once wait i/30 s on Telegram (p50 3.33 s, p99 6.57 s) and
/// i/50 s on Discord (p50 2 s, p99 3.94 s).
pub fn self_check() {
    let near = |value: Option<f64>, want: f64| value.is_some_and(|v| (v - want).abs() < 0.5);
    let burst = limits(&[Duration::ZERO; 200], 30);
    let (p50, p99) = (percentile(&burst, 50.0), percentile(&burst, 99.0));
    assert!(
        near(p50, 3333.3) && near(p99, 6566.7),
        "Telegram burst {p50:?} {p99:?}"
    );
    let burst = limits(&[Duration::ZERO; 200], 50);
    let (p50, p99) = (percentile(&burst, 50.0), percentile(&burst, 99.0));
    assert!(
        near(p50, 2000.0) && near(p99, 3940.0),
        "Discord burst {p50:?} {p99:?}"
    );
    let ms = Duration::from_millis;
    let spread: Vec<Duration> = (0..10).map(|i| ms(100 * i)).collect();
    assert!(limits(&spread, 30).iter().all(Duration::is_zero), "spread");
    // Two at once and one 10 ms later, 20 ms apart: slots 0, 20, 40; waits 0, 20, 30.
    let mixed = limits(&[ms(10), ms(0), ms(0)], 50);
    assert_eq!(mixed, [ms(0), ms(20), ms(30)], "mixed");
}
