//! What a file's first bytes say it is: the image types the model reads, and text.

/// An image type the completion API reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// WebP.
    Webp,
    /// GIF (the model reads the first frame).
    Gif,
}

impl ImageType {
    /// Every type, for parsing stored names.
    const ALL: [Self; 4] = [Self::Png, Self::Jpeg, Self::Webp, Self::Gif];

    /// The type of an image from its first bytes; `None` when they are not one of these.
    pub fn sniff(data: &[u8]) -> Option<Self> {
        match data {
            [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n', ..] => Some(Self::Png),
            [0xff, 0xd8, 0xff, ..] => Some(Self::Jpeg),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(Self::Gif),
            [
                b'R',
                b'I',
                b'F',
                b'F',
                _,
                _,
                _,
                _,
                b'W',
                b'E',
                b'B',
                b'P',
                ..,
            ] => Some(Self::Webp),
            _ => None,
        }
    }

    /// Its MIME type, as sent in the data URL and stored.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
            Self::Gif => "image/gif",
        }
    }

    /// Parses a stored MIME type.
    pub fn from_mime(mime: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.mime() == mime)
    }
}

/// The text of a file that decodes as UTF-8 (its byte-order mark dropped) and holds no NUL
/// byte, which no text file does; `None` otherwise.
pub fn text(data: &[u8]) -> Option<&str> {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    std::str::from_utf8(data).ok().filter(|t| !t.contains('\0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_known_by_their_first_bytes() {
        assert_eq!(
            ImageType::sniff(b"\x89PNG\r\n\x1a\n...."),
            Some(ImageType::Png)
        );
        assert_eq!(ImageType::sniff(b"\xff\xd8\xff\xe0"), Some(ImageType::Jpeg));
        assert_eq!(ImageType::sniff(b"GIF89a..."), Some(ImageType::Gif));
        assert_eq!(
            ImageType::sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(ImageType::Webp)
        );
        assert_eq!(ImageType::sniff(b"RIFF\0\0\0\0WAVE"), None);
        assert_eq!(ImageType::sniff(b"hello"), None);
        for kind in ImageType::ALL {
            assert_eq!(ImageType::from_mime(kind.mime()), Some(kind));
        }
    }

    #[test]
    fn text_is_utf8_without_nul_bytes() {
        assert_eq!(text(b"\xef\xbb\xbfhello"), Some("hello"));
        assert_eq!(text("grüße".as_bytes()), Some("grüße"));
        assert_eq!(text(b"\xff\xfe h"), None);
        assert_eq!(text(b"PK\x03\x04\0\0"), None);
    }
}
