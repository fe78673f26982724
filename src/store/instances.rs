//! The [`Coordination`] port on SQLite: heartbeats, chat leases and the inbox, for several
//! processes sharing one database file (WAL). Every time is SQLite's clock (`NOW` below).

use std::time::Duration;

use async_trait::async_trait;

use super::SqliteStore;
use super::messages::{self, INTERRUPTED, MarkedRow};
use super::rows::{self, failed};
use crate::engine::event::PlatformKind;
use crate::engine::ports::{InterruptedReply, StoreError};
use crate::instances::{
    Acquired, Coordination, InboxEvent, InstanceId, Scope, Waiting, decode_recent, encode_recent,
};

// `NOW` in every statement: `CAST(unixepoch('subsec') * 1000 AS INTEGER)`, the database's
// clock in unix milliseconds.

const REGISTER: &str = "INSERT INTO instances (id, started_at, heartbeat_at, stopping) \
     VALUES (?1, CAST(unixepoch('subsec') * 1000 AS INTEGER), \
     CAST(unixepoch('subsec') * 1000 AS INTEGER), 0) \
     ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, \
     heartbeat_at = excluded.heartbeat_at, stopping = 0";

const HEARTBEAT: &str = "INSERT INTO instances (id, started_at, heartbeat_at, stopping) \
     VALUES (?1, CAST(unixepoch('subsec') * 1000 AS INTEGER), \
     CAST(unixepoch('subsec') * 1000 AS INTEGER), 0) \
     ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at";

/// Who held a lease before, and how long ago they let go of it (`NULL`: they hold it still, or
/// died holding it).
const PREVIOUS: &str = "SELECT instance, \
     CAST(unixepoch('subsec') * 1000 AS INTEGER) - released_at, recent \
     FROM chat_leases WHERE scope = ?1";

/// One upsert: the row is absent, ours, released, or its holder is not alive.
const ACQUIRE: &str = "INSERT INTO chat_leases (scope, instance) VALUES (?1, ?2) \
     ON CONFLICT (scope) DO UPDATE SET instance = excluded.instance, released_at = NULL, \
     recent = NULL \
     WHERE chat_leases.instance = excluded.instance OR chat_leases.released_at IS NOT NULL \
     OR NOT EXISTS (SELECT 1 FROM instances s \
     WHERE s.id = chat_leases.instance AND s.stopping = 0 \
     AND s.heartbeat_at > CAST(unixepoch('subsec') * 1000 AS INTEGER) - ?3)";

const RELEASE: &str = "UPDATE chat_leases \
     SET released_at = CAST(unixepoch('subsec') * 1000 AS INTEGER), recent = ?3 \
     WHERE scope = ?1 AND instance = ?2 AND released_at IS NULL";

const RELEASE_ALL: &str = "UPDATE chat_leases \
     SET released_at = CAST(unixepoch('subsec') * 1000 AS INTEGER) \
     WHERE instance = ?1 AND released_at IS NULL";

const STOPPING: &str = "UPDATE instances SET stopping = 1 WHERE id = ?1";

const ACCEPT: &str = "INSERT INTO inbox (scope, platform, event_id, payload, received_by, \
     received_at) VALUES (?1, ?2, ?3, ?4, ?5, CAST(unixepoch('subsec') * 1000 AS INTEGER)) \
     ON CONFLICT (platform, event_id) DO NOTHING";

const FREE_SCOPES: &str = "SELECT DISTINCT i.scope FROM inbox i WHERE i.started_at IS NULL \
     AND NOT EXISTS (SELECT 1 FROM chat_leases l JOIN instances s ON s.id = l.instance \
     WHERE l.scope = i.scope AND l.released_at IS NULL AND s.stopping = 0 \
     AND s.heartbeat_at > CAST(unixepoch('subsec') * 1000 AS INTEGER) - ?1)";

const WAITING: &str = "SELECT i.seq, i.scope, i.platform, COALESCE(i.payload, ''), \
     CAST(unixepoch('subsec') * 1000 AS INTEGER) - i.received_at \
     FROM inbox i JOIN chat_leases l ON l.scope = i.scope \
     WHERE l.instance = ?1 AND l.released_at IS NULL AND i.started_at IS NULL \
     ORDER BY i.seq LIMIT ?2";

const START: &str = "UPDATE inbox SET started_at = CAST(unixepoch('subsec') * 1000 AS INTEGER), \
     payload = NULL WHERE seq = ?1";

