//! Timestamps of records: nanoseconds since the Unix epoch, shown as RFC 3339 (UTC).

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time with nanosecond precision, as containerd records `created_at` and
/// `updated_at`. Serialized as an RFC 3339 string so `info.json` and the store agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// Nanoseconds since the Unix epoch.
    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// Builds a timestamp from nanoseconds since the Unix epoch.
    pub fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// The same instant as a `SystemTime` (for file attributes).
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.0)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        // Times before 1970 cannot come from this machine's clock in practice; clamp.
        let nanos = t.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        Self(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_nanos(self.to_system_time()))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339(&text).map(Self::from).map_err(serde::de::Error::custom)
    }
}

/// Times set on a file with `utimensat` (`touch -d`, `rsync -t`, `cp -p`, `tar -x`), shown
/// by `stat` instead of the record's until the file's value next changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetTimes {
    /// The access time set.
    pub atime: Timestamp,
    /// The modification time set.
    pub mtime: Timestamp,
    /// When they were set (the file's status change).
    pub ctime: Timestamp,
}

/// The times set on the files of one node: keyed by the field (file) name, with
/// [`NODE_ITSELF`] for the node's own directory or file.
pub type FileTimes = BTreeMap<String, SetTimes>;

/// The key of a node's own times (its directory, or the blob or task file it is).
pub const NODE_ITSELF: &str = ".";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json_with_nanoseconds() {
        let t = Timestamp::from_nanos(1_764_000_000_123_456_789);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2025-11-24T16:00:00.123456789Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
    }
}
