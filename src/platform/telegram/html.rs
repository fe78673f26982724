//! Telegram's HTML subset, parsed the way the Bot API parses `parse_mode: HTML`: to validate a
//! message before it is sent (and in the tests' fake Bot API), and to measure its text after
//! entity parsing.

/// Why a text is not valid Telegram HTML; the Bot API answers "can't parse entities".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("can't parse entities: {reason} at byte offset {offset}")]
pub struct HtmlError {
    /// Where in the input the problem starts.
    pub offset: usize,
    /// What is wrong.
    pub reason: String,
}

/// The tags Telegram understands.
const TAGS: &[&str] = &[
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "code",
    "pre",
    "a",
    "blockquote",
    "tg-spoiler",
];

/// Parses `html` and returns its text after entity parsing, or why Telegram would refuse it.
pub fn parse(html: &str) -> Result<String, HtmlError> {
    let mut parser = Parser {
        input: html,
        pos: 0,
        text: String::with_capacity(html.len()),
        open: Vec::new(),
    };
    parser.run()?;
    Ok(parser.text)
}

/// The length of `html`'s text after entity parsing, in UTF-16 code units (Telegram's unit).
pub fn text_len(html: &str) -> Result<usize, HtmlError> {
    parse(html).map(|text| text.encode_utf16().count())
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
    text: String,
    open: Vec<&'static str>,
}

