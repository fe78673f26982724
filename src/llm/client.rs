//! [`OpenAiClient`]: the [`Model`] that talks to an OpenAI-compatible chat-completions API.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use secrecy::ExposeSecret;
use tokio::time::{Instant, sleep, timeout};
use tracing::{instrument, warn};

use super::config::ClientConfig;
use super::retry::{Decision, is_retryable};
use super::transport::{QuietConnector, Route, stream_gate};
use super::wire::RequestBody;
use super::{error, sse, whole};
use crate::engine::ports::{CompletionRequest, Model, ModelError, TimeoutKind, TokenStream};
use crate::metrics;

mod ping;

/// The HTTP client: HTTP/1.1 over the client's own sockets, TLS by rustls with Mozilla's roots.
type Http = Client<HttpsConnector<Route>, Full<Bytes>>;
type Response = hyper::Response<Incoming>;

/// Why a client could not be built from its config; names the key, never its value.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `base_url` does not parse as a URL.
    #[error("llm.base_url is not a valid URL: {0}")]
    BaseUrl(String),
    /// `conversation_header` is not a valid HTTP header name.
    #[error("llm.conversation_header is not a valid header name: {0}")]
    HeaderName(String),
    /// The API key cannot be sent in a header.
    #[error("llm.api_key contains characters not allowed in an HTTP header")]
    ApiKey,
    /// The HTTP client could not be set up (TLS).
    #[error("could not build the HTTP client")]
    Build(#[source] rustls::Error),
}

/// The chat-completions client: streaming (SSE) or whole answers, with retries.
#[derive(Debug)]
pub struct OpenAiClient {
    http: Http,
    url: Uri,
    auth: HeaderValue,
    conversation_header: HeaderName,
    config: ClientConfig,
}

/// A failed attempt: the error to return and whether another attempt may help.
struct Failure {
    error: ModelError,
    retryable: bool,
    asked: Option<Duration>,
    status: Option<u16>,
}

impl OpenAiClient {
    /// Builds the client (rustls, connect timeout) and checks the URL, header name and key.
    /// The proxy environment variables apply (see [`OpenAiClient::with_proxies`]).
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        Self::with_proxies(config, &Matcher::from_env())
    }

    /// Like [`OpenAiClient::new`], with the proxies `proxies` names instead of the environment's
    /// (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, as curl reads them): a proxied API
    /// is reached through an HTTP proxy's `CONNECT` tunnel.
    pub fn with_proxies(config: ClientConfig, proxies: &Matcher) -> Result<Self, ClientError> {
        let root = config.base_url.trim_end_matches('/');
        let url = format!("{root}/chat/completions")
            .parse::<Uri>()
            .ok()
            .filter(|url| {
                url.host().is_some() && matches!(url.scheme_str(), Some("http" | "https"))
            })
            .ok_or_else(|| ClientError::BaseUrl(config.base_url.clone()))?;
        let conversation_header = HeaderName::try_from(config.conversation_header.as_str())
            .map_err(|_| ClientError::HeaderName(config.conversation_header.clone()))?;
        let bearer = format!("Bearer {}", config.api_key.expose_secret());
        let mut auth = HeaderValue::try_from(bearer).map_err(|_| ClientError::ApiKey)?;
        auth.set_sensitive(true);
        let http = http_client(config.timeouts.connect, &url, proxies)?;
        Ok(Self {
            http,
            url,
            auth,
            conversation_header,
            config,
        })
    }

    async fn attempt(
        &self,
        request: &CompletionRequest,
        body: &Bytes,
    ) -> Result<TokenStream, Failure> {
        let started = Instant::now();
        let response = self.send(request, body).await?;
        if !response.status().is_success() {
            return Err(self.rejected(response, request).await);
        }
        self.events(response, started)
            .await
            .map_err(|error| Failure::fatal(error, None))
    }

    /// Sends `body`, shared with later attempts rather than copied (an image turn's body holds
    /// its images).
    async fn send(&self, request: &CompletionRequest, body: &Bytes) -> Result<Response, Failure> {
        let accept = if self.config.stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let call = self.post(request.conversation.to_string(), accept, body.clone());
        let (wait, kind) = self.header_wait();
        match timeout(wait, call).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(Failure::transport(&error)),
            Err(_) => Err(Failure::fatal(ModelError::Timeout(kind), None)),
        }
    }

    /// How long to wait for the response headers: a stream sends them by its first token.
    fn header_wait(&self) -> (Duration, TimeoutKind) {
        let timeouts = self.config.timeouts;
        if self.config.stream {
            (
                timeouts.first_token.min(timeouts.total),
                TimeoutKind::FirstToken,
            )
        } else {
            (timeouts.total, TimeoutKind::Total)
        }
    }

    /// Sends a POST of `body` to the completions URL with the key and the conversation id.
    fn post(
        &self,
        conversation: String,
        accept: &'static str,
        body: Bytes,
    ) -> hyper_util::client::legacy::ResponseFuture {
        let built = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(&self.conversation_header, conversation)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, accept)
            .body(Full::new(body));
        // Every part was checked when the client was built: the URL, the header name, the key;
        // a conversation id is a UUID.
        let request = built.unwrap_or_else(|_| Request::new(Full::new(Bytes::new())));
        self.http.request(request)
    }

    async fn rejected(&self, response: Response, request: &CompletionRequest) -> Failure {
        let status = response.status();
        let headers = response.headers().clone();
        let body = timeout(self.config.timeouts.idle, whole_body(response)).await;
        let body = match &body {
            Ok(Some(bytes)) => String::from_utf8_lossy(bytes),
            _ => "".into(),
        };
        Failure {
            error: error::from_status(status, &headers, &body, &request.model),
            retryable: is_retryable(status),
            asked: error::retry_after(&headers, std::time::SystemTime::now()),
            status: Some(status.as_u16()),
        }
    }

    /// The answer's events: decoded SSE, or a whole JSON answer replayed as events.
    async fn events(
        &self,
        response: Response,
        started: Instant,
    ) -> Result<TokenStream, ModelError> {
        let timeouts = self.config.timeouts;
        if self.config.stream && !is_json(&response) {
            let gate = stream_gate(&response);
            let bytes = response.into_body().into_data_stream();
            let stream = sse::decode(bytes, timeouts, started);
            return Ok(match gate {
                Some(gate) => stream.with_hold(Box::new(gate)),
                None => stream,
            });
        }
        let deadline = started + timeouts.total;
        let body = match tokio::time::timeout_at(deadline, whole_body(response)).await {
            Ok(Some(body)) => body,
            Ok(None) => return Err(ModelError::Incomplete),
            Err(_) => return Err(ModelError::Timeout(TimeoutKind::Total)),
        };
        let events = whole::events(&body)?;
        Ok(TokenStream::new(stream::iter(events.into_iter().map(Ok))))
    }
}

