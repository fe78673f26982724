//! `store.database_url`: which database the bot opens, kept whole for connecting and shown only
//! with its password replaced by `***` (in `Display`, `Debug`, errors and logs).

use std::fmt;

use serde::Deserialize;

/// A database URL: `sqlite://path` or `postgres://user:password@host/db`. Printing it never
/// shows the password.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL as configured.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The whole URL, password included, for the one place that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the URL selects PostgreSQL (`postgres://` or `postgresql://`); anything else
    /// is SQLite.
    pub fn is_postgres(&self) -> bool {
        self.0.starts_with("postgres://") || self.0.starts_with("postgresql://")
    }

    /// The URL with its password (in the user part or a `password=` parameter) replaced by
    /// `***`.
    pub fn redacted(&self) -> String {
        match reqwest::Url::parse(&self.0) {
            Ok(url) => redact_parsed(url),
            Err(_) => redact_unparsed(&self.0),
        }
    }
}

fn redact_parsed(mut url: reqwest::Url) -> String {
    if url.password().is_some() {
        // Only a URL that cannot have a password refuses one; this one has one.
        let _ = url.set_password(Some("***"));
    }
    if url.query_pairs().any(|(key, _)| key == "password") {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| match key == "password" {
                true => (key.into_owned(), "***".to_string()),
                false => (key.into_owned(), value.into_owned()),
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string().replace("%2A%2A%2A", "***")
}

/// A URL the parser refuses: everything between the scheme and the last `@` may hold a
/// password, so it is all hidden.
fn redact_unparsed(text: &str) -> String {
    let (scheme, rest) = text.split_once("://").unwrap_or(("", text));
    let hidden = match rest.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => rest.to_string(),
    };
    let hidden = match hidden.split_once("password=") {
        Some((before, _)) => format!("{before}password=***"),
        None => hidden,
    };
    match scheme {
        "" => hidden,
        scheme => format!("{scheme}://{hidden}"),
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_of_a_postgres_url_is_never_printed() {
        let url =
            DatabaseUrl::new("postgres://parley:s3cret@db.example:5432/parley?sslmode=require");
        let shown = "postgres://parley:***@db.example:5432/parley?sslmode=require";
        assert_eq!(url.to_string(), shown);
        assert_eq!(format!("{url:?}"), format!("{shown:?}"));
        assert_eq!(
            url.expose(),
            "postgres://parley:s3cret@db.example:5432/parley?sslmode=require"
        );
    }

    #[test]
    fn a_password_parameter_is_hidden_too() {
        let url = DatabaseUrl::new("postgresql://db/parley?user=parley&password=s3cret");
        assert_eq!(
            url.to_string(),
            "postgresql://db/parley?user=parley&password=***"
        );
    }

    #[test]
    fn an_unparsable_url_hides_everything_before_its_host() {
        let url = DatabaseUrl::new("postgres://parley:s3c ret@@:x/db");
        assert!(!url.to_string().contains("s3c"), "{url}");
        assert_eq!(url.to_string(), "postgres://***@:x/db");
    }

    #[test]
    fn sqlite_urls_are_shown_as_they_are() {
        let url = DatabaseUrl::new("sqlite://data/parley.db");
        assert_eq!(url.to_string(), "sqlite://data/parley.db");
        assert!(!url.is_postgres());
        assert!(DatabaseUrl::new("postgresql://h/d").is_postgres());
    }
}
