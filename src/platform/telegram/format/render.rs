//! The event walker behind [`super::to_html`]: writes Telegram HTML for pulldown-cmark events.

use pulldown_cmark::{CodeBlockKind, CowStr, Event, Tag, TagEnd};

use super::table::Table;
use super::{escape, escape_attr};

/// Link schemes Telegram turns into clickable links; others are shown as text.
const LINK_SCHEMES: &[&str] = &["http://", "https://", "tg://"];

/// Writes HTML for a stream of events. pulldown-cmark pairs every `Start` with an `End`, so each
/// `Start` pushes the closing tag it needs and its `End` pops it.
#[derive(Default)]
pub(super) struct Renderer {
    out: String,
    /// Closing markup for each open `Start`, innermost last.
    closers: Vec<&'static str>,
    /// Newlines owed before the next visible output (block separation).
    pending: usize,
    /// Open lists: the next number of ordered ones.
    lists: Vec<Option<u64>>,
    quote_depth: usize,
    link_depth: usize,
    /// The text of the code block being read.
    code: Option<String>,
    table: Option<Table>,
}

impl Renderer {
    pub(super) fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) | Event::Html(text) | Event::InlineHtml(text) => self.text(&text),
            Event::Code(code) => self.inline_code(&code),
            Event::SoftBreak | Event::HardBreak => self.text("\n"),
            Event::Rule => {
                self.block_start();
                self.out.push_str("———");
                self.pending = 2;
            }
            Event::TaskListMarker(done) => self.text(if done { "[x] " } else { "[ ] " }),
            Event::FootnoteReference(label) => self.text(&format!("[^{label}]")),
            Event::InlineMath(math) | Event::DisplayMath(math) => self.text(&math),
        }
    }

    pub(super) fn finish(self) -> String {
        self.out
    }

    /// Writes the newlines owed before visible output.
    fn flush(&mut self) {
        if !self.out.is_empty() {
            for _ in 0..self.pending {
                self.out.push('\n');
            }
        }
        self.pending = 0;
    }

    fn block_start(&mut self) {
        self.flush();
    }

    fn text(&mut self, text: &str) {
        if let Some(code) = &mut self.code {
            code.push_str(text);
        } else if let Some(table) = &mut self.table {
            table.push_text(text);
        } else {
            self.flush();
            self.out.push_str(&escape(text));
        }
    }

    fn inline_code(&mut self, code: &str) {
        if let Some(table) = &mut self.table {
            return table.push_text(code);
        }
        self.flush();
        self.out.push_str("<code>");
        self.out.push_str(&escape(code));
        self.out.push_str("</code>");
    }

    fn open(&mut self, open: &str, close: &'static str) {
        // Inside a table everything is plain text; a style already open is not opened twice.
        if self.table.is_some() || self.closers.contains(&close) {
            return self.closers.push("");
        }
        self.flush();
        self.out.push_str(open);
        self.closers.push(close);
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph | Tag::HtmlBlock | Tag::MetadataBlock(_) => self.block(),
            Tag::Heading { .. } => {
                self.block_start();
                self.open("<b>", "</b>");
            }
            Tag::BlockQuote(_) => self.quote(),
            Tag::CodeBlock(kind) => self.code_block(kind),
            Tag::List(first) => {
                self.lists.push(first);
                self.closers.push("");
            }
            Tag::Item => self.item(),
            Tag::Table(_) => {
                self.block_start();
                self.table = Some(Table::default());
                self.closers.push("");
            }
            Tag::TableHead | Tag::TableRow => {
                if let Some(table) = &mut self.table {
                    table.start_row();
                }
                self.closers.push("");
            }
            Tag::TableCell => {
                if let Some(table) = &mut self.table {
                    table.start_cell();
                }
                self.closers.push("");
            }
            Tag::Emphasis => self.open("<i>", "</i>"),
            Tag::Strong => self.open("<b>", "</b>"),
            Tag::Strikethrough => self.open("<s>", "</s>"),
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => self.link(&dest_url),
            _ => self.block(),
        }
    }

    fn block(&mut self) {
        self.block_start();
        self.closers.push("");
    }

    fn quote(&mut self) {
        self.quote_depth += 1;
        self.block_start();
        if self.quote_depth == 1 {
            self.open("<blockquote>", "</blockquote>");
        } else {
            // Telegram refuses nested block quotes: inner ones are shown flat.
            self.closers.push("");
        }
    }

    fn code_block(&mut self, kind: CodeBlockKind<'_>) {
        self.block_start();
        let language = match kind {
            CodeBlockKind::Fenced(info) => language(&info),
            CodeBlockKind::Indented => String::new(),
        };
        if language.is_empty() {
            self.out.push_str("<pre>");
            self.closers.push("</pre>");
        } else {
            self.out
                .push_str(&format!("<pre><code class=\"language-{language}\">"));
            self.closers.push("</code></pre>");
        }
        self.code = Some(String::new());
    }

    fn item(&mut self) {
        self.pending = self.pending.max(1);
        self.flush();
        let depth = self.lists.len().saturating_sub(1);
        self.out.push_str(&"  ".repeat(depth));
        let bullet = match self.lists.last_mut() {
            Some(Some(number)) => {
                *number += 1;
                format!("{}. ", *number - 1)
            }
            _ => "• ".to_string(),
        };
        self.out.push_str(&bullet);
        self.closers.push("");
    }

    fn link(&mut self, url: &CowStr<'_>) {
        let linkable = LINK_SCHEMES.iter().any(|s| url.starts_with(s));
        if linkable && self.link_depth == 0 && self.table.is_none() {
            self.link_depth += 1;
            self.open(&format!("<a href=\"{}\">", escape_attr(url)), "</a>");
        } else {
            self.link_depth += 1;
            self.closers.push("");
        }
    }

    fn end(&mut self, tag: TagEnd) {
        if tag == TagEnd::CodeBlock {
            self.end_code_block();
        }
        if tag == TagEnd::Table {
            self.end_table();
        }
        let closer = self.closers.pop().unwrap_or("");
        self.out.push_str(closer);
        match tag {
            TagEnd::Link | TagEnd::Image => self.link_depth = self.link_depth.saturating_sub(1),
            TagEnd::BlockQuote(_) => self.quote_depth = self.quote_depth.saturating_sub(1),
            TagEnd::List(_) => {
                self.lists.pop();
                self.pending = if self.lists.is_empty() { 2 } else { 1 };
            }
            TagEnd::Item => self.pending = self.pending.max(1),
            TagEnd::TableCell | TagEnd::TableRow | TagEnd::TableHead => {}
            TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough => {}
            _ => self.pending = if self.lists.is_empty() { 2 } else { 1 },
        }
    }

    fn end_code_block(&mut self) {
        let mut code = self.code.take().unwrap_or_default();
        if code.ends_with('\n') {
            code.pop();
        }
        self.out.push_str(&escape(&code));
    }

    fn end_table(&mut self) {
        if let Some(table) = self.table.take() {
            self.out.push_str("<pre>");
            self.out.push_str(&escape(&table.render()));
            self.out.push_str("</pre>");
        }
    }
}

/// The language of a code fence's info string, reduced to characters safe in a class name.
fn language(info: &str) -> String {
    let word = info.split_whitespace().next().unwrap_or("");
    word.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '#' | '.'))
        .collect()
}