impl Parser<'_> {
    fn fail<T>(&self, offset: usize, reason: impl Into<String>) -> Result<T, HtmlError> {
        Err(HtmlError {
            offset,
            reason: reason.into(),
        })
    }

    fn run(&mut self) -> Result<(), HtmlError> {
        while let Some(c) = self.input[self.pos..].chars().next() {
            match c {
                '<' => self.tag()?,
                '&' => {
                    let decoded = self.entity()?;
                    self.text.push(decoded);
                }
                '>' => return self.fail(self.pos, "unexpected '>'; write &gt;"),
                c => {
                    self.text.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
        match self.open.last() {
            Some(tag) => self.fail(self.input.len(), format!("unclosed tag <{tag}>")),
            None => Ok(()),
        }
    }

    /// Decodes the entity at `pos` (`&lt;`, `&#123;`, ...) and moves past it.
    fn entity(&mut self) -> Result<char, HtmlError> {
        let start = self.pos;
        let rest = &self.input[start + 1..];
        let Some(end) = rest.find(';').filter(|&end| end <= 10) else {
            return self.fail(start, "unescaped '&'; write &amp;");
        };
        let name = &rest[..end];
        let decoded = match name {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            _ => numeric_entity(name),
        };
        match decoded {
            Some(c) => {
                self.pos = start + end + 2;
                Ok(c)
            }
            None => self.fail(start, format!("unsupported entity &{name};")),
        }
    }

    fn tag(&mut self) -> Result<(), HtmlError> {
        let start = self.pos;
        let Some(len) = self.input[start..].find('>') else {
            return self.fail(start, "unclosed start tag");
        };
        let inner = &self.input[start + 1..start + len];
        self.pos = start + len + 1;
        match inner.strip_prefix('/') {
            Some(name) => self.close(start, name.trim()),
            None => self.open_tag(start, inner),
        }
    }

    fn close(&mut self, start: usize, name: &str) -> Result<(), HtmlError> {
        match self.open.last() {
            Some(top) if top.eq_ignore_ascii_case(name) => {
                self.open.pop();
                Ok(())
            }
            Some(top) => self.fail(start, format!("</{name}> closes <{top}>")),
            None => self.fail(start, format!("</{name}> closes nothing")),
        }
    }

    fn open_tag(&mut self, start: usize, inner: &str) -> Result<(), HtmlError> {
        let (name, attrs) = match inner.find(|c: char| c.is_ascii_whitespace()) {
            Some(split) => (&inner[..split], &inner[split..]),
            None => (inner, ""),
        };
        let lower = name.to_ascii_lowercase();
        let Some(&tag) = TAGS.iter().find(|t| **t == lower) else {
            return self.fail(start, format!("unsupported start tag \"{name}\""));
        };
        let attrs = parse_attrs(attrs).map_err(|reason| HtmlError {
            offset: start,
            reason,
        })?;
        self.check_attrs(start, tag, &attrs)?;
        self.check_nesting(start, tag)?;
        self.open.push(tag);
        Ok(())
    }

    fn check_attrs(
        &self,
        start: usize,
        tag: &str,
        attrs: &[(String, String)],
    ) -> Result<(), HtmlError> {
        for (name, value) in attrs {
            let allowed = matches!(
                (tag, name.as_str()),
                ("a", "href") | ("code", "class") | ("blockquote", "expandable")
            );
            if !allowed {
                return self.fail(start, format!("attribute {name} is not allowed on <{tag}>"));
            }
            if tag == "a" && value.trim().is_empty() {
                return self.fail(start, "empty href");
            }
        }
        if tag == "a" && !attrs.iter().any(|(name, _)| name == "href") {
            return self.fail(start, "<a> without href");
        }
        Ok(())
    }

    fn check_nesting(&self, start: usize, tag: &str) -> Result<(), HtmlError> {
        let top = self.open.last().copied();
        if tag == "code" && top == Some("pre") {
            return Ok(());
        }
        if self.open.iter().any(|t| *t == "code" || *t == "pre") {
            return self.fail(start, "entities can't be nested inside pre or code");
        }
        let inside = |name: &str| self.open.contains(&name);
        if tag == "blockquote" && inside("blockquote") {
            return self.fail(start, "blockquotes can't be nested");
        }
        if tag == "a" && inside("a") {
            return self.fail(start, "links can't be nested");
        }
        Ok(())
    }
}

fn numeric_entity(name: &str) -> Option<char> {
    let digits = name.strip_prefix('#')?;
    let code = match digits.strip_prefix(['x', 'X']) {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => digits.parse().ok()?,
    };
    char::from_u32(code)
}

/// Parses `name="value"` pairs; values are entity-decoded.
fn parse_attrs(mut rest: &str) -> Result<Vec<(String, String)>, String> {
    let mut attrs = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(attrs);
        }
        let name_end = rest
            .find(|c: char| c == '=' || c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        let Some(after_eq) = rest.strip_prefix('=') else {
            attrs.push((name, String::new()));
            continue;
        };
        let (value, after) = attr_value(after_eq.trim_start())?;
        let decoded = parse(&value).map_err(|e| format!("bad attribute value: {}", e.reason))?;
        attrs.push((name, decoded));
        rest = after;
    }
}

fn attr_value(rest: &str) -> Result<(String, &str), String> {
    let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        let end = rest
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        return Ok((rest[..end].to_string(), &rest[end..]));
    };
    let body = &rest[1..];
    match body.find(quote) {
        Some(end) => Ok((body[..end].to_string(), &body[end + 1..])),
        None => Err("unclosed attribute value".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_and_entities_parse_to_their_text() {
        assert_eq!(
            parse("a &lt;b&gt; &amp; &quot;c&quot; &#65;&#x42;").unwrap(),
            "a <b> & \"c\" AB"
        );
    }

    #[test]
    fn supported_tags_nest_and_vanish_from_the_text() {
        let html = "<b>bold <i>it</i></b> <a href=\"https://x.y/?a=1&amp;b=2\">link</a> \
                    <pre><code class=\"language-rust\">fn</code></pre><blockquote>q</blockquote>";
        assert_eq!(parse(html).unwrap(), "bold it link fnq");
    }

    #[test]
    fn broken_markup_is_refused() {
        for bad in [
            "<b>open",
            "<b><i>x</b></i>",
            "a < b",
            "a & b",
            "x > y",
            "<div>x</div>",
            "<code><b>x</b></code>",
            "<blockquote><blockquote>x</blockquote></blockquote>",
            "<a>no href</a>",
            "<b class=\"x\">y</b>",
            "&nbsp;",
            "</b>",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn length_counts_utf16_units_of_the_parsed_text() {
        assert_eq!(text_len("<b>😀</b>&amp;").unwrap(), 3);
    }
}
