//! The process's log lines, written to their sink a batch at a time.
//!
//! Writing every line as it is made costs each request a `write` system call on its own path
//! and, with two runtime threads logging at once, a wait on the sink's lock: 15 % of a free
//! request's CPU at 64 clients (docs/benchmarks.md, "The log line written a batch at a time").
//! Here info, debug and trace lines are appended to a buffer that a thread of its own writes
//! out [`HOLD_FOR`] after the first of them; warnings and errors are written at once, behind
//! whatever is buffered, so what explains a failure is never held back and lines keep their
//! order. Dropping the [`Flusher`] (a graceful exit) writes everything; `kill -9` loses at most
//! the last [`HOLD_FOR`] of info lines.
//!
//! A request never waits for the sink on an info line: when the sink falls behind by
//! [`MOST_HELD`] (a disk throttling its writes, a pipe nobody reads), further info lines are
//! dropped and a line says how many. Warnings and errors wait, as a plain writer would.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use llmgate_core::sync::lock;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// How long the first buffered line waits for others to join it.
pub const HOLD_FOR: Duration = Duration::from_millis(20);
/// Past this many buffered bytes info lines are dropped (counted): the bound on what a sink
/// slower than the lines can hold in memory. 64 clients log about 200 KiB in [`HOLD_FOR`].
const MOST_HELD: usize = 1024 * 1024;
/// A batch buffer up to this size is kept for the next batch; a larger one (after a burst) is
/// given back.
const KEPT_CAPACITY: usize = 256 * 1024;

/// The `MakeWriter` the log subscriber writes through.
pub struct BatchedLines {
    shared: Arc<Shared>,
}

/// Writes what is left and stops the flushing thread when dropped.
pub struct Flusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    /// Taken before `held` by whoever writes to the sink, and held until the write is done:
    /// lines reach the sink in the order they were made.
    sink: Mutex<Box<dyn Write + Send>>,
    held: Mutex<Held>,
    first_held: Condvar,
}

#[derive(Default)]
struct Held {
    bytes: Vec<u8>,
    /// Info lines dropped since the last batch: the sink was [`MOST_HELD`] behind.
    dropped: u64,
    /// No flushing thread (it ended or never started): every line is written at once.
    closed: bool,
}

impl BatchedLines {
    /// Lines for `sink`, with the thread that writes them out.
    pub fn start(sink: impl Write + Send + 'static) -> (Self, Flusher) {
        let shared = Arc::new(Shared {
            sink: Mutex::new(Box::new(sink)),
            held: Mutex::new(Held::default()),
            first_held: Condvar::new(),
        });
        let flushing = shared.clone();
        let thread = std::thread::Builder::new()
            .name("llmgate-log".into())
            .spawn(move || flushing.flush_until_closed());
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(_) => {
                // No thread to flush: write through, as a plain writer would.
                lock(&shared.held).closed = true;
                None
            }
        };
        let lines = Self {
            shared: shared.clone(),
        };
        (lines, Flusher { shared, thread })
    }
}

