//! The results table: one column per N, budgets beside the measured values.

use std::time::Duration;

use super::bot::Usage;
use super::drive::Side;
use super::llm::Shape;
use super::report::{Logs, Sample, p50_p99};
use super::schedule::{RATIO_FLOOR_MS, Versus};

/// Each bot process's usage when idle after start and after the rounds, and its idle CPU rate
/// (one entry per instance).
#[derive(Debug, Clone)]
pub struct Usages {
    /// After start, before the first message.
    pub idle: Vec<Usage>,
    /// After the last round.
    pub busy: Vec<Usage>,
    /// CPU seconds a second while idle.
    pub idle_cpu: Vec<f64>,
}

/// What one size ran: N, the load at its start, the number of its idle round (the busy rounds
/// come before it), the busy rounds' wall time, and whether it was a smoke run.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Conversations.
    pub n: usize,
    /// The one-minute load average at start.
    pub load: f64,
    /// The round sent after the bot idled.
    pub idle_round: usize,
    /// Wall time of the busy rounds.
    pub wall: Duration,
    /// Only completeness and exactness count.
    pub smoke: bool,
}

/// The results of one size.
#[derive(Debug, Clone)]
pub struct Row {
    n: usize,
    load: f64,
    /// Replies expected.
    pub replies: usize,
    /// Replies shown complete and exact.
    pub exact: usize,
    ingest: (Option<f64>, Option<f64>),
    ingest_by_side: [(Option<f64>, Option<f64>); 2],
    /// p99 of each round's ingest latency.
    ingest_by_round: Vec<Option<f64>>,
    /// Ingest of the busy rounds, and of the round after the idle period.
    ingest_busy: (Option<f64>, Option<f64>),
    ingest_idle: (Option<f64>, Option<f64>),
    /// The longest wait of an idle-round Telegram message for a poll, in ms.
    idle_poll_wait: Option<f64>,
    first: (Option<f64>, Option<f64>),
    first_all: (Option<f64>, Option<f64>),
    paced: usize,
    last: (Option<f64>, Option<f64>),
    /// The schedule limit beside the measured figures of the busy rounds, Telegram and Discord.
    versus: [Versus; 2],
    edits: f64,
    too_many: (usize, usize),
    /// Per instance: CPU seconds per 1,000 replies (of all instances' replies), idle CPU,
    /// peak and idle RSS.
    cpu_per_1000: Vec<f64>,
    idle_cpu_ms: Vec<f64>,
    peak_mb: Vec<f64>,
    idle_mb: Vec<f64>,
    wall: Duration,
    smoke: bool,
}

