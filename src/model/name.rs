//! Names: containerd identifiers (container ids) and image names (components joined by `/`).

use super::ValidationError;

/// Longest container identifier containerd accepts.
pub const MAX_IDENTIFIER_BYTES: usize = 76;
/// Longest single path component (Linux `NAME_MAX`).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// File names that live inside an image directory, so no image name component may take
/// them: `images/a/target/` would be ambiguous.
const IMAGE_ATTRIBUTE_NAMES: [&str; 3] = ["target", "labels", "info.json"];

/// Checks containerd's identifier rule: alphanumeric runs separated by single `.`, `_` or
/// `-`, at most 76 bytes.
pub fn validate_identifier(id: &str) -> Result<(), ValidationError> {
    let refuse = |reason| Err(ValidationError::InvalidIdentifier { id: id.to_owned(), reason });
    if id.is_empty() {
        return refuse("identifier must not be empty");
    }
    if id.len() > MAX_IDENTIFIER_BYTES {
        return refuse("identifier is longer than 76 characters");
    }
    let mut previous_was_separator = true; // the first character must be alphanumeric
    for c in id.chars() {
        if c.is_ascii_alphanumeric() {
            previous_was_separator = false;
        } else if matches!(c, '.' | '_' | '-') {
            if previous_was_separator {
                return refuse("separators must sit between letters or digits");
            }
            previous_was_separator = true;
        } else {
            return refuse("only letters, digits, '.', '_' and '-' are allowed");
        }
    }
    if previous_was_separator {
        return refuse("identifier must end with a letter or digit");
    }
    Ok(())
}

/// The namespace every object lives in unless a mount names another (containerd's).
pub const DEFAULT_NAMESPACE: &str = "default";
/// The longest namespace name (containerd's limit).
pub const MAX_NAMESPACE_BYTES: usize = 76;

/// Checks a namespace name: containerd's identifier rule, at most 76 bytes.
pub fn validate_namespace(name: &str) -> Result<(), ValidationError> {
    if name.len() > MAX_NAMESPACE_BYTES {
        return Err(ValidationError::InvalidIdentifier { id: name.to_owned(), reason: "a namespace name is at most 76 bytes" });
    }
    validate_identifier(name)
}

/// Checks one component of an image name (one directory level under `images/`).
pub fn validate_component(component: &str) -> Result<(), ValidationError> {
    let refuse = |reason| Err(ValidationError::InvalidImageName { name: component.to_owned(), reason });
    if component.is_empty() {
        return refuse("name components must not be empty");
    }
    if component == "." || component == ".." {
        return refuse("'.' and '..' are not name components");
    }
    if component.len() > MAX_COMPONENT_BYTES {
        return refuse("a name component is longer than 255 bytes");
    }
    if component.contains('\0') || component.contains('/') {
        return refuse("a name component must not hold NUL or '/'");
    }
    if component.chars().any(char::is_control) {
        return refuse("a name component must not hold control characters");
    }
    if IMAGE_ATTRIBUTE_NAMES.contains(&component) {
        return refuse("a name component must not equal an attribute file name (target, labels, info.json)");
    }
    Ok(())
}

/// Checks a full image name: `/`-separated valid components.
pub fn validate_image_name(name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        return Err(ValidationError::InvalidImageName {
            name: String::new(),
            reason: "image name must not be empty",
        });
    }
    name.split('/').try_for_each(validate_component).map_err(|e| match e {
        ValidationError::InvalidImageName { reason, .. } => {
            ValidationError::InvalidImageName { name: name.to_owned(), reason }
        }
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_follow_containerds_rule() {
        let long_ok = "a".repeat(76);
        let too_long = "a".repeat(77);
        let rows: &[(&str, bool)] = &[
            ("web", true),
            ("web-1", true),
            ("a.b_c-d", true),
            ("A9", true),
            (&long_ok, true),
            (&too_long, false),
            ("", false),
            ("-a", false),
            ("a-", false),
            ("a..b", false),
            ("a-_b", false),
            ("a b", false),
            ("a/b", false),
            ("é", false),
        ];
        for (id, ok) in rows {
            let got = validate_identifier(id);
            assert_eq!(got.is_ok(), *ok, "{id:?}: {got:?}");
            if let Err(e) = got {
                assert!(matches!(e, ValidationError::InvalidIdentifier { .. }));
            }
        }
    }

    #[test]
    fn image_names_are_checked_per_component() {
        assert!(validate_image_name("docker.io/library/busybox:1.36").is_ok());
        assert!(validate_image_name("a").is_ok());
        for bad in ["", "a//b", "a/./b", "../a", "a/target", "labels", "x/info.json", "a\u{0}b", "a\nb"] {
            assert!(
                matches!(validate_image_name(bad), Err(ValidationError::InvalidImageName { .. })),
                "{bad:?} should be refused"
            );
        }
        assert!(validate_component(&"x".repeat(255)).is_ok());
        assert!(validate_component(&"x".repeat(256)).is_err());
    }
}
