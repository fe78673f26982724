//! The [`Coordination`] port on PostgreSQL: heartbeats, chat leases and the inbox, for
//! instances on several machines. Every time is the server's clock (`NOW` below).

use std::time::Duration;

use async_trait::async_trait;

use super::super::messages::{self, MarkedRow};
use super::super::rows::{self, failed};
use super::PgStore;
use crate::engine::event::PlatformKind;
use crate::engine::ports::{InterruptedReply, StoreError};
use crate::instances::{
    Acquired, Coordination, InboxEvent, InstanceId, Scope, Waiting, decode_recent, encode_recent,
};
use crate::store::INTERRUPTED;

// `NOW` in every statement: `(extract(epoch from clock_timestamp()) * 1000)::bigint`, the
// server's clock in unix milliseconds (the statement's own moment, not its transaction's).

const REGISTER: &str = "INSERT INTO instances (id, started_at, heartbeat_at, stopping) \
     VALUES ($1, (extract(epoch from clock_timestamp()) * 1000)::bigint, \
     (extract(epoch from clock_timestamp()) * 1000)::bigint, FALSE) \
     ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, \
     heartbeat_at = excluded.heartbeat_at, stopping = FALSE";

const HEARTBEAT: &str = "INSERT INTO instances (id, started_at, heartbeat_at, stopping) \
     VALUES ($1, (extract(epoch from clock_timestamp()) * 1000)::bigint, \
     (extract(epoch from clock_timestamp()) * 1000)::bigint, FALSE) \
     ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at";

/// Takes a lease in one statement: one upsert that takes it when the row is absent, ours,
/// released, or its holder is not alive (the upsert waits for a racing instance's write and
/// judges its result). Answers whether it was taken, and from the statement's snapshot (every
/// part of a statement sees the rows as they were before it) who held it before and how long
/// ago they let go of it (`NULL`: they hold it still, or died holding it).
const ACQUIRE: &str = "WITH previous AS (SELECT instance, \
     (extract(epoch from clock_timestamp()) * 1000)::bigint - released_at AS since, recent \
     FROM chat_leases WHERE scope = $1), \
     taken AS (INSERT INTO chat_leases (scope, instance) VALUES ($1, $2) \
     ON CONFLICT (scope) DO UPDATE SET instance = excluded.instance, released_at = NULL, \
     recent = NULL \
     WHERE chat_leases.instance = excluded.instance OR chat_leases.released_at IS NOT NULL \
     OR NOT EXISTS (SELECT 1 FROM instances s \
     WHERE s.id = chat_leases.instance AND NOT s.stopping \
     AND s.heartbeat_at > (extract(epoch from clock_timestamp()) * 1000)::bigint - $3) \
     RETURNING 1) \
     SELECT (SELECT COUNT(*) FROM taken), (SELECT instance FROM previous), \
     (SELECT since FROM previous), (SELECT recent FROM previous)";

const RELEASE: &str = "UPDATE chat_leases \
     SET released_at = (extract(epoch from clock_timestamp()) * 1000)::bigint, recent = $3 \
     WHERE scope = $1 AND instance = $2 AND released_at IS NULL";

const RELEASE_ALL: &str = "UPDATE chat_leases \
     SET released_at = (extract(epoch from clock_timestamp()) * 1000)::bigint \
     WHERE instance = $1 AND released_at IS NULL";

const STOPPING: &str = "UPDATE instances SET stopping = TRUE WHERE id = $1";

/// Every event of a batch in one statement, numbered in the order given.
const ACCEPT: &str = "INSERT INTO inbox (scope, platform, event_id, payload, received_by, \
     received_at) SELECT e.scope, e.platform, e.event_id, e.payload, e.received_by, \
     (extract(epoch from clock_timestamp()) * 1000)::bigint \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
     WITH ORDINALITY AS e(scope, platform, event_id, payload, received_by, n) ORDER BY e.n \
     ON CONFLICT (platform, event_id) DO NOTHING RETURNING platform, event_id";

const FREE_SCOPES: &str = "SELECT DISTINCT i.scope FROM inbox i WHERE i.started_at IS NULL \
     AND NOT EXISTS (SELECT 1 FROM chat_leases l JOIN instances s ON s.id = l.instance \
     WHERE l.scope = i.scope AND l.released_at IS NULL AND NOT s.stopping \
     AND s.heartbeat_at > (extract(epoch from clock_timestamp()) * 1000)::bigint - $1)";

const WAITING: &str = "SELECT i.seq, i.scope, i.platform, COALESCE(i.payload, ''), \
     (extract(epoch from clock_timestamp()) * 1000)::bigint - i.received_at \
     FROM inbox i JOIN chat_leases l ON l.scope = i.scope \
     WHERE l.instance = $1 AND l.released_at IS NULL AND i.started_at IS NULL \
     ORDER BY i.seq LIMIT $2";

const START: &str = "UPDATE inbox SET started_at = (extract(epoch from clock_timestamp()) * 1000)::bigint, \
     payload = NULL WHERE seq = $1";

