//! The fake CDN: attachment URLs as Discord hands them out (`/attachments/{channel}/{id}/{name}`
//! signed with `ex`, `is` and `hm`), served without a token. Discord answers an unsigned or
//! unknown URL with 404 "This content is no longer available."; so does the fake. Every
//! download is recorded, with whether it carried an `Authorization` header (the CDN needs none,
//! and a bot must not hand it its token).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::{Download, Shared, State as FakeState};

/// A file a user attaches.
#[derive(Debug, Clone)]
pub struct FakeFile {
    /// Its file name (`message.txt` for a long paste).
    pub name: String,
    /// The content type Discord reports.
    pub content_type: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// A voice message (Discord adds a duration and a waveform).
    pub voice: bool,
}

impl FakeFile {
    /// A file with this name, content type and content.
    pub fn new(name: &str, content_type: &str, bytes: &[u8]) -> Self {
        Self {
            name: name.into(),
            content_type: content_type.into(),
            bytes: bytes.to_vec(),
            voice: false,
        }
    }

    /// A voice message, as Discord's clients record them.
    pub fn voice_message() -> Self {
        Self {
            voice: true,
            ..Self::new("voice-message.ogg", "audio/ogg", b"OggS\0\x02voice")
        }
    }
}

/// The route attachment URLs point at.
pub fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/attachments/{*rest}", get(download))
        .with_state(shared)
}

impl FakeState {
    /// Stores `file` as attachment `id` in `channel`; returns its Attachment object.
    pub(super) fn attach(&mut self, addr: &str, channel: &str, file: &FakeFile) -> Value {
        let id = self.new_id();
        let path = format!("/attachments/{channel}/{id}/{}", file.name);
        let url = format!("http://{addr}{path}?ex=6a000000&is=69f00000&hm=5ign{id}&");
        self.files
            .insert(path, (file.content_type.clone(), file.bytes.clone()));
        let mut attachment = json!({ "id": id, "filename": file.name, "size": file.bytes.len(),
            "url": url, "proxy_url": url, "content_type": file.content_type });
        if file.voice {
            attachment["duration_secs"] = json!(2.5);
            attachment["waveform"] = json!("AAAAAAAA");
        }
        attachment
    }
}

async fn download(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let query = uri.query().unwrap_or("");
    let signed = ["ex=", "is=", "hm="].iter().all(|p| query.contains(p));
    let path = uri.path().to_string();
    let found = {
        let mut state = shared.lock();
        state.downloads.push(Download {
            path: path.clone(),
            authorized: headers.contains_key("authorization"),
        });
        state.files.get(&path).cloned().filter(|_| signed)
    };
    match found {
        Some((content_type, bytes)) => Response::builder()
            .status(200)
            .header("content-type", content_type)
            .header("content-length", bytes.len())
            .body(Body::from(bytes))
            .unwrap(),
        None => Response::builder()
            .status(404)
            .body(Body::from("This content is no longer available."))
            .unwrap(),
    }
}
