//! Tests of loading and validating settings.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Loads `pairs` over the defaults and parses them for `purpose`, as `parley` starts.
fn parse(pairs: &[(&str, &str)], purpose: Purpose) -> Result<(Settings, Config), SettingsError> {
    let settings = Settings::load_from(None, Some(env(pairs)))?;
    let config = Config::from_settings(&settings, purpose)?;
    Ok((settings, config))
}

/// The settings of [`parse`], when they parse.
fn load(pairs: &[(&str, &str)], purpose: Purpose) -> Result<Settings, SettingsError> {
    parse(pairs, purpose).map(|(settings, _)| settings)
}

const KEY: (&str, &str) = ("PARLEY__LLM__API_KEY", "sk-test-secret");
const TG: (&str, &str) = ("PARLEY__TELEGRAM__TOKEN", "123:tg-secret");

#[test]
fn defaults_load_with_an_api_key_for_chat() {
    let s = load(&[KEY], Purpose::Chat).expect("defaults are valid");
    assert_eq!(s.llm.base_url, "https://gateway.theturbo.ai/v1");
    assert_eq!(s.llm.default_model, "grok-4-fast-non-reasoning");
    assert_eq!(s.llm.models.len(), 4);
    assert_eq!(s.llm.conversation_header, "X-Conversation-Id");
    assert!(s.llm.stream);
    assert_eq!(s.llm.temperature, None, "unset parameters stay unset");
    assert_eq!(s.store.database_url.expose(), "sqlite://data/parley.db");
    let strip = &s.llm.overrides["grok-4"].remove;
    assert!(strip.contains(&crate::llm::ParamName::PresencePenalty));
    assert!(s.llm.overrides.contains_key("grok-4-fast-reasoning"));
}

#[test]
fn environment_overrides_the_defaults_and_splits_lists() {
    let s = load(
        &[
            KEY,
            TG,
            ("PARLEY__LLM__MODELS", "grok-4,grok-3"),
            ("PARLEY__LLM__DEFAULT_MODEL", "grok-3"),
            ("PARLEY__LLM__TEMPERATURE", "0.5"),
            ("PARLEY__ACCESS__ADMINS", "telegram:1,discord:2"),
            ("PARLEY__STORE__DATABASE_URL", "sqlite:///data/x.db"),
        ],
        Purpose::Run,
    )
    .expect("valid");
    assert_eq!(s.llm.models, ["grok-4", "grok-3"]);
    assert_eq!(s.llm.temperature, Some(0.5));
    assert_eq!(s.access.admins, ["telegram:1", "discord:2"]);
    assert_eq!(s.store.database_url.expose(), "sqlite:///data/x.db");
    assert!(s.telegram_enabled());
    assert!(!s.discord_enabled());
}

#[test]
fn a_config_file_sits_between_defaults_and_environment() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        file,
        "[llm]\nsystem_prompt = \"from file\"\ndefault_model = \"grok-4\""
    )
    .unwrap();
    let s = Settings::load_from(
        Some(file.path()),
        Some(env(&[KEY, ("PARLEY__LLM__DEFAULT_MODEL", "grok-3")])),
    )
    .unwrap();
    let config = Config::from_settings(&s, Purpose::Chat).expect("valid");
    assert_eq!(config.engine.default_model.as_str(), "grok-3");
    assert_eq!(s.llm.system_prompt, "from file");
    assert_eq!(s.llm.default_model, "grok-3");
}

#[test]
fn an_unknown_key_is_named() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "[llm]\ntemprature = 0.3").unwrap();
    let err = Settings::load_from(Some(file.path()), Some(env(&[KEY]))).unwrap_err();
    assert!(err.key.contains("temprature"), "{err}");
    assert!(err.to_string().contains("unknown key"), "{err}");
    assert!(
        !err.to_string().contains("PARLEY__"),
        "no hint to set the misspelt key: {err}"
    );
}

#[test]
fn a_wrong_type_is_named_with_its_key() {
    let err = load(&[KEY, ("PARLEY__LLM__STREAM", "maybe")], Purpose::Chat).unwrap_err();
    assert_eq!(err.key, "llm.stream", "{err}");
}

