//! Percent-escaping of a filter expression or an object name into one path component.
//!
//! A path component cannot hold `/`, yet image names and filter values do; so `/` is
//! written `%2F` and `%` itself `%25`. Nothing else is escaped, which keeps typed
//! expressions readable; any other `%` is refused rather than passed through, so that a
//! later extension of the escapes cannot change what an existing path means.

use super::FilterError;

/// The name of a directory entry standing for `name` (a symlink in a view): `/` becomes
/// `%2F` and `%` becomes `%25`. `unescape_component` gives `name` back.
pub fn escape_component(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '/' => out.push_str("%2F"),
            '%' => out.push_str("%25"),
            _ => out.push(c),
        }
    }
    out
}

/// The text a path component stands for: `%2F` (or `%2f`) is `/`, `%25` is `%`; any
/// other `%` is an error at its offset.
pub fn unescape_component(component: &str) -> Result<String, FilterError> {
    Decoded::new(component).map(|d| d.text)
}

/// A decoded component that remembers where each of its bytes was typed.
#[derive(Debug)]
pub(super) struct Decoded {
    /// The decoded text.
    pub text: String,
    /// `typed[i]` is the offset in the component of decoded byte `i`, and
    /// `typed[text.len()]` the component's length: an error position maps in O(1).
    typed: Vec<usize>,
}

impl Decoded {
    pub fn new(component: &str) -> Result<Self, FilterError> {
        let bytes = component.as_bytes();
        let mut text = Vec::with_capacity(bytes.len());
        let mut typed = Vec::with_capacity(bytes.len() + 1);
        let mut at = 0;
        while at < bytes.len() {
            let (byte, width) = match bytes[at] {
                b'%' => (escape_at(&bytes[at..]).ok_or_else(|| refusal(component, at))?, 3),
                other => (other, 1),
            };
            text.push(byte);
            typed.push(at);
            at += width;
        }
        typed.push(component.len());
        // Only ASCII bytes replaced ASCII sequences, so the text is still UTF-8.
        let text = String::from_utf8(text).expect("decoding keeps UTF-8 intact");
        Ok(Self { text, typed })
    }

    /// The offset in the typed component of the decoded byte offset `position`.
    pub fn typed_offset(&self, position: usize) -> usize {
        self.typed[position.min(self.text.len())]
    }
}

fn escape_at(sequence: &[u8]) -> Option<u8> {
    match sequence.get(1..3)? {
        [b'2', b'F' | b'f'] => Some(b'/'),
        [b'2', b'5'] => Some(b'%'),
        _ => None,
    }
}

fn refusal(component: &str, at: usize) -> FilterError {
    FilterError {
        input: component.to_owned(),
        decoded: component.to_owned(),
        position: at,
        message: "write % as %25 (only %2F and %25 are escapes)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_and_touches_only_slash_and_percent() {
        for name in ["docker.io/library/busybox:latest", "100%/x", "plain", "", "%2F", "é/ü"] {
            let escaped = escape_component(name);
            assert!(!escaped.contains('/'), "{escaped}");
            assert_eq!(unescape_component(&escaped).unwrap(), name);
        }
        assert_eq!(escape_component("a/b%c"), "a%2Fb%25c");
    }

    #[test]
    fn lowercase_hex_is_accepted_and_other_percents_are_refused_where_typed() {
        assert_eq!(unescape_component("a%2fb").unwrap(), "a/b");
        assert_eq!(unescape_component("a%252").unwrap(), "a%2", "a decoded % starts nothing");
        for (component, at) in [("ab%", 2), ("%2", 0), ("x%2Fy%41", 5), ("%%25", 0), ("%2G", 0)] {
            let error = unescape_component(component).unwrap_err();
            assert_eq!(error.position, at, "{component}");
            assert_eq!(error.input, component);
        }
    }

    #[test]
    fn decoded_offsets_point_into_the_typed_component() {
        let d = Decoded::new("a%2Fb%25c").unwrap();
        assert_eq!(d.text, "a/b%c");
        let offsets: Vec<usize> = (0..=d.text.len()).map(|i| d.typed_offset(i)).collect();
        assert_eq!(offsets, [0, 1, 4, 5, 8, 9]);
    }
}