/// The HTTP client over the client's own sockets (see `transport`) to `url`.
fn http_client(
    connect_timeout: Duration,
    url: &Uri,
    proxies: &Matcher,
) -> Result<Http, ClientError> {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(provider)
        .map_err(ClientError::Build)?
        .https_or_http()
        .enable_http1()
        .wrap_connector(Route::new(QuietConnector::new(tcp), url, proxies));
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .build(https))
}

/// A whole response body, or `None` when the connection failed before its end.
async fn whole_body(response: Response) -> Option<Bytes> {
    let collected = response.into_body().collect().await.ok()?;
    Some(collected.to_bytes())
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

impl Failure {
    fn fatal(error: ModelError, status: Option<u16>) -> Self {
        Self {
            error,
            retryable: false,
            asked: None,
            status,
        }
    }

    /// A request that never got an answer; only connection failures are safe to resend.
    fn transport(error: &hyper_util::client::legacy::Error) -> Self {
        let model_error = if connect_timed_out(error) {
            ModelError::Timeout(TimeoutKind::Connect)
        } else if error.is_connect() {
            ModelError::Unavailable("could not connect to the model provider".into())
        } else {
            ModelError::Unavailable("the connection to the model provider failed".into())
        };
        Self {
            retryable: error.is_connect(),
            ..Self::fatal(model_error, None)
        }
    }
}

#[async_trait]
impl Model for OpenAiClient {
    #[instrument(skip_all, fields(conversation = %request.conversation, model = %request.model))]
    async fn complete(&self, request: CompletionRequest) -> Result<TokenStream, ModelError> {
        let mut params = self
            .config
            .params
            .for_model(&request.model, &self.config.overrides);
        // A chat's own /n replaces llm.n.
        params.n = request.n.or(params.n);
        let body = RequestBody::new(&request, &params, self.config.stream);
        let mut bytes = Vec::with_capacity(body.size_hint());
        serde_json::to_writer(&mut bytes, &body)
            .map_err(|_| ModelError::BadRequest("the request could not be encoded".into()))?;
        let body = Bytes::from(bytes);
        let mut attempt = 0;
        loop {
            let failure = match self.attempt(&request, &body).await {
                Ok(stream) => return Ok(stream),
                Err(failure) if !failure.retryable => return Err(failure.error),
                Err(failure) => failure,
            };
            let Decision::RetryAfter(wait) = self.config.retry.decide(attempt, failure.asked)
            else {
                return Err(failure.error);
            };
            attempt += 1;
            metrics::completion_retry();
            warn!(status = ?failure.status, attempt, wait_ms = wait.as_millis() as u64, error = %failure.error, "retrying the completion request");
            sleep(wait).await;
        }
    }
}

/// True when `error` comes from a connection attempt that ran out of time.
fn connect_timed_out(error: &hyper_util::client::legacy::Error) -> bool {
    if !error.is_connect() {
        return false;
    }
    let mut source = error.source();
    while let Some(cause) = source {
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = cause.source();
    }
    false
}
