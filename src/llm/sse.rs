//! Decodes a chat-completions SSE byte stream into engine events, enforcing the stream timeouts.

use std::collections::VecDeque;
use std::fmt::Display;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt, stream};
use tokio::time::{Instant, timeout_at};

use super::config::Timeouts;
use super::error::{error_text, truncate};
use super::wire::Chunk;
use crate::engine::ports::{ModelError, StreamEvent, TimeoutKind, TokenStream};

type Item = Result<StreamEvent, ModelError>;
type Events = Pin<Box<dyn Stream<Item = Result<String, ModelError>> + Send>>;

/// How long a read may take to be handed over after the reader comes back to the stream.
const HANDOVER: std::time::Duration = std::time::Duration::from_millis(100);

/// Turns the body of a streamed answer into a [`TokenStream`]; `started` is when the request
/// was sent, from which the first-token and total timeouts count.
pub(super) fn decode<S, B, E>(bytes: S, timeouts: Timeouts, started: Instant) -> TokenStream
where
    S: Stream<Item = Result<B, E>> + Send + 'static,
    B: AsRef<[u8]> + Send + 'static,
    E: Display + Send + 'static,
{
    let clock = Clock {
        started,
        last_read: Arc::new(AtomicU64::new(0)),
        timeouts,
    };
    let reads = clock.last_read.clone();
    let events = bytes
        .map(move |read| {
            reads.store(nanos_since(started), Ordering::Relaxed);
            read
        })
        .eventsource()
        .map(|event| event.map(|e| e.data).map_err(read_error));
    let decoder = Decoder {
        events: Box::pin(events),
        pending: VecDeque::new(),
        clock,
        flowing: false,
        finished: false,
        ended: false,
    };
    TokenStream::new(stream::unfold(decoder, |mut decoder| async move {
        decoder.next().await.map(|item| (item, decoder))
    }))
}

/// Decodes a whole streamed answer handed over in reads of `read_size` bytes, with the decoder
/// the client uses, and collects its events. For benchmarks and tools that have a body at hand;
/// the default timeouts apply.
pub async fn decode_body(body: &[u8], read_size: usize) -> Vec<Result<StreamEvent, ModelError>> {
    let reads: Vec<Vec<u8>> = body.chunks(read_size.max(1)).map(<[u8]>::to_vec).collect();
    let bytes = stream::iter(reads.into_iter().map(Ok::<_, std::convert::Infallible>));
    decode(bytes, Timeouts::default(), Instant::now())
        .collect()
        .await
}

fn read_error<E: Display>(error: EventStreamError<E>) -> ModelError {
    match error {
        EventStreamError::Transport(_) => ModelError::Incomplete,
        _ => ModelError::Unavailable("the model provider sent an unreadable stream".into()),
    }
}

fn nanos_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The start of the request and the time of the last read, against the timeouts.
struct Clock {
    started: Instant,
    last_read: Arc<AtomicU64>,
    timeouts: Timeouts,
}

impl Clock {
    fn last_read(&self) -> Instant {
        self.started + std::time::Duration::from_nanos(self.last_read.load(Ordering::Relaxed))
    }

    /// When the next timeout runs out: first token until tokens flow, then idle; total always.
    fn deadline(&self, flowing: bool) -> Instant {
        let wait = if flowing {
            self.last_read() + self.timeouts.idle
        } else {
            self.started + self.timeouts.first_token
        };
        wait.min(self.started + self.timeouts.total)
    }

    /// Which timeout has run out now, if any (a read may have moved the idle deadline).
    fn expired(&self, flowing: bool) -> Option<TimeoutKind> {
        let now = Instant::now();
        if now >= self.started + self.timeouts.total {
            Some(TimeoutKind::Total)
        } else if !flowing && now >= self.started + self.timeouts.first_token {
            Some(TimeoutKind::FirstToken)
        } else if flowing && now >= self.last_read() + self.timeouts.idle {
            Some(TimeoutKind::Idle)
        } else {
            None
        }
    }
}

/// The decoding state of one stream.
struct Decoder {
    events: Events,
    pending: VecDeque<Item>,
    clock: Clock,
    /// A token (content, thinking) or the finish reason has arrived: idle timeouts apply.
    flowing: bool,
    finished: bool,
    ended: bool,
}

impl Decoder {
    async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if self.ended {
                return None;
            }
            // A reader that left the stream unread for a while (the reply loop does, while a
            // preview waits) finds what came meanwhile in the socket: give it a moment to be
            // handed over before an expired deadline counts.
            let deadline = self
                .clock
                .deadline(self.flowing)
                .max(Instant::now() + HANDOVER);
            match timeout_at(deadline, self.events.next()).await {
                Ok(Some(Ok(data))) => self.on_data(&data),
                Ok(Some(Err(error))) => self.fail(error),
                Ok(None) => self.fail(ModelError::Incomplete),
                Err(_) => {
                    if let Some(kind) = self.clock.expired(self.flowing) {
                        self.fail(ModelError::Timeout(kind));
                    }
                }
            }
        }
    }

    /// Ends the stream; with an error unless the model had already finished.
    fn fail(&mut self, error: ModelError) {
        self.ended = true;
        if !self.finished {
            self.pending.push_back(Err(error));
        }
    }

    fn on_data(&mut self, data: &str) {
        let data = data.trim();
        if data == "[DONE]" {
            return self.fail(ModelError::Incomplete);
        }
        if data.is_empty() {
            return;
        }
        match serde_json::from_str::<Chunk>(data) {
            Ok(chunk) => self.on_chunk(chunk),
            Err(_) => self.fail(ModelError::Unavailable(
                "the model provider sent an unreadable chunk".into(),
            )),
        }
    }

    fn on_chunk(&mut self, chunk: Chunk) {
        if let Some(error) = chunk.error {
            let wrapped = serde_json::json!({ "error": error });
            let text = error_text(&wrapped).unwrap_or_else(|| "unknown error".into());
            return self.fail(ModelError::Upstream(truncate(&text)));
        }
        let (first, others): (Vec<_>, Vec<_>) =
            chunk.choices.into_iter().partition(|c| c.index == 0);
        for other in others {
            let index = usize::try_from(other.index).unwrap_or(usize::MAX);
            if let Some(text) = other.delta.content.filter(|t| !t.is_empty()) {
                self.pending
                    .push_back(Ok(StreamEvent::Other { index, text }));
            }
            if let Some(reason) = other.finish_reason {
                self.pending
                    .push_back(Ok(StreamEvent::OtherFinished { index, reason }));
            }
        }
        for choice in first {
            let delta = choice.delta;
            let thinking = delta.reasoning_content.filter(|t| !t.is_empty());
            let content = delta.content.filter(|t| !t.is_empty());
            let silent = thinking.is_none() && content.is_none();
            self.push_token(thinking.map(StreamEvent::Thinking));
            self.push_token(content.map(StreamEvent::Content));
            match choice.finish_reason {
                Some(reason) if !self.finished => self.finish(reason),
                None if silent => self.push_token(Some(StreamEvent::Thinking(String::new()))),
                _ => {}
            }
        }
        if let Some(usage) = chunk.usage {
            self.pending.push_back(Ok(StreamEvent::Usage(usage.into())));
        }
    }

    fn push_token(&mut self, event: Option<StreamEvent>) {
        if let Some(event) = event {
            self.flowing = true;
            self.pending.push_back(Ok(event));
        }
    }

    fn finish(&mut self, reason: String) {
        self.flowing = true;
        self.finished = true;
        self.pending.push_back(Ok(StreamEvent::Finished(reason)));
    }
}

#[cfg(test)]
mod tests;