impl Row {
    /// Summarises the samples of one size; CPU per reply counts the busy rounds only.
    pub fn new(run: Run, samples: &[Sample], logs: &Logs, usage: Usages) -> Self {
        let Run {
            n,
            load,
            idle_round,
            wall,
            smoke,
        } = run;
        let all = |f: fn(&Sample) -> Option<Duration>| -> Vec<Duration> {
            samples.iter().filter_map(f).collect()
        };
        let ingest_of = |idle: bool| -> Vec<Duration> {
            let of = samples.iter().filter(|s| (s.round == idle_round) == idle);
            of.filter_map(|s| s.ingest).collect()
        };
        let busy_replies = samples.iter().filter(|s| s.round < idle_round).count();
        let idle_waits = samples.iter().filter(|s| s.round == idle_round);
        let idle_poll_wait = idle_waits.filter_map(|s| s.waited_for_poll).max();
        let unpaced: Vec<Duration> = samples
            .iter()
            .filter(|s| !s.first_paced)
            .filter_map(|s| s.first)
            .collect();
        let replies = samples.len();
        let edits: usize = samples
            .iter()
            .map(|s| s.writes.saturating_sub(s.messages))
            .sum();
        Self {
            n,
            load,
            replies,
            exact: samples.iter().filter(|s| s.exact).count(),
            ingest: p50_p99(&all(|s| s.ingest)),
            ingest_by_side: [true, false].map(|telegram| {
                let side = samples.iter().filter(|s| s.telegram == telegram);
                p50_p99(&side.filter_map(|s| s.ingest).collect::<Vec<_>>())
            }),
            ingest_by_round: {
                let rounds = samples.iter().map(|s| s.round + 1).max().unwrap_or(0);
                (0..rounds)
                    .map(|round| {
                        let of_round = samples.iter().filter(|s| s.round == round);
                        p50_p99(&of_round.filter_map(|s| s.ingest).collect::<Vec<_>>()).1
                    })
                    .collect()
            },
            ingest_busy: p50_p99(&ingest_of(false)),
            ingest_idle: p50_p99(&ingest_of(true)),
            idle_poll_wait: idle_poll_wait.map(|w| w.as_secs_f64() * 1000.0),
            first: p50_p99(&unpaced),
            first_all: p50_p99(&all(|s| s.first)),
            paced: samples.iter().filter(|s| s.first_paced).count(),
            last: p50_p99(&all(|s| s.last)),
            versus: [true, false].map(|telegram| Versus::of(samples, telegram, idle_round)),
            edits: edits as f64 / replies.max(1) as f64,
            too_many: logs.too_many,
            cpu_per_1000: usage
                .busy
                .iter()
                .zip(&usage.idle)
                .map(|(busy, idle)| {
                    (busy.cpu_secs - idle.cpu_secs) * 1000.0 / busy_replies.max(1) as f64
                })
                .collect(),
            idle_cpu_ms: usage.idle_cpu.iter().map(|c| c * 1000.0).collect(),
            peak_mb: usage.busy.iter().map(|u| u.peak_mb).collect(),
            idle_mb: usage.idle.iter().map(|u| u.rss_mb).collect(),
            wall,
            smoke,
        }
    }
}

/// One figure per instance: the figure alone for one, else each and their sum (`a / b / sum`).
fn each_and_sum(values: &[f64], digits: usize) -> String {
    let one = |v: f64| format!("{v:.digits$}");
    if values.len() == 1 {
        return one(values[0]);
    }
    let mut cells: Vec<String> = values.iter().map(|v| one(*v)).collect();
    cells.push(one(values.iter().sum()));
    cells.join(" / ")
}

fn ms(pair: (Option<f64>, Option<f64>)) -> String {
    let one = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.1}"));
    format!("{} / {}", one(pair.0), one(pair.1))
}

fn ratio(pair: (Option<f64>, Option<f64>)) -> String {
    let one = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2}"));
    format!("{} / {}", one(pair.0), one(pair.1))
}

