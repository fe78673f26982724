//! SQLite conversation storage through sqlx.