#[test]
fn an_unknown_default_model_lists_the_valid_ones() {
    let err = load(
        &[KEY, ("PARLEY__LLM__DEFAULT_MODEL", "gpt-9")],
        Purpose::Chat,
    )
    .unwrap_err();
    assert_eq!(err.key, "llm.default_model");
    assert!(err.message.contains("grok-4-fast-reasoning"), "{err}");
    assert!(
        err.to_string().contains("PARLEY__LLM__DEFAULT_MODEL"),
        "{err}"
    );
}

#[test]
fn an_empty_api_key_stops_chat_and_run() {
    let err = load(&[TG], Purpose::Run).unwrap_err();
    assert_eq!(err.key, "llm.api_key");
    assert!(err.to_string().contains("PARLEY__LLM__API_KEY"));
    assert_eq!(load(&[], Purpose::Chat).unwrap_err().key, "llm.api_key");
}

#[test]
fn run_needs_a_platform() {
    let err = load(&[KEY], Purpose::Run).unwrap_err();
    assert!(err.message.contains("PARLEY__TELEGRAM__TOKEN"), "{err}");
}

#[test]
fn out_of_range_parameters_and_bad_admins_are_refused() {
    let err = load(&[KEY, ("PARLEY__LLM__TOP_P", "1.5")], Purpose::Chat).unwrap_err();
    assert_eq!(err.key, "llm.top_p");
    let err = load(&[KEY, ("PARLEY__ACCESS__ADMINS", "123")], Purpose::Chat).unwrap_err();
    assert_eq!(err.key, "access.admins");
    let err = load(&[KEY, ("PARLEY__LOG__FORMAT", "xml")], Purpose::Chat).unwrap_err();
    assert_eq!(err.key, "log.format");
    for bad in ["0", "5"] {
        let err = load(&[KEY, ("PARLEY__LLM__N", bad)], Purpose::Chat).unwrap_err();
        assert_eq!(err.key, "llm.n");
    }
    assert!(load(&[KEY, ("PARLEY__LLM__N", "4")], Purpose::Chat).is_ok());
}

#[test]
fn the_telegram_poll_timeout_defaults_to_30_and_must_be_1_to_50() {
    assert_eq!(
        load(&[KEY], Purpose::Chat)
            .unwrap()
            .telegram
            .poll_timeout_secs,
        30
    );
    for bad in ["0", "51"] {
        let pair = ("PARLEY__TELEGRAM__POLL_TIMEOUT_SECS", bad);
        let err = load(&[KEY, pair], Purpose::Chat).unwrap_err();
        assert_eq!(err.key, "telegram.poll_timeout_secs");
        assert!(
            err.to_string()
                .contains("PARLEY__TELEGRAM__POLL_TIMEOUT_SECS"),
            "{err}"
        );
    }
    let pair = ("PARLEY__TELEGRAM__POLL_TIMEOUT_SECS", "2");
    assert_eq!(
        load(&[KEY, pair], Purpose::Chat)
            .unwrap()
            .telegram
            .poll_timeout_secs,
        2
    );
}

#[test]
fn secrets_never_show_in_debug_output() {
    let s = load(
        &[KEY, TG, ("PARLEY__DISCORD__TOKEN", "dc-secret")],
        Purpose::Run,
    )
    .unwrap();
    let debug = format!("{s:?}");
    for secret in ["sk-test-secret", "tg-secret", "dc-secret"] {
        assert!(!debug.contains(secret), "{secret} leaked");
    }
    assert!(debug.contains("***"));
}

#[test]
fn a_missing_config_file_is_named() {
    let err = Settings::load_from(
        Some(Path::new("/nonexistent/parley.toml")),
        Some(env(&[KEY])),
    )
    .unwrap_err();
    assert_eq!(err.key, "--config");
}

#[test]
fn the_http_listener_and_grace_have_defaults_that_fit_docker() {
    let s = load(&[KEY], Purpose::Chat).expect("defaults are valid");
    assert_eq!(s.http.listen, "127.0.0.1:9464");
    assert!(
        s.shutdown.grace_secs < 10,
        "inside Docker's 10 s stop timeout"
    );
    let s = load(&[KEY, ("PARLEY__HTTP__LISTEN", "")], Purpose::Chat).expect("empty disables");
    assert!(s.http.listen.is_empty());
}