impl Shared {
    fn flush_until_closed(&self) {
        loop {
            let mut held = lock(&self.held);
            while held.bytes.is_empty() && !held.closed {
                held = self
                    .first_held
                    .wait(held)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            let closed = held.closed;
            drop(held);
            if !closed {
                std::thread::sleep(HOLD_FOR);
            }
            self.write_held(&[]);
            if closed {
                return;
            }
        }
    }

    /// Buffer a line, write it at once when nothing will flush it, or drop it when the sink
    /// is [`MOST_HELD`] behind.
    fn hold(&self, line: &[u8]) {
        let mut held = lock(&self.held);
        if held.closed {
            drop(held);
            self.write_held(line);
            return;
        }
        if held.bytes.len() + line.len() > MOST_HELD {
            held.dropped += 1;
            return;
        }
        let was_empty = held.bytes.is_empty();
        held.bytes.extend_from_slice(line);
        drop(held);
        if was_empty {
            self.first_held.notify_one();
        }
    }

    /// Write everything buffered, then `line`.
    fn write_held(&self, line: &[u8]) {
        let mut sink = lock(&self.sink);
        let (mut batch, dropped) = {
            let mut held = lock(&self.held);
            (
                std::mem::take(&mut held.bytes),
                std::mem::take(&mut held.dropped),
            )
        };
        if dropped > 0 {
            let notice = format!(
                "llmgate: {dropped} log line(s) dropped: the log's destination was slower than \
                 the lines came\n"
            );
            batch.extend_from_slice(notice.as_bytes());
        }
        batch.extend_from_slice(line);
        // A log line that cannot be written has nowhere better to go.
        let _ = sink.write_all(&batch).and_then(|()| sink.flush());
        batch.clear();
        // The emptied buffer keeps its capacity for the next batch when nothing was held since.
        let mut held = lock(&self.held);
        if held.bytes.is_empty() && batch.capacity() <= KEPT_CAPACITY {
            held.bytes = batch;
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        lock(&self.shared.held).closed = true;
        self.shared.first_held.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.shared.write_held(&[]);
    }
}

/// One line's writer: buffered, or written at once.
pub struct LineWriter<'a> {
    shared: &'a Shared,
    at_once: bool,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        if self.at_once {
            self.shared.write_held(line);
        } else {
            self.shared.hold(line);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedLines {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
            at_once: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
            at_once: written_at_once(meta.level()),
        }
    }
}

/// Warnings and errors: what explains a failure is not held back.
fn written_at_once(level: &Level) -> bool {
    // Levels order by verbosity: ERROR < WARN < INFO.
    *level <= Level::WARN
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test can read.
    #[derive(Clone, Default)]
    struct Collected(Arc<Mutex<Vec<u8>>>);

    impl Write for Collected {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Collected {
        fn text(&self) -> String {
            String::from_utf8(lock(&self.0).clone()).unwrap()
        }
    }

    fn writer(lines: &BatchedLines, at_once: bool) -> LineWriter<'_> {
        LineWriter {
            shared: &lines.shared,
            at_once,
        }
    }

    #[test]
    fn held_lines_are_written_after_the_hold_and_in_order() {
        let sink = Collected::default();
        let (lines, _flusher) = BatchedLines::start(sink.clone());
        writer(&lines, false).write_all(b"one\n").unwrap();
        writer(&lines, false).write_all(b"two\n").unwrap();
        for _ in 0..500 {
            if !sink.text().is_empty() {
                break;
            }
            std::thread::sleep(HOLD_FOR / 4);
        }
        assert_eq!(sink.text(), "one\ntwo\n");
    }

    #[test]
    fn a_warning_is_written_at_once_behind_what_was_held() {
        let sink = Collected::default();
        let (lines, _flusher) = BatchedLines::start(sink.clone());
        writer(&lines, false).write_all(b"info\n").unwrap();
        writer(&lines, true).write_all(b"warn\n").unwrap();
        assert_eq!(sink.text(), "info\nwarn\n");
    }

    #[test]
    fn dropping_the_flusher_writes_what_is_held_and_later_lines_go_straight_through() {
        let sink = Collected::default();
        let (lines, flusher) = BatchedLines::start(sink.clone());
        writer(&lines, false).write_all(b"last\n").unwrap();
        drop(flusher);
        assert_eq!(sink.text(), "last\n");
        writer(&lines, false).write_all(b"after\n").unwrap();
        assert_eq!(sink.text(), "last\nafter\n");
    }

    /// A sink that blocks until the test lets it go: one that fell behind.
    #[derive(Clone)]
    struct Stalled {
        written: Collected,
        gate: Arc<Mutex<()>>,
    }

    impl Write for Stalled {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let _open = lock(&self.gate);
            self.written.write(bytes)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_sink_that_falls_behind_costs_dropped_lines_not_waiting_requests() {
        let written = Collected::default();
        let gate = Arc::new(Mutex::new(()));
        let closed = lock(&gate);
        let sink = Stalled {
            written: written.clone(),
            gate: gate.clone(),
        };
        let (lines, flusher) = BatchedLines::start(sink);
        // The flusher takes the first line and blocks in the sink; what comes after is held
        // up to the bound, then dropped, and none of these writes waits.
        writer(&lines, false).write_all(b"first\n").unwrap();
        while !lock(&lines.shared.held).bytes.is_empty() {
            std::thread::sleep(HOLD_FOR / 4);
        }
        let line = vec![b'x'; MOST_HELD / 4 - 1];
        let line = [line.as_slice(), b"\n"].concat();
        for _ in 0..6 {
            writer(&lines, false).write_all(&line).unwrap();
        }
        drop(closed);
        drop(flusher);
        let text = written.text();
        assert!(text.starts_with("first\n"), "{}", &text[..40]);
        assert_eq!(text.matches('x').count(), 4 * (MOST_HELD / 4 - 1));
        assert!(
            text.ends_with("llmgate: 2 log line(s) dropped: the log's destination was slower than the lines came\n"),
            "{}",
            &text[text.len() - 120..]
        );
    }

    #[test]
    fn lines_from_many_threads_arrive_whole() {
        let sink = Collected::default();
        let (lines, flusher) = BatchedLines::start(sink.clone());
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let lines = &lines;
                scope.spawn(move || {
                    for line in 0..1000 {
                        let at_once = line % 100 == 0;
                        let text = format!("thread {thread} line {line}\n");
                        writer(lines, at_once).write_all(text.as_bytes()).unwrap();
                    }
                });
            }
        });
        drop(flusher);
        let text = sink.text();
        assert_eq!(text.lines().count(), 4000);
        for thread in 0..4 {
            // Each thread's lines in the order it made them.
            let numbers: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("thread {thread} line ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(numbers, (0..1000).collect::<Vec<_>>());
        }
    }

    #[test]
    fn warnings_and_errors_are_written_at_once_the_rest_held() {
        assert!(written_at_once(&Level::ERROR));
        assert!(written_at_once(&Level::WARN));
        assert!(!written_at_once(&Level::INFO));
        assert!(!written_at_once(&Level::DEBUG));
        assert!(!written_at_once(&Level::TRACE));
    }
}
