//! The language against corpora: containerd's documented and tested expressions, in
//! plain and in path form, over a generic record and over ctrfs's containers and images.

use std::collections::BTreeMap;

use super::{Fields, Filter, FilterError, REGEX_SIZE_LIMIT};
use crate::model::{Container, Descriptor, Image, Timestamp};

/// A record shaped like the one containerd's own filter tests use: `name`, `other` and
/// labels, with the same adaptor rules (empty is absent, label keys joined with `.`).
struct Entry {
    name: &'static str,
    other: &'static str,
    labels: BTreeMap<&'static str, &'static str>,
}

impl Fields for Entry {
    fn field(&self, path: &[String]) -> Option<&str> {
        let non_empty = |v: &'static str| Some(v).filter(|v| !v.is_empty());
        match path[0].as_str() {
            "name" => non_empty(self.name),
            "other" => non_empty(self.other),
            "labels" => self.labels.get(path[1..].join(".").as_str()).copied(),
            _ => None,
        }
    }
}

fn entry(name: &'static str, other: &'static str, labels: &[(&'static str, &'static str)]) -> Entry {
    Entry { name, other, labels: labels.iter().copied().collect() }
}

fn entries() -> Vec<Entry> {
    vec![
        entry("bar", "", &[]),
        entry("foo", "", &[("foo", "true")]),
        entry("foo", "", &[("foo", "present"), ("more complex label", "yes")]),
        entry("bar", "", &[("bar", "true"), ("foo", "false")]),
        entry("fooer", "cab", &[(r#"more complex label with \ and ""#, "present")]),
        entry("qux", "", &[(r#"more complex label with \ and ".post"#, "present")]),
        entry("baz", "too complex, yo", &[]),
        entry("", "abc", &[("foo", "omg_asdf.asdf-qwer")]),
        entry("bazo", "xyz", &[]),
    ]
}

/// The indexes of the objects `expression` selects (parsed as a path component).
fn selected<T: Fields>(expression: &str, corpus: &[T]) -> Vec<usize> {
    let filter = Filter::from_component(expression).unwrap_or_else(|e| panic!("{e}"));
    (0..corpus.len()).filter(|&i| filter.matches(&corpus[i])).collect()
}

fn refusal(expression: &str) -> FilterError {
    match Filter::from_component(expression) {
        Ok(_) => panic!("{expression:?} parsed"),
        Err(error) => error,
    }
}

#[test]
fn containerds_own_test_expressions_select_as_there() {
    let corpus = entries();
    let cases: &[(&str, &[usize])] = &[
        ("", &[0, 1, 2, 3, 4, 5, 6, 7, 8]),
        ("name", &[0, 1, 2, 3, 4, 5, 6, 8]),
        ("labels.foo", &[1, 2, 3, 7]),
        ("labels.foo,name", &[1, 2, 3]),
        ("labels.foo==true", &[1]),
        ("labels.foo==omg_asdf.asdf-qwer", &[7]),
        ("name==bar", &[0, 3]),
        ("name!=bar", &[1, 2, 4, 5, 6, 7, 8]),
        ("name==bar,labels.bar", &[3]),
        (r#"other=="too complex, yo""#, &[6]),
        ("other~=[abc]+,name!=foo", &[4, 6, 7]),
        ("other~=/[abc]+/,name!=foo", &[4, 6, 7]),
        ("other~=/[abc]{1,2}/,name!=foo", &[4, 6, 7]),
        (r#"other~=/[abc]{0,1}"\//,name!=foo"#, &[]),
        ("name==bar,labels.bar==true", &[3]),
        ("name==bar,labels.bar==wrong", &[]),
        (r#"name==foo,labels."more complex label""#, &[2]),
        (r#"labels."more complex label with \\ and \""==present"#, &[4]),
        (r#"labels."more complex label with \\ and \"".post==present"#, &[5]),
    ];
    for (expression, expected) in cases {
        assert_eq!(selected(expression, &corpus), *expected, "{expression}");
    }
}

#[test]
fn absent_fields_fail_presence_and_equality_but_pass_inequality_and_empty_matching_regexes() {
    let corpus = entries();
    assert_eq!(selected("other", &corpus), [4, 6, 7, 8]);
    assert_eq!(selected("other==abc", &corpus), [7]);
    assert_eq!(selected("labels.foo!=true", &corpus), [0, 2, 3, 4, 5, 6, 7, 8], "absent != anything");
    assert_eq!(selected(r#"other!="""#, &corpus), [4, 6, 7, 8], "absent is the empty string to !=");
    assert_eq!(selected("other~=^$", &corpus), [0, 1, 2, 3, 5], "absent is the empty string to ~=");
    assert_eq!(selected("other~=/.*/", &corpus).len(), corpus.len());
    assert_eq!(selected("nosuchfield!=x", &corpus).len(), corpus.len(), "an unknown field is absent");
    assert_eq!(selected("nosuchfield", &corpus), [] as [usize; 0]);
}

#[test]
fn alternatives_are_ored_and_selectors_anded() {
    let corpus = entries();
    assert_eq!(selected("name==bar|labels.foo==true", &corpus), [0, 1, 3]);
    assert_eq!(selected("name==foo|name==bar", &corpus), [0, 1, 2, 3]);
    assert_eq!(selected("name==foo,labels.foo==true|other==xyz", &corpus), [1, 8]);
    assert_eq!(selected(r#"other=="too complex, yo"|other=="a|b""#, &corpus), [6], "| inside quotes is text");
    assert_eq!(selected(r"other~=|z$\|^c||name==foo", &corpus), [1, 2, 4, 8], "a |quoted| regex, then |");
}

#[test]
fn white_space_goes_where_containerds_scanner_skips_it() {
    let corpus = entries();
    assert_eq!(selected("name == bar, labels. bar", &corpus), [3]);
    assert_eq!(selected(" name==bar| labels.foo==true", &corpus), [0, 1, 3]);
    assert_eq!(refusal("name==bar ").position, 9);
    assert_eq!(refusal("name==bar ,labels.bar").message, "unexpected input:  ");
    assert_eq!(refusal("labels .bar").message, r#"expected an operator ("=="|"!="|"~=")"#);
    assert_eq!(refusal(" ").position, 1);
}

#[test]
fn single_quotes_and_backquotes_are_plain_value_characters() {
    let corpus = vec![entry("'x'", "`y`", &[])];
    assert_eq!(selected("name=='x'", &corpus), [0]);
    assert_eq!(selected("other==`y`", &corpus), [0]);
    assert_eq!(refusal("labels.'x'").message, "expected field or quoted");
}

#[test]
fn invalid_expressions_report_containerds_messages_at_its_positions() {
    let cases: &[(&str, usize, &str)] = &[
        // From containerd's tests (its `[before >|x|< after]` marks the same offsets).
        (r#"labels.?"more complex label with \\ and \"".post==present"#, 7, "expected field or quoted"),
        ("name==foo,", 10, "expected field or quoted"),
        ("labels.", 7, "expected field or quoted"),
        ("image~=,id?=?fbaq", 7, "expected value or quoted"),
        ("labels.ns/key==value", 9, "quoted literal not terminated"),
        ("labels.key==/value", 12, "quoted literal not terminated"),
        // `|` separates alternatives here, so where containerd sees a `|`-quoted field
        // (and refuses it) this sees an alternative that ended too early: same place.
        ("labels.|foo|==omg_asdf.asdf-qwer", 7, "expected field or quoted"),
        // More.
        (r#"labels."a"=="#, 12, "expected value or quoted"),
        ("name=foo", 4, r#"unsupported operator "=""#),
        ("name===foo", 4, r#"unsupported operator "===""#),
        ("name foo", 5, r#"expected an operator ("=="|"!="|"~=")"#),
        ("name==foo bar", 9, "unexpected input:  "),
        (r#"name=="foo"bar"#, 11, "unexpected input: b"),
        ("name==.foo", 6, "expected value or quoted"),
        ("other~=.*", 7, "expected value or quoted"),
        ("name \"x", 5, "quoted literal not terminated"),
        ("name \"x\"", 5, r#"expected an operator ("=="|"!="|"~=")"#),
        ("name==/x/", 6, "invalid quote encountered"),
        ("/name/==x", 0, "invalid quote encountered"),
        (r#"name=="\q""#, 6, "illegal escape sequence"),
        (r#"name=="\777""#, 6, "unquoting failed: quote syntax error"),
        ("a||b", 2, "expected field or quoted"),
        ("|a", 0, "expected field or quoted"),
        ("a==b|", 5, "expected field or quoted"),
        ("a,,b", 2, "expected field or quoted"),
        ("a==\0", 3, "unexpected null"),
    ];
    for (expression, position, message) in cases {
        let error = refusal(expression);
        assert_eq!((error.position, error.message.as_str()), (*position, *message), "{expression}");
        assert_eq!(error.input, *expression);
    }
}

#[test]
fn an_invalid_regex_is_refused_at_its_value() {
    let error = refusal("name==x,other~=(ab");
    assert_eq!(error.position, 15);
    assert!(error.message.starts_with("invalid regular expression: "), "{}", error.message);
    assert!(!error.message.contains('\n'), "one line: {}", error.message);
    assert_eq!(refusal("other~= /(/").position, 8, "the position is the quote, after white space");
}

#[test]
fn a_regex_too_big_to_compile_within_the_limit_is_refused() {
    // 255 bytes (NAME_MAX) is room enough for a pattern whose program would take
    // gigabytes; the size limit turns it into an error.
    let hostile = "other~=((((a{100}){100}){100}){100})";
    let error = refusal(hostile);
    assert_eq!(error.position, 7);
    assert!(error.message.contains("too big"), "{}", error.message);
    let unicode_heavy = format!("other~={}", r"\w{60}".repeat(4));
    assert!(refusal(&unicode_heavy).message.contains("too big"));
    assert!(Filter::parse(r"other~=\w{8}").is_ok(), "an ordinary pattern compiles");
}

#[test]
fn one_expression_holds_at_most_four_regexes_so_a_kept_query_s_cost_is_bounded() {
    let four = "id~=a|id~=b|id~=c|id~=d";
    let filter = Filter::parse(four).unwrap();
    assert!(filter.cost(4) <= 4 * (REGEX_SIZE_LIMIT + 4 * super::REGEX_DFA_LIMIT) + 4096);
    let error = refusal(&format!("{four}|id~=e"));
    assert_eq!(error.position, four.len() + 5);
    assert!(error.message.contains("at most 4 regular expressions"), "{}", error.message);
    assert!(Filter::parse("id==a").unwrap().cost(4) < 1024, "no regex: only the text and selectors");
}

#[test]
fn positions_count_bytes_as_typed_through_escapes() {
    let typed = "image==docker.io%2Flibrary%2Fbusybox foo";
    let error = refusal(typed);
    assert_eq!(error.position, typed.find(' ').unwrap());
    assert_eq!(error.decoded, "image==docker.io/library/busybox foo");
    let typed = "labels.\"ctrfs.io%2Frm\"==true,labels.";
    assert_eq!(refusal(typed).position, typed.len());
    let typed = "labels.a%2Fb==1";
    assert_eq!(refusal(typed).position, 8, "an escaped / opening a quote is reported at its %");
    let typed = "name==100%";
    let error = refusal(typed);
    assert_eq!((error.position, error.decoded.as_str()), (9, typed));
    assert!(error.message.contains("%25"), "{}", error.message);
}

#[test]
fn errors_render_as_one_line_and_as_a_caret_under_the_position() {
    let error = refusal(r#"labels."a"=="#);
    assert_eq!(error.spot().caret_lines(""), "labels.\"a\"==\n            ^\n");
    assert_eq!(error.to_string(), r#"filter "labels.\"a\"==": expected value or quoted at position 12"#);
    let error = refusal("name==a%2Fb c");
    assert_eq!(error.spot().caret_lines(""), "name==a%2Fb c\n           ^\n");
    assert_eq!(
        error.to_string(),
        r#"filter "name==a%2Fb c": unexpected input:   at position 11 (decoded: "name==a/b c")"#
    );
    let error = refusal("labels.\"é\"==x y");
    assert_eq!(error.position, 14, "a byte offset");
    assert_eq!(error.spot().caret_lines(""), "labels.\"é\"==x y\n             ^\n", "the caret counts characters");
    let error = Filter::parse("a==b\tc\nd").unwrap_err();
    assert_eq!(error.spot().caret_lines(""), "a==b?c\n    ^\n", "control characters are shown as ?, and only the line of the fault");
}

#[test]
fn the_decoded_expression_is_kept() {
    let filter = Filter::from_component("name==a%2Fb%25").unwrap();
    assert_eq!(filter.expression(), "name==a/b%");
    let corpus = vec![entry("a/b%", "", &[])];
    assert_eq!(selected("name==a%2Fb%25", &corpus), [0]);
}

fn container(id: &str, image: &str, runtime: &str, snapshotter: &str, labels: &[(&str, &str)]) -> Container {
    let mut c = Container::new(id.into(), Timestamp::from_nanos(1));
    c.image = image.into();
    c.runtime = runtime.into();
    c.snapshotter = snapshotter.into();
    for (key, value) in labels {
        c.labels.set(key, value).unwrap();
    }
    c
}

fn containers() -> Vec<Container> {
    vec![
        container("web", "docker.io/library/busybox:latest", "runc", "", &[("ctrfs.io/rm", "true"), ("env", "prod")]),
        container("db", "library/postgres", "", "native", &[("env", "dev"), ("very complex label", "something")]),
        container("bare", "", "io.containerd.runc.v2", "overlayfs", &[]),
    ]
}

#[test]
fn container_fields_follow_containerds_adaptor() {
    let corpus = containers();
    assert_eq!(selected("id==web", &corpus), [0]);
    assert_eq!(selected("image", &corpus), [0, 1]);
    assert_eq!(selected("image~=busybox", &corpus), [0]);
    assert_eq!(selected("image==docker.io%2Flibrary%2Fbusybox:latest", &corpus), [0]);
    assert_eq!(selected(r#"labels."ctrfs.io%2Frm"==true"#, &corpus), [0]);
    assert_eq!(selected(r#"labels."very complex label"==something"#, &corpus), [1]);
    assert_eq!(selected("labels.env,id!=db", &corpus), [0]);
    assert_eq!(selected("labels.env~=/^(prod|dev)$/", &corpus), [0, 1], "| inside /quotes/ is the regex's");
    assert_eq!(selected("runtime.name==io.containerd.runc.v2", &corpus), [2]);
    assert_eq!(selected("runtime", &corpus), [] as [usize; 0], "runtime alone names no field");
    assert_eq!(selected("runtime.other", &corpus), [] as [usize; 0]);
    assert_eq!(selected("id.anything==db", &corpus), [1], "only the leading segment picks the field");
    assert_eq!(selected("snapshot", &corpus), [] as [usize; 0], "not a filter field");
}

#[test]
fn unset_runtime_and_snapshotter_are_absent_as_their_files_are() {
    let corpus = containers();
    assert_eq!(selected("runtime.name==runc", &corpus), [0], "the default is not filled in");
    assert_eq!(selected("runtime.name", &corpus), [0, 2]);
    assert_eq!(selected("runtime.name~=^$", &corpus), [1], "selects the unset ones");
    assert_eq!(selected("runtime.name~=^(runc)?$", &corpus), [0, 1]);
    assert_eq!(selected("snapshotter==overlayfs", &corpus), [2]);
    assert_eq!(selected("snapshotter!=native", &corpus), [0, 2]);
}

fn image(name: &str, target: Option<(&str, &str)>, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Image {
    let mut i = Image::pending(name.into(), Timestamp::from_nanos(1));
    i.target = target.map(|(media_type, digest)| Descriptor {
        media_type: media_type.into(),
        digest: digest.into(),
        size: 1,
        annotations: Some(annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).filter(|a: &BTreeMap<_, _>| !a.is_empty()),
        urls: None,
        platform: None,
        extra: Default::default(),
    });
    for (key, value) in labels {
        i.labels.set(key, value).unwrap();
    }
    i
}

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DIGEST_A: &str = "sha256:aaaa000000000000000000000000000000000000000000000000000000000000";
const DIGEST_B: &str = "sha256:bbbb000000000000000000000000000000000000000000000000000000000000";

fn images() -> Vec<Image> {
    vec![
        image(
            "docker.io/library/busybox:latest",
            Some((INDEX, DIGEST_A)),
            &[("containerd.io/gc.root", "check-walk"), ("io.containerd.image/converted-docker-schema1", "true")],
            &[("org.opencontainers.image.ref.name", "latest")],
        ),
        image("library/alpine", Some((MANIFEST, DIGEST_B)), &[("containerd.io/uncompressed", DIGEST_A)], &[]),
        image("library/pending", None, &[("containerd.io/gc.root", "check-walk")], &[]),
    ]
}

#[test]
fn image_fields_follow_containerds_adaptor() {
    let corpus = images();
    assert_eq!(selected("name==docker.io%2Flibrary%2Fbusybox:latest", &corpus), [0]);
    assert_eq!(selected("name~=^library%2F", &corpus), [1, 2]);
    assert_eq!(selected(&format!("target.digest=={DIGEST_B}"), &corpus), [1]);
    assert_eq!(selected("target.mediatype==application%2Fvnd.oci.image.index.v1+json", &corpus), [0]);
    assert_eq!(selected("target.mediaType", &corpus), [] as [usize; 0], "containerd spells it lowercase");
    assert_eq!(selected("target.digest", &corpus), [0, 1], "no target, no target.digest");
    assert_eq!(selected(r#"labels."io.containerd.image%2Fconverted-docker-schema1""#, &corpus), [0]);
    assert_eq!(selected(r#"labels."containerd.io%2Fgc.root"==check-walk"#, &corpus), [0, 2]);
    assert_eq!(selected(&format!(r#"labels."containerd.io%2Funcompressed"=={DIGEST_A}"#), &corpus), [1]);
    assert_eq!(selected("annotations.org.opencontainers.image.ref.name==latest", &corpus), [0]);
    assert_eq!(selected("labels.containerd.io", &corpus), [] as [usize; 0], "segments join with . to one key");
    assert_eq!(selected("target", &corpus), [] as [usize; 0]);
}

#[test]
fn plain_parse_takes_slashes_as_typed() {
    let corpus = containers();
    let filter = Filter::parse(r#"labels."ctrfs.io/rm"==true|image==library/postgres"#).unwrap();
    let hits: Vec<usize> = (0..corpus.len()).filter(|&i| filter.matches(&corpus[i])).collect();
    assert_eq!(hits, [0, 1]);
    assert!(Filter::parse("name==100%").is_ok(), "no percent-decoding in parse");
}

#[test]
fn the_documented_examples_parse_and_select() {
    let containers = containers();
    let images = images();
    for example in ["labels.foo", r#"labels."very complex label"==something"#, "id==web", "image~=/[abc]{1,2}/,id!=foo"] {
        assert!(Filter::from_component(example).is_ok(), "{example}");
    }
    assert_eq!(selected(r#"labels."very complex label"==something"#, &containers), [1]);
    assert_eq!(selected("image~=/[abc]{1,2}/,id!=foo", &containers), [0, 1]);
    for example in [
        "name==foo,labels.bar",
        r#"labels."io.containerd.image%2Fconverted-docker-schema1""#,
        r#"labels."containerd.io%2Fgc.root"==check-walk"#,
        "name==docker.io%2Flibrary%2Fbusybox:latest|name==p",
        "target.mediatype==application%2Fvnd.oci.image.index.v1+json",
    ] {
        assert!(Filter::from_component(example).is_ok(), "{example}");
    }
    assert_eq!(selected("name==docker.io%2Flibrary%2Fbusybox:latest|name==p", &images), [0]);
    assert_eq!(selected("image~=/.*busybox/", &containers), [0]);
}