/// The table in Markdown, with the budgets of issue 6 (timings are not judged in smoke runs);
/// `only` is the one platform of every conversation, if the run had one.
pub fn render(rows: &[Row], shape: &Shape, only: Option<Side>) -> String {
    let sides = match only {
        None => "even conversations on Telegram, odd ones on Discord",
        Some(Side::Telegram) => "every conversation on Telegram",
        Some(Side::Discord) => "every conversation on Discord",
    };
    let mut lines = vec![format!(
        "Replies of {} characters at {} tokens/s ({} characters a token), first token after {} ms; \
         Telegram and Discord pace 1 call/s per chat (production defaults); {sides}.",
        shape.reply_chars,
        shape.tokens_per_sec,
        shape.token_chars,
        shape.first_token.as_millis()
    )];
    let header: Vec<String> = rows.iter().map(|r| format!("N={}", r.n)).collect();
    lines.push(format!("\n| metric | budget | {} |", header.join(" | ")));
    lines.push(format!("|---|---|{}", "---|".repeat(rows.len())));
    let mut line = |name: &str, budget: &str, cell: &dyn Fn(&Row) -> String| {
        let cells: Vec<String> = rows.iter().map(cell).collect();
        lines.push(format!("| {name} | {budget} | {} |", cells.join(" | ")));
    };
    line("load average (1 min) at start", "", &|r| {
        format!("{:.2}", r.load)
    });
    line("replies exact / expected", "all", &|r| {
        format!("{} / {}", r.exact, r.replies)
    });
    line("429s from Telegram / Discord", "0", &|r| {
        format!("{} / {}", r.too_many.0, r.too_many.1)
    });
    line(
        "ingest latency p50 / p99 (ms)",
        "p99 ≤ 5 (N=100), ≤ 20 (N=1000)",
        &|r| ms(r.ingest),
    );
    line("… p99 on Telegram / Discord (ms)", "", &|r| {
        let p99 = |i: usize| {
            r.ingest_by_side[i]
                .1
                .map_or("–".into(), |v| format!("{v:.1}"))
        };
        format!("{} / {}", p99(0), p99(1))
    });
    line(
        "… p99 in each round, the last after idling (ms)",
        "",
        &|r| {
            let p99 = |v: &Option<f64>| v.map_or("–".into(), |v| format!("{v:.1}"));
            r.ingest_by_round
                .iter()
                .map(p99)
                .collect::<Vec<String>>()
                .join(" / ")
        },
    );
    line("… p50 / p99 of the busy rounds (ms)", "", &|r| {
        ms(r.ingest_busy)
    });
    line(
        "… p50 / p99 after idling 3 poll timeouts (ms)",
        "within a few ms of busy",
        &|r| ms(r.ingest_idle),
    );
    line(
        "longest wait of a Telegram message for a poll, after idling (ms)",
        "0",
        &|r| r.idle_poll_wait.map_or("–".into(), |v| format!("{v:.1}")),
    );
    line(
        "first-visible overhead p50 / p99, unpaced (ms)",
        "p99 ≤ 5 (N=100)",
        &|r| ms(r.first),
    );
    line(
        "replies whose first token met a full global budget",
        "reported",
        &|r| format!("{}", r.paced),
    );
    line(
        "first-visible overhead p50 / p99, all (ms)",
        "reported",
        &|r| ms(r.first_all),
    );
    line(
        "final-visible delay p50 / p99 (ms)",
        "pacing interval 1000",
        &|r| ms(r.last),
    );
    for (i, side) in ["Telegram", "Discord"].iter().enumerate() {
        let rate = super::limits::global_rate(i == 0);
        line(
            &format!("{side}: schedule limit of first-visible p50 / p99, busy rounds (ms)"),
            &format!("the best at {rate}/s"),
            &|r| ms(r.versus[i].limit),
        );
        line(
            &format!("{side}: first-visible overhead p50 / p99, busy rounds (ms)"),
            "reported",
            &|r| ms(r.versus[i].first),
        );
        line(
            &format!("{side}: … measured / limit, p50 / p99 (– if the limit < 50 ms)"),
            "≤ 1.3 (N=200, 1000)",
            &|r| ratio(r.versus[i].ratio()),
        );
        line(
            &format!("{side}: final-visible delay p50 / p99, busy rounds (ms)"),
            "reported",
            &|r| ms(r.versus[i].last),
        );
    }
    line("edits per reply (mean)", "", &|r| format!("{:.1}", r.edits));
    let several = rows.iter().any(|r| r.peak_mb.len() > 1);
    let per = if several { ", each instance / sum" } else { "" };
    line(
        &format!("bot CPU seconds per 1,000 replies{per}"),
        "≤ 10",
        &|r| each_and_sum(&r.cpu_per_1000, 2),
    );
    line(
        &format!("bot CPU while idle (ms a second){per}"),
        "",
        &|r| each_and_sum(&r.idle_cpu_ms, 1),
    );
    line(
        &format!("peak RSS, VmHWM (MB){per}"),
        "≤ 64 (N=1000)",
        &|r| each_and_sum(&r.peak_mb, 1),
    );
    line(&format!("idle RSS after start (MB){per}"), "≤ 20", &|r| {
        each_and_sum(&r.idle_mb, 1)
    });
    line("wall time of the busy rounds (s)", "", &|r| {
        format!("{:.1}", r.wall.as_secs_f64())
    });
    lines.push(format!(
        "\nSchedule limit: per side and busy round, the chats in the order the model sent their \
         first chunk (ready_i), one first text every 1/rate s: slot_i = max(ready_i, slot_(i-1) + \
         1/rate), limit_i = slot_i − ready_i. A ratio is – where the limit is under \
         {RATIO_FLOOR_MS} ms."
    ));
    if rows.iter().any(|r| r.smoke) {
        lines.push("\nSmoke run: only completeness and exactness are checked.".into());
    }
    lines.join("\n")
}
