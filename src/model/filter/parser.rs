//! The parser: containerd's filter grammar, extended with `|` between alternatives.
//!
//! ```text
//! filter      := alternative ('|' alternative)*
//! alternative := selector (',' selector)*
//! selector    := fieldpath [operator value]
//! fieldpath   := field ('.' field)*
//! field       := "quoted" | [A-Za-z0-9_]+
//! operator    := '==' | '!=' | '~='
//! value       := "quoted" | /quoted/ | |quoted|  (the last two after ~= only)
//!              | a first character other than , . = ! ~ " / | or white space,
//!                then characters other than , | white space and controls
//! ```
//!
//! White space is allowed where containerd's scanner skips it: at the start, after `,`,
//! `.` and `|`, and around the operator; anywhere else (before `,` or `.`, at the end) it
//! is unexpected input, as in containerd. Errors carry containerd's messages and the
//! byte offset of the token at fault (the input's length when it ended too early).

use regex::{Regex, RegexBuilder};

use super::{quoted::read_quoted, Selector, Test};

/// The most memory a compiled regular expression's program may take, so that a short
/// hostile pattern such as `(a{999}){999}` is an error rather than an allocation.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// The most each thread's lazy DFA cache of one regular expression may take (past it the
/// matcher falls back to slower engines, never to more memory).
pub const REGEX_DFA_LIMIT: usize = 256 << 10;
/// The most regular expressions one expression may hold: with [`REGEX_SIZE_LIMIT`], what
/// one kept query can cost is bounded (see `Filter::cost`).
pub const MAX_REGEXES: usize = 4;

const EXPECTED_OPERATOR: &str = r#"expected an operator ("=="|"!="|"~=")"#;

/// A refusal at a byte offset of the (decoded) expression.
#[derive(Debug)]
pub(super) struct ParseError {
    pub position: usize,
    pub message: String,
}

/// Parses a non-empty expression into its alternatives, each a conjunction of selectors.
pub(super) fn parse(input: &str) -> Result<Vec<Vec<Selector>>, ParseError> {
    if let Some(at) = input.find('\0') {
        return Err(ParseError { position: at, message: "unexpected null".into() });
    }
    let mut parser = Parser { input, at: 0, regexes: 0 };
    let mut alternatives = vec![parser.alternative()?];
    while parser.eat('|') {
        alternatives.push(parser.alternative()?);
    }
    Ok(alternatives)
}

#[derive(Clone, Copy, PartialEq)]
enum Operator {
    Equal,
    NotEqual,
    Matches,
}

struct Parser<'a> {
    input: &'a str,
    at: usize,
    /// Regular expressions compiled so far.
    regexes: usize,
}

