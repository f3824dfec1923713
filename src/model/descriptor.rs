//! The OCI content descriptor an image's `target` holds: what the name points at.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ValidationError;

/// An OCI descriptor (`application/vnd.oci.descriptor.v1+json`). The three required fields
/// are typed; the optional ones the spec names are typed where their shape matters, and any
/// other field is kept as written so that nothing a user stored is silently dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Required: the media type of the referenced content.
    pub media_type: String,
    /// Required: `sha256:<64 hex>` or `sha512:<128 hex>`, lowercase.
    pub digest: String,
    /// Required: the size of the referenced content in bytes.
    pub size: i64,
    /// Optional free-form string annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Optional alternate download locations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Optional platform (an object with at least `architecture` and `os`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Map<String, Value>>,
    /// Any other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Descriptor {
    /// Builds a descriptor from a complete JSON value and checks every rule.
    pub fn from_json(value: Value) -> Result<Self, ValidationError> {
        let invalid = |reason: String| ValidationError::InvalidDescriptor { reason };
        if !value.is_object() {
            return Err(invalid("a descriptor must be a JSON object".into()));
        }
        let descriptor: Descriptor = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        descriptor.validate()?;
        Ok(descriptor)
    }

    /// Checks the rules serde's typing cannot express.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let invalid = |reason: &str| Err(ValidationError::InvalidDescriptor { reason: reason.into() });
        if self.media_type.trim().is_empty() {
            return invalid("mediaType must not be empty");
        }
        if self.size < 0 {
            return invalid("size must not be negative");
        }
        digest_rule(&self.digest).map_err(|reason| ValidationError::InvalidDescriptor { reason })?;
        if let Some(platform) = &self.platform {
            for field in ["architecture", "os"] {
                if !platform.get(field).is_some_and(Value::is_string) {
                    return invalid("platform needs string fields architecture and os");
                }
            }
        }
        Ok(())
    }

    /// The descriptor as the `target` file shows it: pretty JSON and a newline.
    pub fn render(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a descriptor always serializes");
        text.push('\n');
        text
    }
}

/// Checks `algorithm:hex` for the algorithms OCI registers.
/// Checks a digest as `algorithm:hex` (sha256 or sha512, lowercase hex of its length).
pub fn validate_digest(digest: &str) -> Result<(), ValidationError> {
    digest_rule(digest).map_err(|reason| ValidationError::InvalidDigest { reason })
}

fn digest_rule(digest: &str) -> Result<(), String> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(format!("digest {digest:?} is not algorithm:hex"));
    };
    let expected_len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Err(format!("digest algorithm {algorithm:?} is not sha256 or sha512")),
    };
    if hex.len() != expected_len || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!("digest {digest:?} needs {expected_len} lowercase hex digits"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
               "digest": format!("sha256:{}", "a".repeat(64)), "size": 7})
    }

    #[test]
    fn accepts_valid_and_keeps_extra_fields() {
        let mut v = base();
        v["annotations"] = json!({"org.opencontainers.image.ref.name": "1.36"});
        v["platform"] = json!({"architecture": "amd64", "os": "linux"});
        v["artifactType"] = json!("application/x");
        let d = Descriptor::from_json(v.clone()).unwrap();
        let back: Value = serde_json::from_str(&d.render()).unwrap();
        assert_eq!(back, v);
        let mut sha512 = base();
        sha512["digest"] = json!(format!("sha512:{}", "0".repeat(128)));
        assert!(Descriptor::from_json(sha512).is_ok());
    }

    #[test]
    fn refuses_bad_descriptors() {
        let cases = [
            ("digest", json!("md5:abc")),
            ("digest", json!(format!("sha256:{}", "A".repeat(64)))),
            ("digest", json!(format!("sha256:{}", "a".repeat(63)))),
            ("size", json!(-1)),
            ("size", json!("7")),
            ("mediaType", json!("")),
            ("platform", json!({"os": "linux"})),
        ];
        for (field, value) in cases {
            let mut v = base();
            v[field] = value.clone();
            assert!(
                matches!(Descriptor::from_json(v), Err(ValidationError::InvalidDescriptor { .. })),
                "{field}={value} should be refused"
            );
        }
        assert!(Descriptor::from_json(json!([1])).is_err());
        let mut missing = base();
        missing.as_object_mut().unwrap().remove("digest");
        assert!(Descriptor::from_json(missing).is_err());
    }
}
