//! Bounded text: every user value that crosses a boundary (gRPC status messages and metadata,
//! HTTP error bodies, log fields) is cut to a few hundred bytes, saying how long it was.

/// Most bytes of a user value shown in an error message or a log field.
pub const MAX_SHOWN: usize = 200;
/// Most bytes of a whole error message that crosses a service boundary.
pub const MAX_MESSAGE: usize = 1024;

/// `text` cut to at most `max` bytes (on a character boundary) followed by
/// `… (N bytes)` when it was longer; `text` itself otherwise.
pub fn bounded(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len()).into()
}

/// A user value as shown in messages: [`bounded`] to [`MAX_SHOWN`].
pub fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    bounded(text, MAX_SHOWN)
}

/// A whole error message as sent to another service: [`bounded`] to [`MAX_MESSAGE`], on one
/// line (control characters become spaces).
pub fn one_line(message: &str) -> String {
    bounded(message, MAX_MESSAGE)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_saying_their_length() {
        assert_eq!(bounded("short", 10), "short");
        let long = "x".repeat(2_000_000);
        let cut = shown(&long);
        assert!(cut.len() < MAX_SHOWN + 32, "{}", cut.len());
        assert!(cut.ends_with("… (2000000 bytes)"), "{cut}");
        // Never inside a character.
        assert_eq!(bounded("ééé", 3), "é… (6 bytes)");
        assert_eq!(one_line("a\nb\tc"), "a b c");
        assert!(one_line(&long).len() < MAX_MESSAGE + 32);
    }
}
