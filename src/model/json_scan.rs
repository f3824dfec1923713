//! An incremental JSON syntax check. Bytes are fed as they arrive; after each feed the
//! scanner knows, in time proportional to the new bytes only, whether what came so far is
//! the start of a valid document, a complete one, or can never become valid.
//!
//! Why: a document written in many `write()`s must be refused at the write that makes it
//! invalid (`echo '{bad' > spec` must fail in the shell) and committed at the write that
//! completes it, and re-parsing the whole buffer at every write would be quadratic. The
//! full parse (serde_json) runs once, on the complete document. UTF-8 inside strings is
//! left to that parse.

/// How deep objects and arrays may nest: one less than serde_json's recursion limit
/// (128), so a document the scanner accepts is never refused by the full parse for depth.
pub const MAX_JSON_DEPTH: usize = 127;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nest {
    Object,
    Array,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Number {
    Minus,
    Zero,
    Integer,
    Point,
    Fraction,
    Exponent,
    ExponentSign,
    ExponentDigits,
}

impl Number {
    /// Whether a number may end in this state.
    fn may_end(self) -> bool {
        matches!(self, Number::Zero | Number::Integer | Number::Fraction | Number::ExponentDigits)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    Backslash,
    Hex(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the top-level value.
    Start,
    /// A value must come (after `:`, or after `,` in an array).
    Value,
    /// After `[`: a value or `]`.
    ValueOrClose,
    /// After `{`: a key or `}`.
    KeyOrClose,
    /// After `,` in an object.
    Key,
    /// After a key.
    Colon,
    /// After a value inside an object or array: `,` or the closing bracket.
    AfterValue,
    String { key: bool, escape: Escape },
    Number(Number),
    Literal { word: &'static [u8], at: usize },
    /// The top-level value is complete; only whitespace may follow.
    Done,
}

/// Where and why the bytes cannot become a valid document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonSyntaxError {
    /// Byte offset in the document.
    pub offset: usize,
    /// What was wrong.
    pub reason: &'static str,
}

impl std::fmt::Display for JsonSyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

/// The scanner's state between feeds.
#[derive(Debug, Clone)]
pub struct JsonScan {
    state: State,
    nesting: Vec<Nest>,
    /// Bytes fed so far.
    offset: usize,
    require_object: bool,
}

impl JsonScan {
    /// A scanner for a document whose top-level value must be an object (specs and
    /// descriptors are).
    pub fn object() -> Self {
        JsonScan { state: State::Start, nesting: Vec::new(), offset: 0, require_object: true }
    }

    /// Whether a complete top-level value has been seen (trailing whitespace allowed).
    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    /// Whether anything but whitespace has been seen.
    pub fn has_started(&self) -> bool {
        self.state != State::Start
    }

    /// Bytes fed so far.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Feeds the next bytes of the document.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), JsonSyntaxError> {
        for &byte in bytes {
            self.step(byte)?;
            self.offset += 1;
        }
        Ok(())
    }

    fn fail(&self, reason: &'static str) -> JsonSyntaxError {
        JsonSyntaxError { offset: self.offset, reason }
    }

    fn step(&mut self, byte: u8) -> Result<(), JsonSyntaxError> {
        let ws = matches!(byte, b' ' | b'\t' | b'\n' | b'\r');
        match self.state {
            State::Start if ws => Ok(()),
            State::Start if self.require_object && byte != b'{' => Err(self.fail("the document must be a JSON object")),
            State::Start | State::Value => {
                if ws {
                    return Ok(());
                }
                self.begin_value(byte)
            }
            State::ValueOrClose => match byte {
                _ if ws => Ok(()),
                b']' => self.close(Nest::Array),
                _ => self.begin_value(byte),
            },
            State::KeyOrClose | State::Key => match byte {
                _ if ws => Ok(()),
                b'}' if self.state == State::KeyOrClose => self.close(Nest::Object),
                b'"' => {
                    self.state = State::String { key: true, escape: Escape::None };
                    Ok(())
                }
                _ => Err(self.fail("expected a string key")),
            },
            State::Colon => match byte {
                _ if ws => Ok(()),
                b':' => {
                    self.state = State::Value;
                    Ok(())
                }
                _ => Err(self.fail("expected ':'")),
            },
            State::AfterValue => match (byte, self.nesting.last()) {
                _ if ws => Ok(()),
                (b',', Some(Nest::Object)) => {
                    self.state = State::Key;
                    Ok(())
                }
                (b',', _) => {
                    self.state = State::Value;
                    Ok(())
                }
                (b'}', Some(Nest::Object)) => self.close(Nest::Object),
                (b']', Some(Nest::Array)) => self.close(Nest::Array),
                _ => Err(self.fail("expected ',' or a closing bracket")),
            },
            State::String { key, escape } => self.string_byte(key, escape, byte),
            State::Number(number) => self.number_byte(number, byte),
            State::Literal { word, at } => {
                if word.get(at) != Some(&byte) {
                    return Err(self.fail("invalid literal"));
                }
                if at + 1 == word.len() {
                    self.end_value();
                } else {
                    self.state = State::Literal { word, at: at + 1 };
                }
                Ok(())
            }
            State::Done if ws => Ok(()),
            State::Done => Err(self.fail("trailing characters after the document")),
        }
    }

    fn begin_value(&mut self, byte: u8) -> Result<(), JsonSyntaxError> {
        self.state = match byte {
            b'{' | b'[' => {
                if self.nesting.len() >= MAX_JSON_DEPTH {
                    return Err(self.fail("nested too deep"));
                }
                let nest = if byte == b'{' { Nest::Object } else { Nest::Array };
                self.nesting.push(nest);
                if nest == Nest::Object {
                    State::KeyOrClose
                } else {
                    State::ValueOrClose
                }
            }
            b'"' => State::String { key: false, escape: Escape::None },
            b'-' => State::Number(Number::Minus),
            b'0' => State::Number(Number::Zero),
            b'1'..=b'9' => State::Number(Number::Integer),
            b't' => State::Literal { word: b"true", at: 1 },
            b'f' => State::Literal { word: b"false", at: 1 },
            b'n' => State::Literal { word: b"null", at: 1 },
            _ => return Err(self.fail("expected a value")),
        };
        Ok(())
    }

    fn close(&mut self, nest: Nest) -> Result<(), JsonSyntaxError> {
        if self.nesting.pop() != Some(nest) {
            return Err(self.fail("mismatched bracket"));
        }
        self.end_value();
        Ok(())
    }

    fn end_value(&mut self) {
        self.state = if self.nesting.is_empty() { State::Done } else { State::AfterValue };
    }

    fn string_byte(&mut self, key: bool, escape: Escape, byte: u8) -> Result<(), JsonSyntaxError> {
        let next = match escape {
            Escape::None => match byte {
                b'"' => {
                    if key {
                        self.state = State::Colon;
                    } else {
                        self.end_value();
                    }
                    return Ok(());
                }
                b'\\' => Escape::Backslash,
                0..=0x1f => return Err(self.fail("control character in a string")),
                _ => Escape::None,
            },
            Escape::Backslash => match byte {
                b'u' => Escape::Hex(4),
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Escape::None,
                _ => return Err(self.fail("invalid escape")),
            },
            Escape::Hex(left) => {
                if !byte.is_ascii_hexdigit() {
                    return Err(self.fail("invalid \\u escape"));
                }
                if left == 1 {
                    Escape::None
                } else {
                    Escape::Hex(left - 1)
                }
            }
        };
        self.state = State::String { key, escape: next };
        Ok(())
    }

    fn number_byte(&mut self, number: Number, byte: u8) -> Result<(), JsonSyntaxError> {
        let digit = byte.is_ascii_digit();
        let next = match (number, byte) {
            (Number::Minus, b'0') => Some(Number::Zero),
            (Number::Minus, _) if digit => Some(Number::Integer),
            (Number::Integer, _) if digit => Some(Number::Integer),
            (Number::Zero | Number::Integer, b'.') => Some(Number::Point),
            (Number::Point | Number::Fraction, _) if digit => Some(Number::Fraction),
            (Number::Zero | Number::Integer | Number::Fraction, b'e' | b'E') => Some(Number::Exponent),
            (Number::Exponent, b'+' | b'-') => Some(Number::ExponentSign),
            (Number::Exponent | Number::ExponentSign | Number::ExponentDigits, _) if digit => {
                Some(Number::ExponentDigits)
            }
            _ => None,
        };
        match next {
            Some(n) => {
                self.state = State::Number(n);
                Ok(())
            }
            None if number.may_end() => {
                // The byte ends the number and belongs to what follows it.
                self.end_value();
                self.step(byte)
            }
            None => Err(self.fail("invalid number")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_bytewise(doc: &str) -> Result<JsonScan, JsonSyntaxError> {
        let mut scan = JsonScan::object();
        for b in doc.as_bytes() {
            scan.feed(std::slice::from_ref(b))?;
        }
        Ok(scan)
    }

    #[test]
    fn agrees_with_serde_on_complete_documents() {
        let docs = [
            r#"{}"#,
            r#"{"a":1}"#,
            "{ \"a\" : [1, -2.5e+3, 0, 0.1E-2, true, false, null, \"x\\u00e9\\n\"], \"b\": {\"c\": []} }\n",
            r#"{"process":{"args":["sh","-c","echo hi"],"env":["A=B"]},"root":{"path":"/r"}}"#,
        ];
        for doc in docs {
            assert!(serde_json::from_str::<serde_json::Value>(doc).is_ok(), "{doc}");
            let scan = scan_bytewise(doc).unwrap();
            assert!(scan.is_complete(), "{doc}");
        }
    }

    #[test]
    fn prefixes_are_incomplete_and_never_refused() {
        let doc = r#"{"a": [1, 2.5, {"b": "c\"d"}], "e": -0}"#;
        for end in 0..doc.len() {
            let scan = scan_bytewise(&doc[..end]).unwrap();
            assert!(!scan.is_complete(), "prefix {end}");
        }
        assert!(scan_bytewise(doc).unwrap().is_complete());
    }

    #[test]
    fn refuses_at_the_first_impossible_byte() {
        let cases = [
            ("{bad", 1),
            ("[1]", 0),
            ("\"x\"", 0),
            (r#"{"a" 1}"#, 5),
            (r#"{"a":01}"#, 6),
            (r#"{"a":tru }"#, 8),
            (r#"{"a":1,}"#, 7),
            (r#"{"a":[1,]}"#, 8),
            (r#"{"a":1}x"#, 7),
            (r#"{"a":1]"#, 6),
            ("{\"a\":\"\u{1}\"}", 6),
            (r#"{"a":"\q"}"#, 7),
            (r#"{"a":-}"#, 6),
            (r#"{"a":1.}"#, 7),
        ];
        for (doc, offset) in cases {
            let not_object = doc.starts_with(['[', '"']);
            assert!(not_object || serde_json::from_str::<serde_json::Value>(doc).is_err(), "{doc}");
            let err = scan_bytewise(doc).expect_err(doc);
            assert_eq!(err.offset, offset, "{doc}: {err}");
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!("{{\"a\":{}", "[".repeat(MAX_JSON_DEPTH));
        assert_eq!(scan_bytewise(&deep).unwrap_err().reason, "nested too deep");
    }
}
