use super::*;
use crate::engine::attachment::{FileContent, FileRef};
use crate::engine::memory::MemoryPlatform;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
const LIMITS: AttachmentLimits = AttachmentLimits {
    max_image_bytes: 1000,
    max_text_bytes: 100,
};

fn platform() -> MemoryPlatform {
    MemoryPlatform::unpaced(4096)
}

fn file(name: &str, kind: AttachmentKind, mime: Option<&str>, size: Option<u64>) -> Attachment {
    Attachment {
        name: name.into(),
        kind,
        mime: mime.map(str::to_string),
        size,
        source: FileRef::new(name),
    }
}

fn text_only() -> ImageSupport {
    ImageSupport::Cannot {
        model: ModelName::new("grok-3"),
        suggest: Some(ModelName::new("grok-4")),
    }
}

#[tokio::test]
async fn images_and_text_files_are_read_by_their_bytes() {
    let platform = platform();
    platform.put_file("shot.png", PNG);
    platform.put_file("notes.md", "# Notes\nbody".as_bytes());
    platform.put_file("data", PNG);
    let attachments = [
        file(
            "shot.png",
            AttachmentKind::File,
            Some("image/png"),
            Some(16),
        ),
        file("notes.md", AttachmentKind::File, None, None),
        file(
            "data",
            AttachmentKind::File,
            Some("application/octet-stream"),
            None,
        ),
    ];
    let read = read_all(&attachments, &platform, LIMITS, &ImageSupport::Reads).await;
    assert!(read.problems.is_empty(), "{:?}", read.problems);
    let kinds: Vec<_> = read.files.iter().map(StoredFile::mime).collect();
    assert_eq!(kinds, ["image/png", "text/plain", "image/png"]);
    assert_eq!(
        read.files[1].content,
        FileContent::Text("# Notes\nbody".into())
    );
}

#[tokio::test]
async fn a_declared_size_over_the_limit_is_refused_without_a_download() {
    let platform = platform();
    platform.put_file("big.log", &[b'a'; 500]);
    let attachments = [file("big.log", AttachmentKind::File, None, Some(500))];
    let read = read_all(&attachments, &platform, LIMITS, &ImageSupport::Reads).await;
    assert!(read.files.is_empty());
    assert_eq!(
        read.problems,
        [
            "big.log is too large (500 bytes; I read text files up to 100 bytes) — send a smaller file."
        ]
    );
    assert!(platform.fetched().is_empty(), "nothing was downloaded");
}

#[tokio::test]
async fn a_file_larger_than_it_said_is_cut_off_at_the_limit() {
    let platform = platform();
    platform.put_file("liar.txt", &[b'a'; 500]);
    let attachments = [file("liar.txt", AttachmentKind::File, None, Some(10))];
    let read = read_all(&attachments, &platform, LIMITS, &ImageSupport::Reads).await;
    assert!(read.files.is_empty());
    assert!(
        read.problems[0].starts_with("liar.txt is too large"),
        "{:?}",
        read.problems
    );
}

#[tokio::test]
async fn unreadable_kinds_get_one_line_each_and_are_not_downloaded() {
    let platform = platform();
    let attachments = [
        file(
            "voice.ogg",
            AttachmentKind::Unreadable("voice messages"),
            None,
            None,
        ),
        file("a.zip", AttachmentKind::File, Some("application/zip"), None),
        file("b.zip", AttachmentKind::File, None, None),
        file("clip.mp4", AttachmentKind::File, Some("video/mp4"), None),
    ];
    let read = read_all(&attachments, &platform, LIMITS, &ImageSupport::Reads).await;
    assert_eq!(
        read.problems,
        [
            "I can't read voice messages — send text, an image or a text file.",
            "I can't read archives — send text, an image or a text file.",
            "I can't read videos — send text, an image or a text file.",
        ]
    );
    assert!(platform.fetched().is_empty());
}

#[tokio::test]
async fn a_text_only_model_gets_no_image_and_the_chat_learns_which_model_can() {
    let platform = platform();
    platform.put_file("photo.jpg", b"\xff\xd8\xff\xe0");
    platform.put_file("sneaky.txt", PNG);
    platform.put_file("fine.txt", b"plain");
    let attachments = [
        file("photo.jpg", AttachmentKind::Photo, None, None),
        file("sneaky.txt", AttachmentKind::File, Some("text/plain"), None),
        file("fine.txt", AttachmentKind::File, Some("text/plain"), None),
    ];
    let read = read_all(&attachments, &platform, LIMITS, &text_only()).await;
    assert_eq!(
        read.problems,
        ["grok-3 cannot read images — switch with /model grok-4 and send it again."]
    );
    assert_eq!(read.files, [StoredFile::text("fine.txt", "plain")]);
    assert_eq!(
        platform.fetched(),
        ["sneaky.txt", "fine.txt"],
        "no photo download"
    );
}

#[tokio::test]
async fn binary_files_and_fake_images_are_refused_with_a_line() {
    let platform = platform();
    platform.put_file("blob.bin", b"\0\x01\x02");
    platform.put_file("fake.png", b"not a png");
    platform.put_file("IMG_1.HEIC", b"\0\0\0\x18ftypheic");
    let attachments = [
        file("blob.bin", AttachmentKind::File, None, None),
        file("fake.png", AttachmentKind::File, None, None),
        file("IMG_1.HEIC", AttachmentKind::File, None, None),
        file("missing.txt", AttachmentKind::File, None, None),
    ];
    let read = read_all(&attachments, &platform, LIMITS, &ImageSupport::Reads).await;
    assert_eq!(
        read.problems,
        [
            "I can't read blob.bin: I read images and UTF-8 text files.",
            "fake.png is not an image I can read (PNG, JPEG, WebP or GIF).",
            "IMG_1.HEIC is not an image I can read (PNG, JPEG, WebP or GIF).",
            "I could not download missing.txt — please send it again.",
        ]
    );
}