#[test]
fn a_bad_listen_address_or_grace_is_named() {
    let err = load(&[KEY, ("PARLEY__HTTP__LISTEN", "localhost")], Purpose::Chat).unwrap_err();
    assert_eq!(err.key, "http.listen");
    let err = load(&[KEY, ("PARLEY__SHUTDOWN__GRACE_SECS", "0")], Purpose::Chat).unwrap_err();
    assert_eq!(err.key, "shutdown.grace_secs");
}

#[test]
fn the_healthcheck_needs_neither_a_key_nor_a_platform() {
    let s = Settings::load_from(None, Some(env(&[("PARLEY__HTTP__LISTEN", "0.0.0.0:9000")])));
    let listen = s.expect("loads").http_listen().expect("an address");
    assert_eq!(listen, Some("0.0.0.0:9000".parse().unwrap()));
    let s = Settings::load_from(None, Some(env(&[("PARLEY__HTTP__LISTEN", "")]))).unwrap();
    assert_eq!(s.http_listen().expect("empty disables"), None);
}

#[test]
fn telegram_ids_load_from_one_number_or_a_list() {
    let one = load(
        &[KEY, TG, ("PARLEY__TELEGRAM__ALLOWED_CHATS", "-100123")],
        Purpose::Run,
    )
    .expect("valid");
    assert_eq!(one.telegram.allowed_chats, ["-100123"]);
    let many = load(
        &[KEY, TG, ("PARLEY__TELEGRAM__ALLOWED_USERS", "5,6")],
        Purpose::Run,
    )
    .expect("valid");
    assert_eq!(many.telegram.allowed_users, ["5", "6"]);
}

#[test]
fn discord_ids_load_from_one_number_or_a_list() {
    let env = [
        KEY,
        ("PARLEY__DISCORD__TOKEN", "dc"),
        ("PARLEY__DISCORD__GUILD_IDS", "80351110224678912"),
        ("PARLEY__DISCORD__ALLOWED_CHANNELS", "1,2"),
        ("PARLEY__DISCORD__ALLOWED_USERS", "7"),
        ("PARLEY__DISCORD__ALLOWED_GUILDS", "9"),
    ];
    let s = load(&env, Purpose::Run).expect("valid");
    assert_eq!(s.discord.guild_ids, ["80351110224678912"]);
    assert_eq!(s.discord.allowed_channels, ["1", "2"]);
    assert_eq!(s.discord.allowed_users, ["7"]);
    assert_eq!(s.discord.allowed_guilds, ["9"]);
}

#[test]
fn the_config_holds_the_parsed_values_for_each_part() {
    let (_, config) = parse(
        &[
            KEY,
            TG,
            ("PARLEY__LLM__SYSTEM_PROMPT", "  "),
            ("PARLEY__LLM__TIMEOUTS__IDLE_SECS", "7"),
            ("PARLEY__DISPATCH__MAX_CONCURRENT", "3"),
            ("PARLEY__REPLY__THINKING_AFTER_SECS", "0"),
            ("PARLEY__TELEGRAM__GROUP_PER_MINUTE", "12"),
            ("PARLEY__HTTP__LISTEN", "127.0.0.1:0"),
            ("PARLEY__SHUTDOWN__GRACE_SECS", "4"),
        ],
        Purpose::Run,
    )
    .expect("valid");
    assert_eq!(
        config.client.timeouts.idle,
        std::time::Duration::from_secs(7)
    );
    assert_eq!(config.engine.max_concurrent, 3);
    assert_eq!(config.engine.system_prompt, None, "a blank prompt is none");
    assert_eq!(config.engine.thinking_after, None);
    assert_eq!(config.engine.models.len(), 4);
    let telegram = config.telegram.expect("the token enables Telegram");
    assert_eq!(telegram.pace.group_window.count, 12);
    assert_eq!(telegram.default_model, config.engine.default_model);
    assert!(config.discord.is_none(), "no token, no Discord");
    assert_eq!(config.listen, Some("127.0.0.1:0".parse().unwrap()));
    assert_eq!(config.grace, std::time::Duration::from_secs(4));
}

