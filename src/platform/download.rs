//! Downloading a user's file over HTTP with a size cap and timeouts, for the adapters' `fetch`:
//! the size a server announces is checked before the body is read, and the body is cut off
//! once it passes the cap. Errors never carry the URL (a Telegram file URL holds the token).

use std::time::Duration;

use crate::engine::ports::FetchError;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one whole download may take.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// The HTTP client downloads go through.
pub fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(DOWNLOAD_TIMEOUT)
        .build()
        .map_err(|e| e.without_url().to_string())
}

/// GETs `url` and returns its body, refusing with [`FetchError::TooLarge`] past `limit` bytes.
pub async fn get(
    client: &reqwest::Client,
    url: reqwest::Url,
    limit: u64,
) -> Result<Vec<u8>, FetchError> {
    let mut response = client.get(url).send().await.map_err(failed)?;
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError::Failed(format!("the server answered {status}")));
    }
    let announced = response.content_length();
    if announced.is_some_and(|len| len > limit) {
        return Err(FetchError::TooLarge(limit));
    }
    // Room for what the server announced (within the limit), so the body is not copied as it grows.
    let room = usize::try_from(announced.unwrap_or(0)).unwrap_or(0);
    let mut body = Vec::with_capacity(room);
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(FetchError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A request error without its URL.
fn failed(error: reqwest::Error) -> FetchError {
    FetchError::Failed(failure(&error).to_string())
}

/// What went wrong with a request that got no answer, in words that hold no URL.
pub fn failure(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "the connection failed"
    }
}
