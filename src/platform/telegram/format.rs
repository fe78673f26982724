//! Markdown (as the model writes it) to Telegram HTML, with pulldown-cmark: the exact conversion
//! for final messages and an always-valid preview for a streaming prefix.

mod render;
mod table;

use pulldown_cmark::{Options, Parser};

use super::html;

/// Converts Markdown to Telegram HTML: bold, italic, strikethrough, code, fenced code blocks
/// with their language, links and block quotes as tags; headings as bold lines, lists as text
/// bullets, tables as preformatted text; everything else escaped.
pub fn to_html(markdown: &str) -> String {
    let options = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES;
    let mut renderer = render::Renderer::default();
    for event in Parser::new_ext(markdown, options) {
        renderer.event(event);
    }
    renderer.finish()
}

/// Converts a prefix of a streaming answer. The parser closes unfinished blocks (an open code
/// fence runs to the end) and every tag it opens, so the result is balanced; should it still
/// fail Telegram's rules, the escaped plain text is shown instead.
pub fn preview(markdown: &str) -> String {
    let converted = to_html(markdown);
    if html::parse(&converted).is_ok() {
        converted
    } else {
        escape(markdown)
    }
}

/// Escapes `<`, `>` and `&` so that `text` shows literally.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a value for a double-quoted attribute.
pub fn escape_attr(text: &str) -> String {
    escape(text).replace('"', "&quot;")
}

/// The length of converted HTML after entity parsing, in UTF-16 units; `None` if it is invalid.
pub fn text_len(html: &str) -> Option<usize> {
    html::text_len(html).ok()
}

#[cfg(test)]
mod tests;
