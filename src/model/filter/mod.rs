//! containerd's filter language (what `ctr containers ls` and `ctr images ls` take), for
//! the views `containers/.filter/<expr>/` and `images/.filter/<expr>/`.
//!
//! An expression is one path component: `|` separates alternatives (containerd's repeated
//! filters, any of which may match), `,` joins selectors that must all match, and a
//! selector is `fieldpath`, `fieldpath==value`, `fieldpath!=value` or
//! `fieldpath~=regex`. Since a component cannot hold `/`, `/` is typed `%2F` and `%`
//! itself `%25` (see `component`). Pure: no I/O. The grammar is in `parser`; what a field
//! path means for each record is in `adaptors`.

mod adaptors;
mod component;
mod error;
mod parser;
mod quoted;
#[cfg(test)]
mod tests;

use regex::Regex;

pub use component::{escape_component, unescape_component};
pub use error::FilterError;
pub use parser::{MAX_REGEXES, REGEX_DFA_LIMIT, REGEX_SIZE_LIMIT};

use component::Decoded;

/// What a filter asks of an object: the value at a field path, `None` when the field is
/// absent. Following containerd's adaptors, an empty string is absent, a label is present
/// when its key is set (even to an empty value), and an unknown path is absent.
pub trait Fields {
    /// The value at `path` (its segments, quotes removed), or `None` when absent.
    fn field(&self, path: &[String]) -> Option<&str>;
}

/// A parsed expression: alternatives, each a list of selectors that must all match.
#[derive(Debug, Clone)]
pub struct Filter {
    expression: String,
    alternatives: Vec<Vec<Selector>>,
}

#[derive(Debug, Clone)]
struct Selector {
    path: Vec<String>,
    test: Test,
}

#[derive(Debug, Clone)]
enum Test {
    Present,
    Equal(String),
    NotEqual(String),
    Matches(Regex),
}

impl Filter {
    /// Parses a path component as typed: `%2F` and `%25` are decoded first, and an
    /// error's position is an offset into `component` itself.
    pub fn from_component(component: &str) -> Result<Filter, FilterError> {
        let decoded = Decoded::new(component)?;
        Self::build(&decoded.text).map_err(|error| FilterError {
            input: component.to_owned(),
            decoded: decoded.text.clone(),
            position: decoded.typed_offset(error.position),
            message: error.message,
        })
    }

    /// Parses an expression that needs no decoding (as `ctr … ls` takes it, with `|`
    /// between alternatives). An empty expression matches everything, as containerd's.
    pub fn parse(expression: &str) -> Result<Filter, FilterError> {
        Self::build(expression).map_err(|error| FilterError {
            input: expression.to_owned(),
            decoded: expression.to_owned(),
            position: error.position,
            message: error.message,
        })
    }

    fn build(expression: &str) -> Result<Filter, parser::ParseError> {
        // One alternative without selectors: containerd's `Always`.
        let alternatives = if expression.is_empty() { vec![Vec::new()] } else { parser::parse(expression)? };
        Ok(Filter { expression: expression.to_owned(), alternatives })
    }

    /// An upper bound of the memory it holds, in bytes, when matched from up to `threads`
    /// threads: its text, and for each regular expression the most its program and each
    /// thread's lazy DFA cache may take.
    pub fn cost(&self, threads: usize) -> usize {
        let regexes = self.alternatives.iter().flatten().filter(|s| matches!(s.test, Test::Matches(_))).count();
        let selectors: usize = self.alternatives.iter().map(Vec::len).sum();
        self.expression.len() + 256 * selectors + regexes * (REGEX_SIZE_LIMIT + threads * REGEX_DFA_LIMIT)
    }

    /// The expression after percent-decoding.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Whether `object` satisfies every selector of at least one alternative.
    pub fn matches(&self, object: &(impl Fields + ?Sized)) -> bool {
        self.alternatives.iter().any(|selectors| selectors.iter().all(|s| s.matches(object)))
    }
}

impl Selector {
    /// containerd's rules for an absent field: only a presence test or `==` need the field;
    /// `!=` and `~=` compare the empty string, so `labels.x!=y` and `labels.x~=^$` match
    /// an object without that label.
    fn matches(&self, object: &(impl Fields + ?Sized)) -> bool {
        let value = object.field(&self.path);
        match &self.test {
            Test::Present => value.is_some(),
            Test::Equal(wanted) => value == Some(wanted.as_str()),
            Test::NotEqual(unwanted) => value.unwrap_or("") != unwanted,
            Test::Matches(regex) => regex.is_match(value.unwrap_or("")),
        }
    }
}
