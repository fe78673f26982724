//! Splitting a reply into messages that fit a platform's length limit, at natural boundaries,
//! code-fence aware.
//!
//! A split is greedy from the start and each cut depends only on the text before it (plus one
//! character), so the reply engine can cut incrementally with [`cut`] while tokens stream in and
//! get the same pieces [`split`] gives for the whole text.
//!
//! Reassembly: every [`Piece`] records the markup it added (a reopened fence in front, a closing
//! fence at the end); [`join`] removes exactly that, so `join(&split(t, n, u)) == t`.

use super::ports::LengthUnit;

/// The markup appended when a cut falls inside a code block.
pub const FENCE_CLOSE: &str = "\n```";

/// Below this limit no fence markup is added (it would not leave room for text).
const MIN_FENCED_LEN: usize = 16;

/// One message's worth of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The text to show: `reopened`, then a slice of the source, then [`FENCE_CLOSE`] if `closed`.
    pub text: String,
    /// The fence opening added in front (```` ```lang\n ````) when the piece continues a code block.
    pub reopened: Option<String>,
    /// True when [`FENCE_CLOSE`] was appended because the cut fell inside a code block.
    pub closed: bool,
}

impl Piece {
    /// The slice of the source text this piece carries, without the added markup.
    pub fn source(&self) -> &str {
        let start = self.reopened.as_ref().map_or(0, String::len);
        let end = self.text.len() - if self.closed { FENCE_CLOSE.len() } else { 0 };
        &self.text[start..end]
    }
}

/// Where a message starts in the source text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// Byte offset into the source text.
    pub offset: usize,
    /// The fence opening the message starts with, when it continues a code block.
    pub reopen: Option<String>,
}

/// Splits `text` into pieces that each fit `max_len` (in `unit`); `max_len` must be at least 2.
pub fn split(text: &str, max_len: usize, unit: LengthUnit) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut at = Position::default();
    while let Some((piece, next)) = cut(text, &at, max_len, unit) {
        pieces.push(piece);
        at = next;
    }
    if at.offset < text.len() {
        pieces.push(tail(text, &at));
    }
    pieces
}

/// `text` cut to fit `max_len` units (at a character boundary), ending in an ellipsis when
/// something was cut; unchanged when it fits.
pub fn truncate(text: &str, max_len: usize, unit: LengthUnit) -> String {
    if unit.len(text) <= max_len {
        return text.to_string();
    }
    let mut used = unit.char_len('…');
    let mut out: String = text
        .chars()
        .take_while(|&c| {
            used += unit.char_len(c);
            used <= max_len
        })
        .collect();
    out.push('…');
    out
}

/// Puts pieces back together, removing exactly the markup [`split`] added.
pub fn join(pieces: &[Piece]) -> String {
    pieces.iter().map(Piece::source).collect()
}

/// The last (still open) piece: everything from `at` on, with its reopened fence.
pub fn tail(text: &str, at: &Position) -> Piece {
    let prefix = at.reopen.as_deref().unwrap_or("");
    Piece {
        text: format!("{prefix}{}", &text[at.offset..]),
        reopened: at.reopen.clone(),
        closed: false,
    }
}

/// When the text from `at` does not fit one message: that message's final piece and where the
/// next one starts. `None` while it still fits.
pub fn cut(
    text: &str,
    at: &Position,
    max_len: usize,
    unit: LengthUnit,
) -> Option<(Piece, Position)> {
    let prefix = at.reopen.as_deref().unwrap_or("");
    let rest = &text[at.offset..];
    if fits(prefix, rest, max_len, unit) {
        return None;
    }
    let reserve = if max_len >= MIN_FENCED_LEN {
        unit.len(FENCE_CLOSE)
    } else {
        0
    };
    let budget = max_len.saturating_sub(unit.len(prefix) + reserve);
    let end = at.offset + boundary(rest, budget, unit);
    let fence = if reserve > 0 {
        fence_at(text, end)
    } else {
        None
    };
    let mut shown = format!("{prefix}{}", &text[at.offset..end]);
    if fence.is_some() {
        shown.push_str(FENCE_CLOSE);
    }
    let piece = Piece {
        text: shown,
        reopened: at.reopen.clone(),
        closed: fence.is_some(),
    };
    let reopen = fence.and_then(|info| reopening(info, max_len, unit));
    Some((
        piece,
        Position {
            offset: end,
            reopen,
        },
    ))
}

