//! Tests of the splitter: boundary preferences, fences, and properties over arbitrary text.

use proptest::prelude::*;

use super::*;

fn texts(pieces: &[Piece]) -> Vec<&str> {
    pieces.iter().map(|p| p.text.as_str()).collect()
}

#[test]
fn text_that_fits_is_one_piece() {
    let pieces = split("hello there", 20, LengthUnit::Chars);
    assert_eq!(texts(&pieces), ["hello there"]);
}

#[test]
fn empty_text_gives_no_pieces() {
    assert!(split("", 20, LengthUnit::Chars).is_empty());
}

#[test]
fn paragraph_break_is_preferred_over_a_later_line_break() {
    let text = "first paragraph.\n\nsecond one\nthird line goes on and on";
    let pieces = split(text, 36, LengthUnit::Chars);
    assert_eq!(pieces[0].text, "first paragraph.\n\n");
}

#[test]
fn an_early_paragraph_break_loses_to_a_late_line_break() {
    let text = "a\n\nbbbbbbbbbbbbbbbbbbbbbbbbb\ncccccccccccccccccccccccccccc";
    let pieces = split(text, 36, LengthUnit::Chars);
    assert_eq!(pieces[0].text, "a\n\nbbbbbbbbbbbbbbbbbbbbbbbbb\n");
}

#[test]
fn sentence_end_is_preferred_over_a_later_space() {
    let text = "One two three four. Five six seven eight nine ten eleven";
    let pieces = split(text, 30, LengthUnit::Chars);
    assert_eq!(pieces[0].text, "One two three four. ");
}

#[test]
fn words_are_not_cut_when_a_space_is_near_the_limit() {
    let text = "alpha beta gamma delta epsilon zeta eta theta";
    let pieces = split(text, 20, LengthUnit::Chars);
    assert!(
        pieces
            .iter()
            .all(|p| p.text.ends_with(' ') || text.ends_with(&p.text))
    );
    assert_eq!(join(&pieces), text);
}

#[test]
fn a_long_word_is_cut_without_splitting_a_combining_mark() {
    // 16 leaves 12 characters once room for a closing fence is reserved.
    let text = format!("{}e\u{301}{}", "x".repeat(11), "y".repeat(20));
    let pieces = split(&text, 16, LengthUnit::Chars);
    assert_eq!(pieces[0].text, "x".repeat(11));
    assert!(pieces[1].text.starts_with("e\u{301}"));
}

#[test]
fn surrogate_pairs_are_never_cut_in_utf16() {
    let text = "😀".repeat(30);
    for piece in split(&text, 21, LengthUnit::Utf16) {
        assert!(piece.text.encode_utf16().count() <= 21);
        assert!(piece.text.chars().all(|c| c == '😀'));
    }
}

#[test]
fn a_cut_inside_a_code_block_closes_and_reopens_the_fence() {
    let code: String = (0..20).map(|i| format!("let x{i} = {i};\n")).collect();
    let text = format!("Here:\n```rust\n{code}```\nDone.");
    let pieces = split(&text, 120, LengthUnit::Chars);
    assert!(pieces.len() >= 3);
    assert!(pieces[0].text.ends_with("\n```") && pieces[0].closed);
    assert!(pieces[1].text.starts_with("```rust\n"));
    assert_eq!(pieces[1].reopened.as_deref(), Some("```rust\n"));
    assert!(pieces.iter().all(|p| p.text.chars().count() <= 120));
    assert_eq!(join(&pieces), text);
}

#[test]
fn a_cut_after_the_fence_closes_adds_no_markup() {
    let text = format!("```\ncode\n```\n{}", "word ".repeat(10));
    let pieces = split(&text, 30, LengthUnit::Chars);
    assert!(pieces.iter().all(|p| !p.closed && p.reopened.is_none()));
}

#[test]
fn incremental_cuts_match_the_whole_split() {
    let text = "Some words. ".repeat(40) + "```py\n" + &"print(1)\n".repeat(30) + "```\nend";
    let whole = split(&text, 100, LengthUnit::Utf16);
    let mut at = Position::default();
    let mut pieces = Vec::new();
    for end in 1..=text.len() {
        if !text.is_char_boundary(end) {
            continue;
        }
        while let Some((piece, next)) = cut(&text[..end], &at, 100, LengthUnit::Utf16) {
            pieces.push(piece);
            at = next;
        }
    }
    pieces.push(tail(&text, &at));
    assert_eq!(pieces, whole);
}

// How fast this goes is measured by the `split_4k` group of benches/micro.rs, not here.
#[test]
fn four_kilobytes_of_sentences_split_into_the_fewest_pieces_at_sentence_ends() {
    let sentence = "A sentence of several words. ";
    let text = sentence.repeat(150);
    let pieces = split(&text, 2000, LengthUnit::Chars);
    // 1,996 characters are left once room for a closing fence is kept: 68 whole sentences.
    let (full, rest) = (sentence.repeat(68), sentence.repeat(14));
    assert_eq!(texts(&pieces), [&full, &full, &rest]);
    assert_eq!(join(&pieces), text);
}

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("😀".to_string()),
        Just("👨\u{200D}👩\u{200D}👧".to_string()),
        Just("❤\u{FE0F}".to_string()),
        Just("🇫🇷".to_string()),
        Just("漢字かな。".to_string()),
        Just("e\u{301}".to_string()),
        Just(" ".to_string()),
        Just("\n".to_string()),
        Just("\n\n".to_string()),
        Just(". ".to_string()),
        Just("\n```rust\n".to_string()),
        Just("\n```\n".to_string()),
        Just("\n```a-very-long-language-name-here\n".to_string()),
        "[a-z]{1,8}",
        "[a-zA-Z]{30,90}",
    ]
}

fn arbitrary_text() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..120).prop_map(|parts| parts.concat())
}

fn unit() -> impl Strategy<Value = LengthUnit> {
    prop_oneof![Just(LengthUnit::Chars), Just(LengthUnit::Utf16)]
}

proptest! {
    #[test]
    fn pieces_fit_and_reassemble_the_input(text in arbitrary_text(), max_len in 20usize..300, unit in unit()) {
        let pieces = split(&text, max_len, unit);
        for piece in &pieces {
            prop_assert!(!piece.source().is_empty());
            prop_assert!(unit.len(&piece.text) <= max_len, "{} > {max_len}", unit.len(&piece.text));
        }
        prop_assert_eq!(join(&pieces), text);
    }
}

#[test]
fn a_text_of_exactly_the_limit_fits_in_either_unit() {
    for unit in [LengthUnit::Chars, LengthUnit::Utf16] {
        let ascii = "a".repeat(20);
        assert!(cut(&ascii, &Position::default(), 20, unit).is_none());
        let wide = "é".repeat(20);
        assert!(cut(&wide, &Position::default(), 20, unit).is_none());
        assert!(cut(&"é".repeat(21), &Position::default(), 20, unit).is_some());
    }
}

#[test]
fn truncate_keeps_a_text_that_fits_and_cuts_one_that_does_not_with_an_ellipsis() {
    assert_eq!(truncate("short", 5, LengthUnit::Chars), "short");
    assert_eq!(truncate("abcdef", 5, LengthUnit::Chars), "abcd…");
    // 😀 is two UTF-16 units: it does not fit in the one unit left before the ellipsis.
    let cut = truncate("ab😀cd", 4, LengthUnit::Utf16);
    assert_eq!(cut, "ab…");
    assert!(LengthUnit::Utf16.len(&cut) <= 4);
}