impl Parser<'_> {
    fn alternative(&mut self) -> Result<Vec<Selector>, ParseError> {
        let mut selectors = vec![self.selector()?];
        loop {
            match self.peek() {
                None | Some('|') => return Ok(selectors),
                Some(',') => {
                    self.bump();
                    selectors.push(self.selector()?);
                }
                Some(c) => return Err(self.error_here(format!("unexpected input: {c}"))),
            }
        }
    }

    fn selector(&mut self) -> Result<Selector, ParseError> {
        let path = self.fieldpath()?;
        if matches!(self.peek(), None | Some(',' | '|')) {
            return Ok(Selector { path, test: Test::Present });
        }
        let operator = self.operator()?;
        let value_at = self.skip_space();
        let value = self.value(operator)?;
        let test = match operator {
            Operator::Equal => Test::Equal(value),
            Operator::NotEqual => Test::NotEqual(value),
            Operator::Matches => {
                self.regexes += 1;
                if self.regexes > MAX_REGEXES {
                    return Err(refusal(value_at, format!("at most {MAX_REGEXES} regular expressions in one filter")));
                }
                Test::Matches(compile(&value).map_err(|message| refusal(value_at, message))?)
            }
        };
        Ok(Selector { path, test })
    }

    fn fieldpath(&mut self) -> Result<Vec<String>, ParseError> {
        let mut path = vec![self.field()?];
        while self.eat('.') {
            path.push(self.field()?);
        }
        Ok(path)
    }

    fn field(&mut self) -> Result<String, ParseError> {
        let start = self.skip_space();
        match self.peek() {
            Some('"') => self.quoted(start),
            // containerd's scanner opens a quote at `/` here, only for its parser to refuse it.
            Some('/') => self.quoted(start).and_then(|_| Err(refusal(start, "invalid quote encountered"))),
            Some(c) if is_field_char(c) => Ok(self.take_while(is_field_char).to_owned()),
            _ => Err(refusal(start, "expected field or quoted")),
        }
    }

    fn operator(&mut self) -> Result<Operator, ParseError> {
        let start = self.skip_space();
        // A quote here is scanned, as containerd's scanner does, so that an unterminated
        // one (`labels.ns/key==v`) is reported as such.
        if matches!(self.peek(), Some('"' | '/' | '|')) {
            self.quoted(start)?;
            return Err(refusal(start, EXPECTED_OPERATOR));
        }
        match self.take_while(|c| matches!(c, '=' | '!' | '~')) {
            "==" => Ok(Operator::Equal),
            "!=" => Ok(Operator::NotEqual),
            "~=" => Ok(Operator::Matches),
            "" => Err(refusal(start, EXPECTED_OPERATOR)),
            other => Err(refusal(start, format!("unsupported operator {other:?}"))),
        }
    }

    fn value(&mut self, operator: Operator) -> Result<String, ParseError> {
        let start = self.at;
        match self.peek() {
            Some('"') => self.quoted(start),
            Some('/' | '|') => {
                let text = self.quoted(start)?;
                match operator {
                    Operator::Matches => Ok(text),
                    _ => Err(refusal(start, "invalid quote encountered")),
                }
            }
            None | Some(',' | '.') => Err(refusal(start, "expected value or quoted")),
            // The first character is taken whatever it is (as containerd's scanner does);
            // the rest stops at `,`, `|`, white space and control characters.
            Some(first) => {
                self.bump();
                let rest = self.take_while(is_value_char);
                Ok(format!("{first}{rest}"))
            }
        }
    }

    fn quoted(&mut self, start: usize) -> Result<String, ParseError> {
        let (text, end) = read_quoted(self.input, start).map_err(|message| refusal(start, message))?;
        self.at = end;
        Ok(text)
    }

    fn peek(&self) -> Option<char> {
        self.input[self.at..].chars().next()
    }

    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.at += c.len_utf8();
        }
    }

    fn eat(&mut self, wanted: char) -> bool {
        let found = self.peek() == Some(wanted);
        if found {
            self.bump();
        }
        found
    }

    /// Skips white space and returns where the next token starts.
    fn skip_space(&mut self) -> usize {
        self.take_while(char::is_whitespace);
        self.at
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &str {
        let start = self.at;
        while self.peek().is_some_and(&keep) {
            self.bump();
        }
        &self.input[start..self.at]
    }

    fn error_here(&self, message: String) -> ParseError {
        refusal(self.at, message)
    }
}

fn refusal(position: usize, message: impl Into<String>) -> ParseError {
    ParseError { position, message: message.into() }
}

fn is_field_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn is_value_char(c: char) -> bool {
    !matches!(c, ',' | '|') && !c.is_whitespace() && !c.is_control()
}

/// Compiles a `~=` value now, so that a bad pattern is refused with a reason (containerd
/// compiles at match time and lets a bad pattern match nothing).
fn compile(pattern: &str) -> Result<Regex, String> {
    let built = RegexBuilder::new(pattern).size_limit(REGEX_SIZE_LIMIT).dfa_size_limit(REGEX_DFA_LIMIT).build();
    built.map_err(|error| match error {
        regex::Error::CompiledTooBig(limit) => format!("regular expression too big (limit {limit} bytes)"),
        // The syntax error's own text is several lines with a caret of its own; its last
        // line says what is wrong.
        other => {
            let text = other.to_string();
            let reason = text.lines().last().unwrap_or_default().trim_start_matches("error: ").to_owned();
            format!("invalid regular expression: {reason}")
        }
    })
}
