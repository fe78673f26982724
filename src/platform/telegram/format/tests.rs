//! Unit tests of the Markdown to Telegram HTML conversion.

use proptest::prelude::*;

use super::{escape, preview, text_len, to_html};
use crate::platform::telegram::html;

#[test]
fn inline_styles_become_tags() {
    assert_eq!(
        to_html("**bold** *it* ~~gone~~ `a<b>` [site](https://e.x/?a=1&b=\"2\")"),
        "<b>bold</b> <i>it</i> <s>gone</s> <code>a&lt;b&gt;</code> \
         <a href=\"https://e.x/?a=1&amp;b=&quot;2&quot;\">site</a>"
    );
}

#[test]
fn fenced_code_keeps_its_language_and_escapes_the_code() {
    assert_eq!(
        to_html("see:\n\n```rust\nif a < b && c {}\n```\n"),
        "see:\n\n<pre><code class=\"language-rust\">if a &lt; b &amp;&amp; c {}</code></pre>"
    );
    assert_eq!(to_html("```\nplain\n```"), "<pre>plain</pre>");
}

#[test]
fn headings_lists_and_quotes_become_text_structure() {
    let markdown =
        "# Title\n\nIntro\n\n- one\n- two\n  1. first\n  2. second\n\n> quoted\n> > inner";
    assert_eq!(
        to_html(markdown),
        "<b>Title</b>\n\nIntro\n\n• one\n• two\n  1. first\n  2. second\n\n\
         <blockquote>quoted\n\ninner</blockquote>"
    );
}

#[test]
fn a_style_already_open_is_not_nested_again() {
    assert_eq!(to_html("# A **big** title"), "<b>A big title</b>");
    assert_eq!(to_html("*a *b* c*"), "<i>a b c</i>");
}

#[test]
fn tables_become_preformatted_text() {
    let markdown = "| a | bb |\n|---|---|\n| **1** | 2 |";
    assert_eq!(to_html(markdown), "<pre>a | bb\n--+---\n1 | 2</pre>");
}

#[test]
fn raw_html_and_odd_links_are_shown_as_text() {
    assert_eq!(
        to_html("<b>hi</b> & [x](javascript:alert(1))"),
        "&lt;b&gt;hi&lt;/b&gt; &amp; x"
    );
}

#[test]
fn preview_of_an_unfinished_code_block_is_closed() {
    let html = preview("Here:\n```python\nprint(1)\nfor x in");
    assert_eq!(
        html,
        "Here:\n\n<pre><code class=\"language-python\">print(1)\nfor x in</code></pre>"
    );
    assert!(html::parse(&html).is_ok());
}

#[test]
fn preview_of_unbalanced_emphasis_is_valid() {
    for prefix in [
        "**bold",
        "*it **b",
        "[link](https://x",
        "> quote\n> **x",
        "| a |\n|--",
    ] {
        assert!(html::parse(&preview(prefix)).is_ok(), "{prefix}");
    }
}

#[test]
fn text_length_is_measured_after_entity_parsing() {
    assert_eq!(text_len(&to_html("**a&b** 😀")), Some(6));
    assert_eq!(escape("<&>"), "&lt;&amp;&gt;");
}

/// Markdown-ish text: the characters that make structure, words, emoji and newlines.
fn markdownish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("**"),
        Just("*"),
        Just("_"),
        Just("~~"),
        Just("`"),
        Just("```"),
        Just("```rust\n"),
        Just("\n"),
        Just("\n\n"),
        Just("# "),
        Just("> "),
        Just("- "),
        Just("1. "),
        Just("| a | b |\n|---|---|\n"),
        Just("["),
        Just("]"),
        Just("("),
        Just(")"),
        Just("https://x.y/?q=1&r=2"),
        Just("<b>"),
        Just("</i>"),
        Just("&amp;"),
        Just("&"),
        Just("<"),
        Just(">"),
        Just("\""),
        Just("word "),
        Just("😀"),
        Just("    "),
        Just("\\"),
        Just("---\n"),
        Just("<!--"),
        Just("![i](https://p/q.png)"),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #[test]
    fn any_markdown_converts_to_valid_telegram_html(markdown in markdownish()) {
        let converted = to_html(&markdown);
        prop_assert!(html::parse(&converted).is_ok(), "{markdown:?} -> {converted:?}");
    }

    #[test]
    fn every_prefix_converts_without_needing_the_fallback(markdown in markdownish()) {
        for (index, _) in markdown.char_indices() {
            let prefix = &markdown[..index];
            let converted = to_html(prefix);
            prop_assert!(html::parse(&converted).is_ok(), "{prefix:?} -> {converted:?}");
            prop_assert_eq!(preview(prefix), converted);
        }
    }
}
