//! Rules for free text from outside (titles, descriptions): what may be stored and shown to
//! other people. Control characters (a NUL cuts a string short in C, a BEL rings a terminal,
//! an escape sequence repaints it) and the Unicode characters that reorder text on screen
//! (a right-to-left override makes `gpj.exe` read as `exe.jpg`) are refused, as is text an
//! HTML page would read as a tag (`<script>`, `</b>`, `<!--`): Bazaar stores plain text, and
//! whoever shows it should never have to guess which of it is markup.

/// Where a piece of text goes, which decides whether it may span lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// One line: no control character at all (a title).
    One,
    /// Several lines: newline, carriage return and tab are allowed (a description).
    Many,
}

/// The Unicode characters that change the direction text is shown in: the marks (LRM, RLM,
/// ALM), the embeddings and overrides (LRE, RLE, PDF, LRO, RLO) and the isolates (LRI, RLI,
/// FSI, PDI).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Checks `text`; the error says what is wrong in words (the caller names the field).
pub fn check(text: &str, lines: Lines) -> Result<(), String> {
    for (i, c) in text.char_indices() {
        let allowed_control = lines == Lines::Many && matches!(c, '\n' | '\r' | '\t');
        if c.is_control() && !allowed_control {
            return Err(format!(
                "control character U+{:04X} at byte {i} is not allowed{}",
                c as u32,
                if lines == Lines::Many {
                    " (newline and tab are)"
                } else {
                    ""
                }
            ));
        }
        if is_bidi_control(c) {
            return Err(format!(
                "the direction control U+{:04X} at byte {i} is not allowed",
                c as u32
            ));
        }
        if c == '<'
            && text[i + 1..]
                .chars()
                .next()
                .is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!' | '?'))
        {
            return Err(format!(
                "markup is not allowed (a tag starts at byte {i}); write plain text"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_in_any_script_passes() {
        for t in [
            "Red lamp",
            "Lampe rouge – 40 W",
            "赤いランプ",
            "مصباح أحمر",
            "a < b, c > d",
            "5<6",
        ] {
            assert_eq!(check(t, Lines::One), Ok(()), "{t}");
        }
        assert_eq!(
            check("Line one\nline two\r\n\tindented", Lines::Many),
            Ok(())
        );
    }

    #[test]
    fn control_characters_direction_overrides_and_tags_are_refused() {
        for t in ["a\0b", "bell\u{7}", "esc\u{1b}[2J", "del\u{7f}", "c1\u{85}"] {
            assert!(check(t, Lines::Many).is_err(), "{t:?}");
        }
        assert!(check("two\nlines", Lines::One).is_err());
        assert!(check("tab\there", Lines::One).is_err());
        for t in ["gpj\u{202E}exe.jpg", "\u{2066}x\u{2069}", "mark\u{200F}"] {
            assert!(check(t, Lines::Many).is_err(), "{t:?}");
        }
        for t in [
            "<script>alert(1)</script>",
            "bold</b>",
            "<!-- x -->",
            "<?php",
            "<img src=x>",
        ] {
            assert!(check(t, Lines::Many).is_err(), "{t:?}");
        }
    }
}