/// One statement, so two instances sweeping at once cannot both mark a reply.
const ABANDONED: &str = "UPDATE messages SET status = 'partial', failure_reason = ?1, \
     updated_at = ?2 WHERE status = 'streaming' \
     AND conversation IN (SELECT id FROM conversations WHERE platform != 'console') \
     AND (instance IS NULL OR instance = ?3 OR NOT EXISTS (SELECT 1 FROM instances s \
     WHERE s.id = messages.instance AND s.stopping = 0 \
     AND s.heartbeat_at > CAST(unixepoch('subsec') * 1000 AS INTEGER) - ?4)) \
     RETURNING id, platform_messages, content, \
     (SELECT platform FROM conversations c WHERE c.id = messages.conversation), \
     (SELECT chat FROM conversations c WHERE c.id = messages.conversation), \
     (SELECT thread FROM conversations c WHERE c.id = messages.conversation)";

const DEPTH: &str = "SELECT COUNT(*) FROM inbox WHERE started_at IS NULL";

/// Per platform, the other live instances holding one of its chats.
const OTHERS_ACTIVE: &str = "SELECT substr(l.scope, 1, instr(l.scope, ':') - 1), COUNT(DISTINCT l.instance) \
     FROM chat_leases l JOIN instances s ON s.id = l.instance \
     WHERE l.released_at IS NULL AND l.instance != ?1 AND l.scope != ?3 \
     AND s.stopping = 0 AND s.heartbeat_at > CAST(unixepoch('subsec') * 1000 AS INTEGER) - ?2 GROUP BY 1";

const PRUNE_INBOX: &str = "DELETE FROM inbox WHERE started_at IS NOT NULL \
     AND started_at < CAST(unixepoch('subsec') * 1000 AS INTEGER) - ?1";

const PRUNE_INSTANCES: &str = "DELETE FROM instances \
     WHERE heartbeat_at < CAST(unixepoch('subsec') * 1000 AS INTEGER) - ?1";

