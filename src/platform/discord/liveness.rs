//! The Discord component of `/healthz`: it beats while a shard is connected and answering
//! heartbeats, as serenity's shard runners report.

use std::sync::Arc;
use std::time::Duration;

use serenity::all::{ConnectionStage, ShardManager};

use crate::health::HealthHandle;

/// How often the shards' stages are read.
const EVERY: Duration = Duration::from_secs(5);

/// Beats while every shard is connected; reports the stage otherwise. Runs until dropped.
pub(super) async fn watch(shards: Arc<ShardManager>, health: HealthHandle) {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        let stages: Vec<ConnectionStage> = {
            let runners = shards.runners.lock().await;
            runners.values().map(|runner| runner.stage).collect()
        };
        match stages
            .iter()
            .find(|stage| **stage != ConnectionStage::Connected)
        {
            None if !stages.is_empty() => health.beat(),
            None => health.fail("no shard started yet"),
            Some(stage) => health.fail(format!("a shard is {stage}")),
        }
    }
}
