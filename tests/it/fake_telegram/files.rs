//! Files on the fake Bot API: users' photos, documents and voice messages in updates, `getFile`
//! (a `file_path` for a `file_id`; "file is too big" past the 20 MB a bot may download) and the
//! downloads under `/file/bot<token>/<file_path>`, as the real server serves them.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::updates::{self, ChatRef, User};
use super::{Answer, FAKE_TOKEN, FakeTelegram, Shared, St};

/// What the Bot API lets a bot download.
pub const DOWNLOAD_LIMIT: usize = 20 * 1000 * 1000;

/// A file as the fake stores it.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    unique_id: String,
    path: String,
    bytes: Vec<u8>,
}

/// What a user sends besides text.
#[derive(Debug, Clone)]
pub enum Media {
    /// A photo: Telegram keeps a thumbnail and this, its largest size (a JPEG).
    Photo(Vec<u8>),
    /// A file with its name and MIME type.
    Document {
        /// Its file name.
        name: String,
        /// Its MIME type.
        mime: String,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// A voice message (OGG/Opus).
    Voice,
}

impl Media {
    /// A document.
    pub fn document(name: &str, mime: &str, bytes: &[u8]) -> Self {
        Self::Document {
            name: name.into(),
            mime: mime.into(),
            bytes: bytes.to_vec(),
        }
    }
}

impl St {
    /// Stores `bytes` under a new file id in `folder`; returns the file's id and size fields.
    fn store_file(&mut self, folder: &str, extension: &str, bytes: Vec<u8>) -> Value {
        let n = self.files.len() + 1;
        let (id, unique_id) = (format!("AgAC-file-{n}"), format!("AQAD{n}"));
        let path = format!("{folder}/file_{n}.{extension}");
        let size = bytes.len();
        let stored = Stored {
            unique_id: unique_id.clone(),
            path,
            bytes,
        };
        self.files.insert(id.clone(), stored);
        json!({ "file_id": id, "file_unique_id": unique_id, "file_size": size })
    }

    /// The message fields of `media`: `photo`, `document` or `voice`.
    fn media_fields(&mut self, media: &Media) -> (&'static str, Value) {
        match media {
            Media::Photo(bytes) => {
                let thumb = self.store_file("photos", "jpg", b"\xff\xd8\xff\xe0thumb".to_vec());
                let large = self.store_file("photos", "jpg", bytes.clone());
                let sized = |mut v: Value, w: u32| {
                    v["width"] = json!(w);
                    v["height"] = json!(w * 3 / 4);
                    v
                };
                ("photo", json!([sized(thumb, 90), sized(large, 1280)]))
            }
            Media::Document { name, mime, bytes } => {
                let extension = name.rsplit_once('.').map_or("bin", |(_, e)| e);
                let mut document = self.store_file("documents", extension, bytes.clone());
                document["file_name"] = json!(name);
                document["mime_type"] = json!(mime);
                ("document", document)
            }
            Media::Voice => {
                let mut voice = self.store_file("voice", "oga", b"OggS\0\x02voice".to_vec());
                voice["duration"] = json!(3);
                voice["mime_type"] = json!("audio/ogg");
                ("voice", voice)
            }
        }
    }
}

impl FakeTelegram {
    /// A user sends `media` with `caption` ("" for none) in `chat`, replying to the user message
    /// `to` when given; returns the message id.
    pub fn user_sends(
        &self,
        chat: &ChatRef,
        from: &User,
        media: &Media,
        caption: &str,
        to: Option<i64>,
    ) -> i64 {
        self.post(chat, |st, id| {
            let media = st.media_fields(media);
            let replied = to.and_then(|to| st.user_messages.get(&(chat.id, to)).cloned());
            updates::media_message(id, chat, from, media, caption, replied)
        })
    }

    /// A user writes `text` in `chat` replying to the user message `to` (a photo, a file).
    pub fn user_replies_to_user(&self, chat: &ChatRef, from: &User, text: &str, to: i64) -> i64 {
        self.post(chat, |st, id| {
            let mut message = updates::message(id, chat, from, text, None);
            if let Some(replied) = st.user_messages.get(&(chat.id, to)) {
                message["reply_to_message"] = replied.clone();
            }
            message
        })
    }

    /// Makes every later download answer 404, as for a file path that expired.
    pub fn lose_files(&self) {
        self.st().files_lost = true;
    }

    /// The file paths downloaded so far, in order.
    pub fn downloads(&self) -> Vec<String> {
        self.st().downloads.clone()
    }
}

/// `getFile`: the file's path, or the Bot API's refusals.
pub(super) fn get_file(st: &mut St, body: &Value) -> Answer {
    let id = body["file_id"].as_str().unwrap_or("");
    let Some(file) = st.files.get(id) else {
        return Err((400, "Bad Request: invalid file_id".into(), None));
    };
    if file.bytes.len() > DOWNLOAD_LIMIT {
        return Err((400, "Bad Request: file is too big".into(), None));
    }
    Ok(json!({ "file_id": id, "file_unique_id": file.unique_id,
        "file_size": file.bytes.len(), "file_path": file.path }))
}

/// `GET /file/bot<token>/<file_path>`: the file's bytes.
pub(super) async fn download(
    State(shared): State<Arc<Shared>>,
    Path((bot, path)): Path<(String, String)>,
) -> Response {
    let found = {
        let mut st = shared.state.lock().unwrap();
        let known = bot.strip_prefix("bot") == Some(FAKE_TOKEN) && !st.files_lost;
        let file = st.files.values().find(|f| f.path == path).cloned();
        let file = file.filter(|f| known && f.bytes.len() <= DOWNLOAD_LIMIT);
        if file.is_some() {
            st.downloads.push(path);
        }
        file
    };
    match found {
        Some(file) => Response::builder()
            .status(200)
            .header("content-type", "application/octet-stream")
            .header("content-length", file.bytes.len())
            .body(Body::from(file.bytes))
            .unwrap(),
        None => {
            let body = json!({ "ok": false, "error_code": 404, "description": "Not Found" });
            Response::builder()
                .status(404)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap()
        }
    }
}
