//! Progress of a long import on stderr: at most one line a second and one at the end.
//!
//! On a terminal the line is redrawn in place with `\r`; into a file or pipe each report is
//! a full line, so logs stay readable.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Imports whose blobs add up to more than this report progress without `--progress`.
pub const AUTO_THRESHOLD: u64 = 64 << 20;

const INTERVAL: Duration = Duration::from_secs(1);

/// What is known in advance about the work; a gzip archive gives no totals.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Number of blobs, when known.
    pub blobs: Option<usize>,
    /// Their total size in bytes, when known.
    pub bytes: Option<u64>,
}

/// Counts blobs and bytes and prints them now and then.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    terminal: bool,
    totals: Totals,
    blobs: usize,
    bytes: u64,
    last_report: Instant,
    last_width: usize,
}

impl Progress {
    /// A counter that prints only when `enabled`.
    pub fn new(enabled: bool, totals: Totals) -> Self {
        Self {
            enabled,
            terminal: std::io::stderr().is_terminal(),
            totals,
            blobs: 0,
            bytes: 0,
            // The first report comes a second in, so quick imports print only the last.
            last_report: Instant::now(),
            last_width: 0,
        }
    }

    /// Records `n` more bytes of blob content handled (copied or found already stored).
    pub fn add_bytes(&mut self, n: u64) {
        self.bytes += n;
        self.maybe_report();
    }

    /// Records one more blob handled.
    pub fn add_blob(&mut self) {
        self.blobs += 1;
        self.maybe_report();
    }

    /// Prints the final line, ending it with a newline.
    pub fn finish(&mut self) {
        if self.enabled {
            self.print(true);
        }
    }

    fn maybe_report(&mut self) {
        if self.enabled && self.last_report.elapsed() >= INTERVAL {
            self.print(false);
            self.last_report = Instant::now();
        }
    }

    fn print(&mut self, last: bool) {
        let line = self.line();
        let mut stderr = std::io::stderr().lock();
        // Progress is advisory: a closed stderr must not fail the import.
        let _ = if self.terminal {
            // Spaces wipe what a longer previous line left behind ("999.9 MiB" → "1.0 GiB").
            let pad = self.last_width.saturating_sub(line.len());
            let end = if last { "\n" } else { "" };
            write!(stderr, "\r{line}{:pad$}{end}", "")
        } else {
            writeln!(stderr, "{line}")
        };
        let _ = stderr.flush();
        self.last_width = line.len();
    }

    /// `import: 12/40 blobs, 300.0 MiB of 1.2 GiB`, or without the totals it lacks.
    pub fn line(&self) -> String {
        let blobs = match self.totals.blobs {
            Some(total) => format!("{}/{total}", self.blobs),
            None => self.blobs.to_string(),
        };
        let bytes = match self.totals.bytes {
            Some(total) => format!("{} of {}", human_bytes(self.bytes), human_bytes(total)),
            None => human_bytes(self.bytes),
        };
        format!("import: {blobs} blobs, {bytes}")
    }
}

/// A size for people: bytes below 1 KiB, otherwise one decimal in the largest binary unit.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    // Round first, so 1023.96 KiB shows as "1.0 MiB" rather than "1024.0 KiB".
    while (value * 10.0).round() / 10.0 >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
