//! The Discord component of `/healthz`: it beats while every shard this process runs is
//! connected and answering heartbeats, as serenity's shard runners report. With several shards
//! each also has a component of its own (`discord.shard.N`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serenity::all::{ConnectionStage, ShardId, ShardManager};

use super::ShardRange;
use crate::health::HealthHandle;

/// How often the shards' stages are read.
const EVERY: Duration = Duration::from_secs(5);

/// Beats while every shard of `range` is connected; reports the stage otherwise. Runs until
/// dropped.
pub(super) async fn watch(shards: Arc<ShardManager>, range: ShardRange, health: HealthHandle) {
    let each: Vec<(u32, HealthHandle)> = match range.is_single() {
        true => Vec::new(),
        false => range
            .ids()
            .map(|id| (id, health.sibling(&format!("discord.shard.{id}"))))
            .collect(),
    };
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        let stages: HashMap<u32, ConnectionStage> = {
            let runners = shards.runners.lock().await;
            runners
                .iter()
                .map(|(ShardId(id), r)| (*id, r.stage))
                .collect()
        };
        for (id, handle) in &each {
            match problem(stages.get(id)) {
                None => handle.beat(),
                Some(why) => handle.fail(why),
            }
        }
        let failing: Vec<String> = range
            .ids()
            .filter_map(|id| problem(stages.get(&id)).map(|why| format!("shard {id}: {why}")))
            .collect();
        match failing.is_empty() {
            true => health.beat(),
            false => health.fail(failing.join("; ")),
        }
    }
}

/// What is wrong with a shard in `stage` (`None`: not started yet); `None` when connected.
fn problem(stage: Option<&ConnectionStage>) -> Option<String> {
    match stage {
        Some(ConnectionStage::Connected) => None,
        Some(stage) => Some(format!("{stage}")),
        None => Some("not started yet".into()),
    }
}
