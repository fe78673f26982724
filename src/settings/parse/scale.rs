//! The settings that spread one bot over several processes: Telegram's webhook
//! (`telegram.webhook_url`, `telegram.webhook_secret`) and Discord's shard range
//! (`discord.shards`, `discord.shard_count`).

use super::{check, http_url};
use crate::platform::discord::ShardRange;
use crate::platform::telegram::Webhook;
use crate::settings::{Settings, SettingsError};

/// The longest secret token Telegram accepts.
const MAX_SECRET: usize = 256;

/// Webhook mode when `telegram.webhook_url` is set; `None` (long polling) when it is empty.
pub(super) fn webhook(settings: &Settings) -> Result<Option<Webhook>, SettingsError> {
    let t = &settings.telegram;
    let url = t.webhook_url.trim();
    if url.is_empty() {
        return Ok(None);
    }
    let url = http_url(url, "telegram.webhook_url")?;
    check(
        !settings.http.listen.is_empty(),
        "telegram.webhook_url",
        || {
            "webhook mode serves updates on http.listen, which is empty; set http.listen (e.g. 0.0.0.0:9464) or empty telegram.webhook_url to poll".into()
        },
    )?;
    let secret = t.webhook_secret.expose();
    check(!secret.is_empty(), "telegram.webhook_secret", || {
        "required with telegram.webhook_url; generate one with `openssl rand -hex 32`".into()
    })?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    check(
        secret.len() <= MAX_SECRET && secret.chars().all(allowed),
        "telegram.webhook_secret",
        || {
            format!(
                "must be 1 to {MAX_SECRET} characters of A-Z a-z 0-9 _ - (Telegram's rule); `openssl rand -hex 32` makes one"
            )
        },
    )?;
    Ok(Some(Webhook {
        url,
        secret: t.webhook_secret.clone(),
    }))
}

/// The shards this process runs: `discord.shards` within `discord.shard_count`.
pub(super) fn shards(settings: &Settings) -> Result<ShardRange, SettingsError> {
    let d = &settings.discord;
    let range = d.shards.trim();
    if range.is_empty() {
        return Ok(ShardRange::all(d.shard_count.max(1)));
    }
    check(d.shard_count > 0, "discord.shard_count", || {
        format!("required with discord.shards = \"{range}\": the bot's total number of shards")
    })?;
    let bounds = match range.split_once('-') {
        Some((first, last)) => (first.trim().parse(), last.trim().parse()),
        None => (range.parse(), range.parse()),
    };
    let (Ok(first), Ok(last)) = bounds else {
        return Err(SettingsError::new(
            "discord.shards",
            format!("`{range}` is not a shard range; write it like \"0-3\" or \"2\""),
        ));
    };
    let count = d.shard_count;
    check(first <= last, "discord.shards", || {
        format!("`{range}` runs backwards; write the lower shard id first")
    })?;
    check(last < count, "discord.shards", || {
        format!(
            "`{range}` is outside discord.shard_count = {count}: shard ids run from 0 to {}",
            count - 1
        )
    })?;
    Ok(ShardRange { first, last, count })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (format!("PARLEY__{k}"), v.to_string()))
            .collect();
        Settings::load_from(None, Some(env)).expect("loads")
    }

    fn shard_error(pairs: &[(&str, &str)]) -> SettingsError {
        shards(&settings(pairs)).expect_err("refused")
    }

    #[test]
    fn without_a_webhook_url_telegram_polls() {
        let s = settings(&[("TELEGRAM__WEBHOOK_SECRET", "abc")]);
        assert!(webhook(&s).expect("valid").is_none());
    }

    #[test]
    fn a_webhook_needs_a_secret_of_telegrams_characters_and_never_shows_it() {
        let url = (
            "TELEGRAM__WEBHOOK_URL",
            "https://bot.example/telegram/webhook",
        );
        let missing = webhook(&settings(&[url])).expect_err("no secret");
        assert_eq!(missing.key, "telegram.webhook_secret");
        for bad in ["has space", "a+b/c=", &"x".repeat(257)] {
            let error =
                webhook(&settings(&[url, ("TELEGRAM__WEBHOOK_SECRET", bad)])).expect_err("refused");
            assert_eq!(error.key, "telegram.webhook_secret");
            assert!(!error.to_string().contains(bad), "{error}");
        }
        let good = settings(&[url, ("TELEGRAM__WEBHOOK_SECRET", "Ab_9-z")]);
        let hook = webhook(&good).expect("valid").expect("webhook mode");
        assert_eq!(hook.url, "https://bot.example/telegram/webhook");
        assert_eq!(hook.secret.expose(), "Ab_9-z");
        assert!(!format!("{hook:?}").contains("Ab_9-z"));
    }

    #[test]
    fn a_webhook_needs_a_url_and_the_listener() {
        let secret = ("TELEGRAM__WEBHOOK_SECRET", "s3cret");
        let bad = webhook(&settings(&[
            ("TELEGRAM__WEBHOOK_URL", "bot.example"),
            secret,
        ]));
        assert_eq!(bad.expect_err("not a URL").key, "telegram.webhook_url");
        let url = (
            "TELEGRAM__WEBHOOK_URL",
            "https://bot.example/telegram/webhook",
        );
        let off = webhook(&settings(&[url, secret, ("HTTP__LISTEN", "")]));
        let error = off.expect_err("no listener");
        assert_eq!(error.key, "telegram.webhook_url");
        assert!(error.message.contains("http.listen"), "{error}");
    }

    #[test]
    fn shards_default_to_one_and_shard_count_alone_runs_them_all() {
        assert_eq!(shards(&settings(&[])), Ok(ShardRange::all(1)));
        let all = shards(&settings(&[("DISCORD__SHARD_COUNT", "4")]));
        let expected = ShardRange {
            first: 0,
            last: 3,
            count: 4,
        };
        assert_eq!(all, Ok(expected));
    }

    #[test]
    fn a_shard_range_or_one_shard_parses_within_the_count() {
        let count = ("DISCORD__SHARD_COUNT", "4");
        let range = shards(&settings(&[("DISCORD__SHARDS", "1-2"), count]));
        let expected = ShardRange {
            first: 1,
            last: 2,
            count: 4,
        };
        assert_eq!(range, Ok(expected));
        let one = shards(&settings(&[("DISCORD__SHARDS", "3"), count]));
        let expected = ShardRange {
            first: 3,
            last: 3,
            count: 4,
        };
        assert_eq!(one, Ok(expected));
    }

    #[test]
    fn bad_shard_settings_name_their_key() {
        let missing = shard_error(&[("DISCORD__SHARDS", "0-1")]);
        assert_eq!(missing.key, "discord.shard_count");
        let count = ("DISCORD__SHARD_COUNT", "2");
        for bad in ["0-2", "2", "1-0", "a-b", "0-"] {
            let error = shard_error(&[("DISCORD__SHARDS", bad), count]);
            assert_eq!(error.key, "discord.shards", "{bad}: {error}");
            assert!(!error.to_string().contains('\n'));
        }
    }
}