/// True when `prefix` + `rest` fit `max_len`; stops counting once it does not.
fn fits(prefix: &str, rest: &str, max_len: usize, unit: LengthUnit) -> bool {
    // No character takes fewer UTF-8 bytes than it counts in either unit: a text with no more
    // bytes than the limit fits without counting (the reply engine asks at every token).
    if prefix.len() + rest.len() <= max_len {
        return true;
    }
    let mut used = unit.len(prefix);
    for c in rest.chars() {
        used += unit.char_len(c);
        if used > max_len {
            return false;
        }
    }
    used <= max_len
}

/// The fence opening for a piece that continues a code block, if it leaves room for text.
fn reopening(info: &str, max_len: usize, unit: LengthUnit) -> Option<String> {
    [format!("```{info}\n"), "```\n".to_string()]
        .into_iter()
        .find(|open| unit.len(open) <= max_len / 4)
}

/// The byte length of the next piece of `rest`, which holds more than `budget` units.
fn boundary(rest: &str, budget: usize, unit: LengthUnit) -> usize {
    let window_end = window(rest, budget, unit);
    let window = &rest[..window_end];
    let floor = window_end / 2;
    let levels: [fn(&str) -> Option<usize>; 4] = [paragraph_end, line_end, sentence_end, word_end];
    levels
        .iter()
        .filter_map(|level| level(window))
        .find(|&p| p > 0 && p >= floor)
        .unwrap_or_else(|| hard_cut(rest, window_end))
}

/// The largest byte offset whose prefix fits `budget` units (at least one character).
fn window(rest: &str, budget: usize, unit: LengthUnit) -> usize {
    let mut used = 0;
    let mut end = 0;
    for (i, c) in rest.char_indices() {
        used += unit.char_len(c);
        if used > budget {
            break;
        }
        end = i + c.len_utf8();
    }
    if end == 0 {
        end = rest.chars().next().map_or(0, char::len_utf8);
    }
    end
}

/// After the last blank line.
fn paragraph_end(window: &str) -> Option<usize> {
    window.rfind("\n\n").map(|i| i + 2)
}

/// After the last line break.
fn line_end(window: &str) -> Option<usize> {
    window.rfind('\n').map(|i| i + 1)
}

/// After the last sentence end: `.`, `!` or `?` followed by whitespace, or a CJK full stop.
fn sentence_end(window: &str) -> Option<usize> {
    let mut after: Option<char> = None;
    for (i, c) in window.char_indices().rev() {
        if matches!(c, '。' | '！' | '？') {
            return Some(i + c.len_utf8());
        }
        if let Some(space) = after.filter(|a| a.is_whitespace())
            && matches!(c, '.' | '!' | '?')
        {
            return Some(i + c.len_utf8() + space.len_utf8());
        }
        after = Some(c);
    }
    None
}

/// After the last whitespace character.
fn word_end(window: &str) -> Option<usize> {
    window
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map(|(i, c)| i + c.len_utf8())
}

/// A cut inside a word at `end`, moved back so it does not separate a combining mark, a
/// variation selector or a zero-width joiner from its neighbours, when that is possible.
fn hard_cut(rest: &str, end: usize) -> usize {
    let mut at = end;
    while at > 0 && splits_cluster(rest, at) {
        at = rest[..at].char_indices().next_back().map_or(0, |(i, _)| i);
    }
    if at == 0 { end } else { at }
}

/// True when cutting `text` at byte `at` would split a grapheme cluster we can recognise.
fn splits_cluster(text: &str, at: usize) -> bool {
    let next = text[at..].chars().next();
    let prev = text[..at].chars().next_back();
    next.is_some_and(is_joining) || prev == Some('\u{200D}')
}

/// Combining marks, the zero-width joiner and the emoji variation selector.
fn is_joining(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{200D}' | '\u{FE0F}')
}

/// True when a code block is still open at the end of `text` (a marker appended to it would
/// render as code).
pub fn ends_in_code_block(text: &str) -> bool {
    let closed_line = format!("{text}\n");
    fence_at(&closed_line, closed_line.len()).is_some()
}

/// The info string of the code block open at byte `end`, counting complete lines only.
fn fence_at(text: &str, end: usize) -> Option<&str> {
    let mut open: Option<&str> = None;
    for line in text[..end].split_inclusive('\n') {
        let Some(line) = line.strip_suffix('\n') else {
            break;
        };
        let Some(info) = line.trim_start_matches(' ').strip_prefix("```") else {
            continue;
        };
        let info = info.trim();
        open = match open {
            Some(_) if info.is_empty() => None,
            Some(current) => Some(current),
            None => Some(info),
        };
    }
    open
}

#[cfg(test)]
mod tests;