#[test]
fn discord_gets_its_own_config_with_ids_parsed_and_only_its_admins() {
    let (_, config) = parse(
        &[
            KEY,
            ("PARLEY__DISCORD__TOKEN", "dc"),
            ("PARLEY__DISCORD__PROXY_URL", " http://127.0.0.1:9/ "),
            ("PARLEY__DISCORD__GUILD_IDS", "555,556"),
            ("PARLEY__DISCORD__ALLOWED_CHANNELS", "10"),
            ("PARLEY__ACCESS__ADMINS", "telegram:1,discord:2"),
        ],
        Purpose::Run,
    )
    .expect("valid");
    let discord = config.discord.expect("the token enables Discord");
    assert_eq!(discord.proxy_url.as_deref(), Some("http://127.0.0.1:9/"));
    let ids: Vec<u64> = discord.guild_ids.iter().map(|id| id.get()).collect();
    assert_eq!(ids, [555, 556]);
    assert!(discord.access.channels.contains("10"));
    assert_eq!(discord.access.admins.len(), 1);
    assert!(discord.access.admins.contains("discord:2"));
}

#[test]
fn a_guild_id_that_is_not_a_snowflake_is_named() {
    let env = [
        KEY,
        ("PARLEY__DISCORD__TOKEN", "dc"),
        ("PARLEY__DISCORD__GUILD_IDS", "my-server"),
    ];
    let err = load(&env, Purpose::Run).unwrap_err();
    assert_eq!(err.key, "discord.guild_ids");
    assert!(
        err.message.contains("`my-server` is not a Discord id"),
        "{err}"
    );
}

#[test]
fn secrets_never_show_in_the_configs_debug_output() {
    let (_, config) = parse(
        &[
            KEY,
            TG,
            ("PARLEY__DISCORD__TOKEN", "dc-secret"),
            (
                "PARLEY__TELEGRAM__WEBHOOK_URL",
                "https://bot.example/telegram/webhook",
            ),
            ("PARLEY__TELEGRAM__WEBHOOK_SECRET", "hook-secret"),
        ],
        Purpose::Run,
    )
    .unwrap();
    let debug = format!("{config:?}");
    assert!(debug.contains("bot.example"), "webhook mode is on: {debug}");
    for secret in ["sk-test-secret", "tg-secret", "dc-secret", "hook-secret"] {
        assert!(!debug.contains(secret), "{secret} leaked");
    }
}

#[test]
fn attachment_settings_parse_into_the_engine_config_with_their_defaults() {
    let (_, config) = parse(&[KEY], Purpose::Chat).expect("defaults are valid");
    let engine = &config.engine;
    let names: Vec<&str> = engine.image_models.iter().map(|m| m.as_str()).collect();
    assert_eq!(
        names,
        [
            "grok-4",
            "grok-4-fast-non-reasoning",
            "grok-4-fast-reasoning"
        ]
    );
    assert_eq!(engine.attachments.max_image_bytes, 10 * 1024 * 1024);
    assert_eq!(engine.attachments.max_text_bytes, 256 * 1024);
    assert_eq!(engine.image_tokens, 1000);
    let pairs = [
        KEY,
        ("PARLEY__LLM__IMAGE_MODELS", "grok-4,grok-3"),
        ("PARLEY__ATTACHMENTS__MAX_TEXT_BYTES", "4096"),
    ];
    let (_, config) = parse(&pairs, Purpose::Chat).expect("valid");
    assert_eq!(config.engine.image_models.len(), 2);
    assert_eq!(config.engine.attachments.max_text_bytes, 4096);
}

#[test]
fn bad_attachment_settings_stop_start_up_naming_the_key() {
    let cases = [
        (
            "PARLEY__ATTACHMENTS__MAX_IMAGE_BYTES",
            "0",
            "attachments.max_image_bytes",
        ),
        (
            "PARLEY__ATTACHMENTS__MAX_TEXT_BYTES",
            "99999999999",
            "attachments.max_text_bytes",
        ),
        ("PARLEY__HISTORY__IMAGE_TOKENS", "0", "history.image_tokens"),
        (
            "PARLEY__LLM__IMAGE_MODELS",
            "grok-4,grok-4",
            "llm.image_models",
        ),
    ];
    for (variable, value, key) in cases {
        let err = load(&[KEY, (variable, value)], Purpose::Chat).unwrap_err();
        assert_eq!(err.key, key, "{err}");
        assert!(err.to_string().contains(variable), "{err}");
    }
}

