//! Starting the enabled platforms' adapters on the app's runtime.

use crate::platform::{discord, telegram};
use crate::settings::Config;

use super::Runtime;

/// Starts each enabled platform's adapter; a refused token fails here, before any message is
/// taken.
pub(super) async fn start(config: &Config, runtime: &Runtime) -> anyhow::Result<()> {
    if let Some(adapter) = &config.telegram {
        let services = telegram::Services {
            engine: runtime.engine.clone(),
            dispatcher: runtime.dispatcher.clone(),
            tracker: runtime.tracker.clone(),
            stop: runtime.shutdown.intake.clone(),
            // A poll that keeps failing for longer than a quiet poll lasts: Telegram is down.
            health: runtime
                .health
                .register_with_grace("telegram", adapter.poll_timeout),
            webhook: runtime.telegram_webhook.clone(),
            instance: runtime.instance.clone(),
        };
        let health = services.health.clone();
        let platform = telegram::start(adapter.clone(), services).await?;
        // getMe answered: connected, until a poll says otherwise.
        health.beat();
        runtime.platforms.register(platform);
    }
    if let Some(adapter) = &config.discord {
        let platform = discord::start(
            adapter.clone(),
            runtime.engine.clone(),
            runtime.dispatcher.clone(),
            &runtime.tracker,
            runtime.shutdown.intake.clone(),
            runtime.health.register("discord"),
            runtime.instance.clone(),
        )
        .await?;
        runtime.platforms.register(platform);
    }
    Ok(())
}
