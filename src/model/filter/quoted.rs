//! Quoted strings: Go's double-quoted string syntax, as containerd's scanner accepts it,
//! with `/` and `|` as extra delimiters for regular expressions.
//!
//! Every error is reported at the opening quote (as containerd does), so a reader only
//! has to say which error comes first: one found while scanning (a bad escape, a missing
//! closing quote), else one found while decoding (an escape naming a value out of range).

/// A quoted string starting at `start` (the delimiter) in `input`: its decoded text and
/// the offset just past the closing delimiter, or the error message.
pub(super) fn read_quoted(input: &str, start: usize) -> Result<(String, usize), &'static str> {
    let quote = input[start..].chars().next().expect("called at a delimiter");
    let mut rest = Cursor { text: &input[start + quote.len_utf8()..], at: start + quote.len_utf8() };
    let mut bytes = Vec::new();
    let mut out_of_range = false;
    loop {
        match rest.next() {
            None | Some('\n') => return Err("quoted literal not terminated"),
            Some(c) if c == quote => break,
            Some('\\') => out_of_range |= !escape(&mut rest, quote, &mut bytes)?,
            Some(c) => push_char(&mut bytes, c),
        }
    }
    if out_of_range {
        return Err("unquoting failed: quote syntax error");
    }
    // Go strings may hold any bytes (`\xff`); ours are UTF-8, and a value that is not
    // could never equal a field anyway, so it is refused rather than kept half-true.
    let text = String::from_utf8(bytes).map_err(|_| "unquoting failed: not valid UTF-8")?;
    Ok((text, rest.at))
}

struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.text.chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.text = &self.text[c.len_utf8()..];
        self.at += c.len_utf8();
        Some(c)
    }

    /// Exactly `count` digits in `radix`, consumed; an offending character is left for the
    /// string's own scan (it may be the closing quote), as containerd's scanner leaves it.
    fn digits(&mut self, radix: u32, count: usize) -> Result<u32, &'static str> {
        let mut value = 0u32;
        for _ in 0..count {
            let digit = self.peek().and_then(|c| c.to_digit(radix)).ok_or("illegal numeric escape sequence")?;
            self.next();
            value = value * radix + digit;
        }
        Ok(value)
    }
}

/// Decodes the escape after a backslash into `bytes`. `Ok(false)` means well-formed but
/// naming a value out of range, which Go reports only once the whole literal scanned.
fn escape(rest: &mut Cursor, quote: char, bytes: &mut Vec<u8>) -> Result<bool, &'static str> {
    let simple = |c| match c {
        'a' => Some('\x07'),
        'b' => Some('\x08'),
        'f' => Some('\x0c'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\x0b'),
        '\\' => Some('\\'),
        c if c == quote => Some(c),
        _ => None,
    };
    let letter = rest.next().ok_or("illegal escape sequence")?;
    if let Some(c) = simple(letter) {
        push_char(bytes, c);
        return Ok(true);
    }
    match letter {
        '0'..='7' => {
            let value = (letter as u32 - '0' as u32) * 64 + rest.digits(8, 2)?;
            push_byte(bytes, value)
        }
        'x' => push_byte(bytes, rest.digits(16, 2)?),
        'u' => Ok(push_code_point(bytes, rest.digits(16, 4)?)),
        'U' => Ok(push_code_point(bytes, rest.digits(16, 8)?)),
        _ => Err("illegal escape sequence"),
    }
}

/// `\NNN` and `\xNN` name one byte, not a character (`"\xc3\xa9"` is `é`).
fn push_byte(bytes: &mut Vec<u8>, value: u32) -> Result<bool, &'static str> {
    match u8::try_from(value) {
        Ok(byte) => bytes.push(byte),
        Err(_) => return Ok(false),
    }
    Ok(true)
}

/// `\u` and `\U` name a character; a surrogate becomes U+FFFD, as Go's encoder makes it.
fn push_code_point(bytes: &mut Vec<u8>, value: u32) -> bool {
    if value > char::MAX as u32 {
        return false;
    }
    push_char(bytes, char::from_u32(value).unwrap_or(char::REPLACEMENT_CHARACTER));
    true
}

fn push_char(bytes: &mut Vec<u8>, c: char) {
    bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::read_quoted;

    fn read(input: &str) -> Result<String, &'static str> {
        read_quoted(input, 0).map(|(text, end)| {
            assert_eq!(end, input.len(), "{input} is read to its end");
            text
        })
    }

    #[test]
    fn go_escapes_decode() {
        assert_eq!(read(r#""a\tb\\c\"d""#).unwrap(), "a\tb\\c\"d");
        assert_eq!(read(r#""\x41\101\u00e9\U0001F600""#).unwrap(), "AAé😀");
        assert_eq!(read(r#""\xc3\xa9""#).unwrap(), "é", "\\x names bytes");
        assert_eq!(read(r#""\ud800""#).unwrap(), "\u{fffd}", "a surrogate becomes U+FFFD");
        assert_eq!(read(r"/a\/b\\d/").unwrap(), r"a/b\d");
        assert_eq!(read(r"|a\|b|").unwrap(), "a|b");
    }

    #[test]
    fn only_the_own_delimiter_may_be_escaped() {
        assert_eq!(read(r#""a\/b""#), Err("illegal escape sequence"));
        assert_eq!(read(r#"/a\"b/"#), Err("illegal escape sequence"));
        assert_eq!(read(r"/\d+/"), Err("illegal escape sequence"), "regex escapes need a doubled backslash");
        assert_eq!(read(r#""\'""#), Err("illegal escape sequence"));
    }

    #[test]
    fn malformed_literals_give_containerds_messages() {
        assert_eq!(read(r#""abc"#), Err("quoted literal not terminated"));
        assert_eq!(read("\"a\nb\""), Err("quoted literal not terminated"));
        assert_eq!(read(r#""\x4""#), Err("illegal numeric escape sequence"));
        assert_eq!(read(r#""\12""#), Err("illegal numeric escape sequence"));
        assert_eq!(read(r#""ab\"#), Err("illegal escape sequence"));
        assert_eq!(read(r#""\777""#), Err("unquoting failed: quote syntax error"));
        assert_eq!(read(r#""\U00110000""#), Err("unquoting failed: quote syntax error"));
        assert_eq!(read(r#""\777\q""#), Err("illegal escape sequence"), "a scan error wins over a range error");
        assert_eq!(read(r#""\xff""#), Err("unquoting failed: not valid UTF-8"));
    }

    #[test]
    fn the_end_is_just_past_the_closing_delimiter() {
        assert_eq!(read_quoted(r#"x"a,b"==c"#, 1), Ok(("a,b".to_owned(), 6)));
    }
}