/// A duration as a column of milliseconds.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl Coordination for SqliteStore {
    async fn register(&self, me: &InstanceId) -> Result<(), StoreError> {
        sqlx::query(REGISTER)
            .bind(me.as_str())
            .execute(&self.pools.writes)
            .await
            .map_err(failed("register the instance"))?;
        Ok(())
    }

    async fn heartbeat(&self, me: &InstanceId) -> Result<(), StoreError> {
        sqlx::query(HEARTBEAT)
            .bind(me.as_str())
            .execute(&self.pools.writes)
            .await
            .map_err(failed("renew the instance's heartbeat"))?;
        Ok(())
    }

    async fn acquire(
        &self,
        me: &InstanceId,
        scope: &Scope,
        failover: Duration,
    ) -> Result<Acquired, StoreError> {
        // Both in one transaction, so the holder read is the one replaced.
        let mut tx = self
            .pools
            .writes
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(failed("take a chat lease: begin"))?;
        let previous: Option<(String, Option<i64>, Option<String>)> = sqlx::query_as(PREVIOUS)
            .bind(scope.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed("read a chat lease"))?;
        let done = sqlx::query(ACQUIRE)
            .bind(scope.as_str())
            .bind(me.as_str())
            .bind(millis(failover))
            .execute(&mut *tx)
            .await
            .map_err(failed("take a chat lease"))?;
        tx.commit()
            .await
            .map_err(failed("take a chat lease: commit"))?;
        if done.rows_affected() != 1 {
            return Ok(Acquired::Refused);
        }
        Ok(match previous {
            Some((holder, released, recent)) if holder != me.as_str() => {
                let since = released.map(|ms| Duration::from_millis(rows::from_column(ms)));
                Acquired::TakenOver {
                    since,
                    recent: decode_recent(recent.as_deref(), since.unwrap_or_default()),
                }
            }
            _ => Acquired::Held,
        })
    }

    async fn release(
        &self,
        me: &InstanceId,
        scope: &Scope,
        recent: &[Duration],
    ) -> Result<(), StoreError> {
        sqlx::query(RELEASE)
            .bind(scope.as_str())
            .bind(me.as_str())
            .bind(encode_recent(recent))
            .execute(&self.pools.writes)
            .await
            .map_err(failed("release a chat lease"))?;
        Ok(())
    }

    async fn retire(&self, me: &InstanceId) -> Result<(), StoreError> {
        let mut tx = self
            .pools
            .writes
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(failed("retire the instance: begin"))?;
        for statement in [RELEASE_ALL, STOPPING] {
            sqlx::query(statement)
                .bind(me.as_str())
                .execute(&mut *tx)
                .await
                .map_err(failed("retire the instance"))?;
        }
        tx.commit()
            .await
            .map_err(failed("retire the instance: commit"))
    }

    async fn accept(&self, events: &[InboxEvent<'_>]) -> Result<Vec<bool>, StoreError> {
        let mut tx = self
            .pools
            .writes
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(failed("store inbound events: begin"))?;
        let mut new = Vec::with_capacity(events.len());
        for event in events {
            let done = sqlx::query(ACCEPT)
                .bind(event.scope.as_str())
                .bind(event.platform.as_str())
                .bind(event.event_id)
                .bind(event.payload)
                .bind(event.received_by.as_str())
                .execute(&mut *tx)
                .await
                .map_err(failed("store an inbound event"))?;
            new.push(done.rows_affected() == 1);
        }
        tx.commit()
            .await
            .map_err(failed("store inbound events: commit"))?;
        Ok(new)
    }

    async fn free_scopes(&self, failover: Duration) -> Result<Vec<Scope>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar(FREE_SCOPES)
            .bind(millis(failover))
            .fetch_all(&self.pools.reads)
            .await
            .map_err(failed("find scopes nobody holds"))?;
        Ok(names.into_iter().map(Scope::named).collect())
    }

    async fn waiting(&self, me: &InstanceId, limit: u32) -> Result<Vec<Waiting>, StoreError> {
        let found: Vec<(i64, String, String, String, i64)> = sqlx::query_as(WAITING)
            .bind(me.as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.pools.reads)
            .await
            .map_err(failed("read the inbox"))?;
        found
            .into_iter()
            .map(|(seq, scope, platform, payload, age)| {
                let platform = PlatformKind::parse(&platform).ok_or_else(|| {
                    StoreError::new(format!("unknown platform {platform:?} in the inbox"))
                })?;
                Ok(Waiting {
                    seq,
                    scope: Scope::named(scope),
                    platform,
                    payload,
                    age: Duration::from_millis(rows::from_column(age)),
                })
            })
            .collect()
    }

    async fn start_event(&self, seq: i64) -> Result<(), StoreError> {
        sqlx::query(START)
            .bind(seq)
            .execute(&self.pools.writes)
            .await
            .map_err(failed("mark an inbound event started"))?;
        Ok(())
    }

    async fn recover_abandoned(
        &self,
        also: Option<&InstanceId>,
        failover: Duration,
    ) -> Result<Vec<InterruptedReply>, StoreError> {
        let marked: Vec<MarkedRow> = sqlx::query_as(ABANDONED)
            .bind(INTERRUPTED)
            .bind(rows::now_ms())
            .bind(also.map(InstanceId::as_str))
            .bind(millis(failover))
            .fetch_all(&self.pools.writes)
            .await
            .map_err(failed("mark replies of stopped instances interrupted"))?;
        messages::interrupted(marked)
    }

    async fn inbox_depth(&self) -> Result<u64, StoreError> {
        let depth: i64 = sqlx::query_scalar(DEPTH)
            .fetch_one(&self.pools.reads)
            .await
            .map_err(failed("count the inbox"))?;
        Ok(rows::from_column(depth))
    }

    async fn others_active(
        &self,
        me: &InstanceId,
        failover: Duration,
    ) -> Result<Vec<(PlatformKind, u32)>, StoreError> {
        let counts: Vec<(String, i64)> = sqlx::query_as(OTHERS_ACTIVE)
            .bind(me.as_str())
            .bind(millis(failover))
            .bind(Scope::TELEGRAM_POLL)
            .fetch_all(&self.pools.reads)
            .await
            .map_err(failed("count the instances answering on each platform"))?;
        Ok(counts
            .into_iter()
            .filter_map(|(platform, count)| {
                let count = u32::try_from(rows::from_column(count)).unwrap_or(u32::MAX);
                Some((PlatformKind::parse(&platform)?, count))
            })
            .collect())
    }

    async fn prune(&self, keep: Duration) -> Result<(), StoreError> {
        for statement in [PRUNE_INBOX, PRUNE_INSTANCES] {
            sqlx::query(statement)
                .bind(millis(keep))
                .execute(&self.pools.writes)
                .await
                .map_err(failed("prune the inbox"))?;
        }
        Ok(())
    }
}