/// One statement, so two instances sweeping at once cannot both mark a reply: the second
/// finds it partial once the first commits.
const ABANDONED: &str = "UPDATE messages m SET status = 'partial', failure_reason = $1, \
     updated_at = $2 FROM conversations c \
     WHERE m.status = 'streaming' AND c.id = m.conversation AND c.platform != 'console' \
     AND (m.instance IS NULL OR m.instance = $3 OR NOT EXISTS (SELECT 1 FROM instances s \
     WHERE s.id = m.instance AND NOT s.stopping \
     AND s.heartbeat_at > (extract(epoch from clock_timestamp()) * 1000)::bigint - $4)) \
     RETURNING m.id, m.platform_messages, m.content, c.platform, c.chat, c.thread";

const DEPTH: &str = "SELECT COUNT(*) FROM inbox WHERE started_at IS NULL";

/// Per platform, the other live instances holding one of its chats.
const OTHERS_ACTIVE: &str = "SELECT split_part(l.scope, ':', 1), COUNT(DISTINCT l.instance) \
     FROM chat_leases l JOIN instances s ON s.id = l.instance \
     WHERE l.released_at IS NULL AND l.instance != $1 AND l.scope != $3 \
     AND NOT s.stopping AND s.heartbeat_at > (extract(epoch from clock_timestamp()) * 1000)::bigint - $2 GROUP BY 1";

const PRUNE_INBOX: &str = "DELETE FROM inbox WHERE started_at IS NOT NULL \
     AND started_at < (extract(epoch from clock_timestamp()) * 1000)::bigint - $1";

const PRUNE_INSTANCES: &str = "DELETE FROM instances \
     WHERE heartbeat_at < (extract(epoch from clock_timestamp()) * 1000)::bigint - $1";

/// A duration as a column of milliseconds.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl Coordination for PgStore {
    async fn register(&self, me: &InstanceId) -> Result<(), StoreError> {
        sqlx::query(REGISTER)
            .bind(me.as_str())
            .execute(&self.pool)
            .await
            .map_err(failed("register the instance"))?;
        Ok(())
    }

    async fn heartbeat(&self, me: &InstanceId) -> Result<(), StoreError> {
        sqlx::query(HEARTBEAT)
            .bind(me.as_str())
            .execute(&self.pool)
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
        // One statement, one round trip: the holder read is the one replaced.
        let (taken, holder, released, recent): (i64, Option<String>, Option<i64>, Option<String>) =
            sqlx::query_as(ACQUIRE)
                .bind(scope.as_str())
                .bind(me.as_str())
                .bind(millis(failover))
                .fetch_one(&self.pool)
                .await
                .map_err(failed("take a chat lease"))?;
        if taken != 1 {
            return Ok(Acquired::Refused);
        }
        Ok(match holder {
            Some(holder) if holder != me.as_str() => {
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
            .execute(&self.pool)
            .await
            .map_err(failed("release a chat lease"))?;
        Ok(())
    }

    async fn retire(&self, me: &InstanceId) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin()
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
        let column = |f: &dyn Fn(&InboxEvent<'_>) -> String| -> Vec<String> {
            events.iter().map(f).collect()
        };
        let stored: Vec<(String, String)> = sqlx::query_as(ACCEPT)
            .bind(column(&|e| e.scope.to_string()))
            .bind(column(&|e| e.platform.as_str().to_string()))
            .bind(column(&|e| e.event_id.to_string()))
            .bind(column(&|e| e.payload.to_string()))
            .bind(column(&|e| e.received_by.to_string()))
            .fetch_all(&self.pool)
            .await
            .map_err(failed("store inbound events"))?;
        let mut stored: std::collections::HashSet<(String, String)> = stored.into_iter().collect();
        // The first of two equal ids in one batch is the one stored.
        Ok(events
            .iter()
            .map(|e| stored.remove(&(e.platform.as_str().to_string(), e.event_id.to_string())))
            .collect())
    }

    async fn free_scopes(&self, failover: Duration) -> Result<Vec<Scope>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar(FREE_SCOPES)
            .bind(millis(failover))
            .fetch_all(&self.pool)
            .await
            .map_err(failed("find scopes nobody holds"))?;
        Ok(names.into_iter().map(Scope::named).collect())
    }

    async fn waiting(&self, me: &InstanceId, limit: u32) -> Result<Vec<Waiting>, StoreError> {
        let found: Vec<(i64, String, String, String, i64)> = sqlx::query_as(WAITING)
            .bind(me.as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
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
            .execute(&self.pool)
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
            .fetch_all(&self.pool)
            .await
            .map_err(failed("mark replies of stopped instances interrupted"))?;
        messages::interrupted(marked)
    }

    async fn inbox_depth(&self) -> Result<u64, StoreError> {
        let depth: i64 = sqlx::query_scalar(DEPTH)
            .fetch_one(&self.pool)
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
            .fetch_all(&self.pool)
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
                .execute(&self.pool)
                .await
                .map_err(failed("prune the inbox"))?;
        }
        Ok(())
    }
}
