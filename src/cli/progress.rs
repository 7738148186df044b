//! A progress line on stderr while a long capture is read: bytes read of the
//! total, packets per second, time left. Only on a terminal, only after the
//! first second (short runs stay quiet), redrawn at most four times a second,
//! and erased before anything else is printed.

use crate::units::format_duration;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Records between two looks at the clock: reading stays as fast as without.
const EVERY: u64 = 4096;
const QUIET_FOR: Duration = Duration::from_secs(1);
const REDRAW: Duration = Duration::from_millis(250);

pub struct Progress {
    name: String,
    /// File size; unknown for a pipe.
    total: Option<u64>,
    started: Instant,
    drawn: Option<Instant>,
    on: bool,
}

impl Progress {
    /// `on`: whether a line may be drawn at all (stderr is a terminal, and
    /// nothing else streams to the same terminal meanwhile).
    pub fn new(name: &str, total: Option<u64>, on: bool) -> Progress {
        Progress {
            name: name.to_string(),
            total,
            started: Instant::now(),
            drawn: None,
            on: on && std::io::stderr().is_terminal(),
        }
    }

    /// After record `records`, whose block starts at byte `offset`.
    #[inline]
    pub fn tick(&mut self, records: u64, offset: u64) {
        if self.on && records.is_multiple_of(EVERY) {
            self.draw(records, offset);
        }
    }

    #[cold]
    fn draw(&mut self, records: u64, offset: u64) {
        let now = Instant::now();
        let elapsed = now - self.started;
        if elapsed < QUIET_FOR || self.drawn.is_some_and(|d| now - d < REDRAW) {
            return;
        }
        self.drawn = Some(now);
        let secs = elapsed.as_secs_f64();
        let mut line = format!("{}: {}", self.name, bytes(offset));
        if let Some(total) = self.total.filter(|&t| t > 0) {
            let done = offset as f64 / total as f64;
            line += &format!(" of {} ({:.0}%)", bytes(total), done * 100.0);
            if done > 0.0 {
                let left = secs * (1.0 - done) / done;
                line += &format!(", {} left", format_duration(left.ceil() as u64 * 1_000_000_000));
            }
        }
        line += &format!(", {:.1} M packets/s", records as f64 / secs / 1e6);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{line}");
        let _ = err.flush();
    }

    /// Erases the line, if one was drawn.
    pub fn done(&mut self) {
        if self.drawn.take().is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done();
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = "bytes";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    if unit == "bytes" {
        format!("{n} bytes")
    } else {
        format!("{v:.1} {unit}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_are_shown_in_binary_units() {
        assert_eq!(super::bytes(512), "512 bytes");
        assert_eq!(super::bytes(3 << 20), "3.0 MiB");
        assert_eq!(super::bytes(10 * (1 << 30) + (1 << 29)), "10.5 GiB");
    }
}