#[test]
fn instances_coordinate_when_asked_or_on_postgres_with_a_failover_of_10_seconds_by_default() {
    let (_, alone) = parse(&[KEY], Purpose::Chat).unwrap();
    assert!(
        alone.instance.is_none(),
        "one instance: nothing coordinates"
    );
    let on = ("PARLEY__INSTANCE__COORDINATE", "true");
    let (_, config) = parse(&[KEY, on], Purpose::Chat).unwrap();
    let instance = config.instance.expect("coordinates");
    assert_eq!(instance.failover, std::time::Duration::from_secs(10));
    let id = instance.id.as_str();
    assert!(id.contains(&format!("-{}-", std::process::id())), "{id}");
    let postgres = ("PARLEY__STORE__DATABASE_URL", "postgres://parley@db/parley");
    let (_, config) = parse(&[KEY, postgres], Purpose::Chat).unwrap();
    assert!(
        config.instance.is_some(),
        "a PostgreSQL store always coordinates"
    );
    let named = ("PARLEY__INSTANCE__ID", "parley-1");
    let (_, config) = parse(&[KEY, on, named], Purpose::Chat).unwrap();
    assert_eq!(
        config.instance.map(|i| i.id.to_string()).as_deref(),
        Some("parley-1")
    );
}

#[test]
fn a_failover_outside_1_to_600_or_an_id_with_spaces_stops_start_up_naming_the_key() {
    let on = ("PARLEY__INSTANCE__COORDINATE", "true");
    for bad in ["0", "601"] {
        let pair = ("PARLEY__TELEGRAM__FAILOVER_SECS", bad);
        let err = parse(&[KEY, on, pair], Purpose::Chat).unwrap_err();
        assert_eq!(err.key, "telegram.failover_secs");
    }
    let pair = ("PARLEY__INSTANCE__ID", "two words");
    let err = parse(&[KEY, on, pair], Purpose::Chat).unwrap_err();
    assert_eq!(err.key, "instance.id");
    assert!(err.to_string().contains("PARLEY__INSTANCE__ID"), "{err}");
}

#[test]
fn a_postgres_url_selects_postgresql_with_its_pool_and_timeout() {
    let url = "postgres://parley:db-secret@db:5432/parley?sslmode=require";
    let (settings, config) = parse(
        &[
            KEY,
            ("PARLEY__STORE__DATABASE_URL", url),
            ("PARLEY__STORE__POOL_SIZE", "4"),
            ("PARLEY__STORE__STATEMENT_TIMEOUT_SECS", "5"),
        ],
        Purpose::Chat,
    )
    .expect("valid");
    assert!(config.store.url.is_postgres());
    assert_eq!(config.store.url.expose(), url);
    assert_eq!(config.store.pool_size, 4);
    assert_eq!(config.store.statement_timeout, Duration::from_secs(5));
    for debug in [format!("{settings:?}"), format!("{config:?}")] {
        assert!(!debug.contains("db-secret"), "the password leaks: {debug}");
        assert!(
            debug.contains("postgres://parley:***@db:5432/parley"),
            "{debug}"
        );
    }
}

#[test]
fn the_store_defaults_are_ten_connections_and_thirty_seconds() {
    let (_, config) = parse(&[KEY], Purpose::Chat).expect("valid");
    assert!(!config.store.url.is_postgres());
    assert_eq!(config.store.pool_size, 10);
    assert_eq!(config.store.statement_timeout, Duration::from_secs(30));
}

#[test]
fn store_settings_out_of_range_name_their_key() {
    for (key, value, named) in [
        ("PARLEY__STORE__POOL_SIZE", "0", "store.pool_size"),
        (
            "PARLEY__STORE__STATEMENT_TIMEOUT_SECS",
            "0",
            "store.statement_timeout_secs",
        ),
        (
            "PARLEY__STORE__DATABASE_URL",
            "mysql://db/parley",
            "store.database_url",
        ),
        (
            "PARLEY__STORE__DATABASE_URL",
            "postgres://parley:db-secret@db:port/parley",
            "store.database_url",
        ),
    ] {
        let error = parse(&[KEY, (key, value)], Purpose::Chat).expect_err("refused");
        assert_eq!(error.key, named, "{error}");
        assert!(!error.to_string().contains("db-secret"), "{error}");
    }
}
